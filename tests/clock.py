"""Time in tests without the wall clock: a clock the test moves, and waiting for a condition.

``Clock`` is injected where the code under test takes a clock (the SunSpec server and client,
the MQTT publisher); ``wait_until`` waits for what a test expects to happen instead of
sleeping a guessed time and counting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["Clock", "wait_until"]


class Clock:
    """A monotonic clock the test moves (``now_s``), injected into a server, a client or both:
    what they count in time is then counted in steps of the test, not of the wall clock."""

    def __init__(self, now_s: float = 1000.0) -> None:
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


async def wait_until(cond: Callable[[], bool], timeout_s: float = 3.0) -> None:
    """Poll ``cond`` until true (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)
