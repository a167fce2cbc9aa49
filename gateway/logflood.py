"""Turn a library's log flood into one counter line a minute.

A Modbus client that sends malformed requests makes pymodbus log each one with a traceback
(28 MB of log per 100,000 frames): a disk filler any network peer can drive. ``FloodFilter``
lets the first record of a window through (its first line only, no traceback) and counts the
rest; the first record after the window closes carries the count of what was held back
(``"... (312 similar messages suppressed in the last 60 s)"``), so the log keeps the evidence at a
bounded rate. Records below WARNING pass untouched (they are off unless someone debugs).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["FloodFilter", "install_flood_filter"]


class FloodFilter(logging.Filter):
    """Passes one WARNING-or-worse record per ``window_s`` and counts the others.

    Args:
        label: who is talking, put in front of the passed record (``"pymodbus"``).
        window_s: length of a window.
        clock: monotonic seconds.
    """

    def __init__(
        self, label: str, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.label = label
        self.window_s = window_s
        self._clock = clock
        self._window_start = -float("inf")
        self._suppressed = 0
        self.total_suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is emitted (rewritten to one line when it is)."""
        if record.levelno < logging.WARNING:
            return True
        now = self._clock()
        if now - self._window_start < self.window_s:
            self._suppressed += 1
            self.total_suppressed += 1
            return False
        held = self._suppressed
        self._window_start = now
        self._suppressed = 0
        first_line = record.getMessage().strip().splitlines()[0] if record.getMessage() else ""
        text = f"{self.label}: {first_line[:300]}"
        if held:
            text += f" ({held} similar messages suppressed in the last {self.window_s:g} s)"
        record.msg = text
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True

    def flush(self, logger: logging.Logger) -> None:
        """Report, on ``logger``, what a window that has closed held back (call periodically).

        Without it the count of the last window of a flood that stopped would never be told.
        """
        if self._suppressed and self._clock() - self._window_start >= self.window_s:
            logger.warning(
                "%s: %d similar messages suppressed in the last %g s",
                self.label,
                self._suppressed,
                self.window_s,
            )
            self._suppressed = 0


def install_flood_filter(logger_name: str, label: str, window_s: float = 60.0) -> FloodFilter:
    """Attach one ``FloodFilter`` to ``logger_name`` (again: the one already there)."""
    logger = logging.getLogger(logger_name)
    for f in logger.filters:
        if isinstance(f, FloodFilter):
            return f
    flood = FloodFilter(label, window_s)
    logger.addFilter(flood)
    return flood
