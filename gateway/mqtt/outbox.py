"""The publisher's outbox: a bounded queue of alarm changes, balancing changes and events. Pure.

While the broker is away the publisher keeps only the latest control step (``state``, ``cells``
are rebuilt from it); what must not be lost between two steps (an alarm change, a balancing
change, an event, a health report) waits here. When the queue is full the oldest entry is
dropped and counted; the count is reported once the link recovers (``mqtt_link_recovered``).
No I/O, no clock: the publisher sends and waits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

__all__ = ["Msg", "Outbox", "deferred_json"]


@dataclass(frozen=True, slots=True)
class Msg:
    """One MQTT message to send."""

    topic: str
    payload: str | Callable[[], str]  # a callable is built when sent, not in the control step
    retain: bool
    qos: int
    kind: str = ""  # "alarms" | "balancing" | "event" | "health"
    key: Any = None  # alarms_key / balancing_key of an alarms or balancing message

    def text(self) -> str:
        """The payload, built now if it was deferred."""
        return self.payload() if callable(self.payload) else self.payload


def deferred_json(build: Callable[..., BaseModel], *args: Any) -> str:
    """``build(*args)`` as JSON (deferred by ``functools.partial`` until the message is sent)."""
    return build(*args).model_dump_json()


class Outbox:
    """A FIFO of messages bounded at ``size``: pushing onto a full queue drops the oldest.

    Args:
        size: most messages kept (``mqtt.queue_size``).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: deque[Msg] = deque()
        self.dropped = 0
        """Messages dropped since the last report (reset by the publisher once reported)."""
        self.dropped_total = 0
        """Messages dropped since start."""

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, msg: Msg) -> None:
        """Append ``msg``; when the queue is full, drop (and count) the oldest first."""
        if len(self._queue) >= self.size:
            self._queue.popleft()
            self.dropped += 1
            self.dropped_total += 1
        self._queue.append(msg)

    def push_front(self, msg: Msg) -> None:
        """Put ``msg`` first, beyond the bound (reporting drops must not drop more)."""
        self._queue.appendleft(msg)

    def head(self) -> Msg | None:
        """The oldest message, left in the queue until ``forget``; ``None`` when empty."""
        return self._queue[0] if self._queue else None

    def forget(self, msg: Msg) -> None:
        """Take ``msg`` off the queue (unless the bound already dropped it)."""
        if self._queue and self._queue[0] is msg:
            self._queue.popleft()
