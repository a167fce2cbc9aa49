"""Bounded ring buffers behind the dashboard: plot history, alarm changes, events. No I/O.

Times are the gateway's clock (``t_s`` of the control steps, accelerated in the demo) plus the
wall-clock ``time`` the caller passes, so this module never reads a clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from gateway.core.model import AlarmReport, ControlOutput

__all__ = ["AlarmChange", "AlarmLog", "EventLog", "History", "HistoryPoint"]


def _f(x: float | None, nd: int) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """One sample of the plots; ``None`` where unknown."""

    t_s: float
    soc_pct: float | None
    current_a: float | None
    spread_mv: float | None


class History:
    """The last ``span_s`` of pack SoC, current and cell spread, one point per ``interval_s``.

    Raises:
        ValueError: a non-positive interval or span.
    """

    def __init__(self, interval_s: float, span_s: float) -> None:
        if not (interval_s > 0 and span_s > 0):
            raise ValueError(f"interval_s (={interval_s}) and span_s (={span_s}) must be > 0")
        self.interval_s = interval_s
        self._points: deque[HistoryPoint] = deque(maxlen=math.ceil(span_s / interval_s) + 1)
        self._next_s = -math.inf
        self.version = 0  # bumped on every new point (clients re-send the plot only then)

    def add(self, out: ControlOutput) -> bool:
        """Sample ``out`` when a point is due; whether one was added."""
        if out.t_s < self._next_s:
            return False
        # Due times on a grid, so a late step does not shift every later point.
        self._next_s = max(self._next_s + self.interval_s, out.t_s)
        pack = out.pack
        lo, hi = pack.min_cell_v, pack.max_cell_v
        self._points.append(
            HistoryPoint(
                t_s=round(out.t_s, 3),
                soc_pct=_f(out.soc.soc_pct, 2) if out.soc else None,
                current_a=_f(pack.current_a, 3),
                spread_mv=_f((hi - lo) * 1000.0, 1) if lo is not None and hi is not None else None,
            )
        )
        self.version += 1
        return True

    def __len__(self) -> int:
        return len(self._points)

    def columns(self) -> dict[str, list[float | None]]:
        """The points as columns (``t_s``, ``soc_pct``, ``current_a``, ``spread_mv``)."""
        pts = self._points
        return {
            "t_s": [p.t_s for p in pts],
            "soc_pct": [p.soc_pct for p in pts],
            "current_a": [p.current_a for p in pts],
            "spread_mv": [p.spread_mv for p in pts],
        }


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """An alarm raised, changed (severity or latch) or cleared."""

    t_s: float
    time: float | None
    code: str
    change: str  # "raised" | "changed" | "cleared"
    severity: str  # "warning" | "alarm" (the last one seen when cleared)
    message: str
    latched: bool


class AlarmLog:
    """The last ``size`` alarm changes, newest last."""

    def __init__(self, size: int = 200) -> None:
        self._log: deque[AlarmChange] = deque(maxlen=size)
        self._last: AlarmReport | None = None
        self._active: dict[str, tuple[int, bool, str]] = {}

    def update(self, report: AlarmReport, t_s: float, time_s: float | None) -> bool:
        """Record what changed since the last report; whether anything did."""
        if report is self._last:
            return False
        self._last = report
        now = {a.code: (int(a.severity), a.latched, a.message) for a in report.active}
        changed = False
        for code, (sev, latched, msg) in now.items():
            before = self._active.get(code)
            if before is None or before[:2] != (sev, latched):
                kind = "raised" if before is None else "changed"
                self._log.append(AlarmChange(t_s, time_s, code, kind, _sev(sev), msg, latched))
                changed = True
        for code, (sev, latched, msg) in self._active.items():
            if code not in now:
                self._log.append(AlarmChange(t_s, time_s, code, "cleared", _sev(sev), msg, latched))
                changed = True
        self._active = now
        return changed

    def items(self) -> list[dict[str, Any]]:
        """The changes as JSON-friendly dicts, oldest first."""
        return [
            {
                "t_s": round(c.t_s, 3),
                "time": c.time,
                "code": c.code,
                "change": c.change,
                "severity": c.severity,
                "message": c.message,
                "latched": c.latched,
            }
            for c in self._log
        ]


def _sev(level: int) -> str:
    return "alarm" if level >= 2 else "warning"


class EventLog:
    """The last ``size`` gateway events (start, stop, link lost and recovered), newest last."""

    def __init__(self, size: int = 200) -> None:
        self._log: deque[dict[str, Any]] = deque(maxlen=size)
        self.version = 0

    def add(self, name: str, time_s: float | None, data: dict[str, Any]) -> None:
        """Record event ``name``; ``data`` values that JSON cannot carry become strings."""
        safe = {
            str(k): v if isinstance(v, str | int | float | bool | None) else str(v)
            for k, v in data.items()
        }
        self._log.append({"time": time_s, "event": name, "data": safe})
        self.version += 1

    def items(self) -> list[dict[str, Any]]:
        """The events, oldest first."""
        return list(self._log)
