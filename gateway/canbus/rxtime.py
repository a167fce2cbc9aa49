"""Receive times: an interface's frame timestamp mapped onto the monotonic clock. Pure.

python-can stamps every received frame (``Message.timestamp``): SocketCAN with the kernel's
receive time, the virtual bus with ``time.time()`` at send. Both are wall-clock seconds, and a
frame may wait in a queue before the event loop dequeues it, so the dequeue time overstates how
fresh a value is. ``RxClock`` maps the interface time onto the monotonic clock with an offset
learned from the frames themselves (the smallest ``now - timestamp`` seen, i.e. the least
queueing), and never stamps a frame later than ``now``.

- A stamp that would lie in the future is clamped to ``now``. Up to ``max_lag_s`` ahead the
  offset is re-learned at once (this frame waited less than any before it, or the clocks
  drifted); further ahead only once the frames have run ahead for ``max_lag_s`` (one frame with
  a wild stamp must not shift the mapping of all the others).
- A stamp more than ``max_lag_s`` behind ``now`` keeps its (old) time: the frame waited in a
  backlog, and its values are as old as that. Only when every frame has lagged so for
  ``max_lag_s`` of monotonic time (a backlog drains; a wall clock stepped back, e.g. by NTP at
  boot, does not) is the offset learned again; ``jumps`` counts these. Meanwhile the values
  look old, so the limits are 0 A: the error is on the safe side.
- An interface that does not stamp (timestamp 0.0) gets ``now``.
- A timestamp that cannot be real (not finite, negative, at or beyond ``MAX_TIMESTAMP_S``) makes
  the frame unreadable: ``stamp`` returns ``None`` and the caller counts it.
"""

from __future__ import annotations

import math
from typing import Final

__all__ = ["MAX_TIMESTAMP_S", "RxClock"]

#: Interface timestamps at or beyond this (seconds; the year 2286 as a Unix time) are not real.
MAX_TIMESTAMP_S: Final = 1e10


class RxClock:
    """Maps interface timestamps onto the monotonic clock, clamped to ``now``.

    Args:
        max_lag_s: how far behind ``now`` a mapped stamp may fall before the mapping is learned
            again (> 0).
    """

    def __init__(self, max_lag_s: float = 1.0) -> None:
        if not (math.isfinite(max_lag_s) and max_lag_s > 0):
            raise ValueError(f"max_lag_s (={max_lag_s}) must be positive and finite")
        self.max_lag_s = max_lag_s
        self._offset: float | None = None
        self._lag_since: float | None = None  # monotonic time the frames started to lag
        self.jumps = 0
        """Times the mapping was learned again after the interface clock fell behind."""
        self.bad = 0
        """Timestamps refused as not real."""

    def stamp(self, timestamp: float, now_s: float) -> float | None:
        """The receive time of a frame stamped ``timestamp`` and dequeued at ``now_s``.

        Returns:
            Monotonic seconds, never after ``now_s``; ``None`` when ``timestamp`` cannot be
            real (the frame is unreadable).
        """
        if timestamp == 0.0:
            return now_s
        if not (math.isfinite(timestamp) and 0.0 < timestamp < MAX_TIMESTAMP_S):
            self.bad += 1
            return None
        offset = self._offset
        if offset is None:
            self._offset = now_s - timestamp
            return now_s
        t = timestamp + offset
        if now_s < t <= now_s + self.max_lag_s:
            self._offset = now_s - timestamp
            self._lag_since = None
            return now_s
        if abs(t - now_s) > self.max_lag_s:
            # Far off (a backlog, a stepped wall clock, a wild stamp): keep the mapping unless
            # it has been off for max_lag_s; never stamp later than now.
            if self._lag_since is None:
                self._lag_since = now_s
            elif now_s - self._lag_since >= self.max_lag_s:
                self.jumps += 1
                self._lag_since = None
                self._offset = now_s - timestamp
                return now_s
            return min(t, now_s)
        self._lag_since = None
        return t
