"""When the publisher sends ``state``, ``cells`` and its heartbeat. Pure: the caller gives ``now``.

``state`` and ``cells`` are due at once on a new connection, then every ``state_interval_s`` and
``cells_interval_s``; a late send moves the next one to ``now`` rather than sending a burst to
catch up. The heartbeat (``availability`` = ``online`` at QoS 1) is due ``heartbeat_s`` after the
connection and after each heartbeat, so a broker that stopped answering is noticed.
"""

from __future__ import annotations

__all__ = ["Schedule"]


class Schedule:
    """The next due times (monotonic seconds) of one connection.

    Args:
        now_s: the connection's start.
        state_interval_s, cells_interval_s, heartbeat_s: the ``[mqtt]`` rates, s.
    """

    def __init__(
        self, now_s: float, state_interval_s: float, cells_interval_s: float, heartbeat_s: float
    ) -> None:
        self._state_interval_s = state_interval_s
        self._cells_interval_s = cells_interval_s
        self._heartbeat_s = heartbeat_s
        self.next_state_s = now_s
        self.next_cells_s = now_s
        self.next_beat_s = now_s + heartbeat_s

    def state_due(self, now_s: float) -> bool:
        """Whether ``state`` is due at ``now_s``."""
        return now_s >= self.next_state_s

    def state_sent(self, now_s: float) -> None:
        """``state`` was sent (it was due at ``now_s``)."""
        self.next_state_s = max(self.next_state_s + self._state_interval_s, now_s)

    def cells_due(self, now_s: float) -> bool:
        """Whether ``cells`` (and the balancing progress with it) is due at ``now_s``."""
        return now_s >= self.next_cells_s

    def cells_sent(self, now_s: float) -> None:
        """``cells`` was sent (it was due at ``now_s``)."""
        self.next_cells_s = max(self.next_cells_s + self._cells_interval_s, now_s)

    def beat_due(self, now_s: float) -> bool:
        """Whether the heartbeat is due at ``now_s``."""
        return now_s >= self.next_beat_s

    def beat_sent(self, now_s: float) -> None:
        """The heartbeat was sent (it was due at ``now_s``)."""
        self.next_beat_s = now_s + self._heartbeat_s

    def next_due_s(self, have_output: bool) -> float:
        """The earliest due time; before the first output only the heartbeat is due."""
        if not have_output:
            return self.next_beat_s
        return min(self.next_state_s, self.next_cells_s, self.next_beat_s)
