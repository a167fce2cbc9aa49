"""Health of the running gateway as the updater judges it: the record, the gate and the watch.

The daemon writes a :class:`HealthRecord` about once a second (``gateway.update.agent``); the
updater reads it to decide whether an update may start (:func:`unsafe_reason`) and whether a
restarted gateway is healthy (:class:`HealthWatch`). Pure: every function takes the wall time
``now_s`` it judges at (the record crosses processes, so it carries wall seconds).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HealthRecord", "HealthWatch", "Verdict", "WatchResult", "unsafe_reason"]


@dataclass(frozen=True, slots=True)
class HealthRecord:
    """What the daemon reports about itself.

    Attributes:
        boot_id: random per daemon process start (a restart changes it).
        written_s: wall time of the record (Unix seconds).
        seq: control steps run so far (a live control loop increases it).
        complete: a complete, fresh data set is in.
        current_a: pack current (positive = charging), ``None`` when unknown.
        alarms: codes of the active ALARM-level (or worse) conditions.
        links: link name -> up (``can``, ``inverter``, ``storage_controller``).
        hold: the external hold term in force (``"update"``), ``None`` if none.
        ccl_a: the charge current limit sent to the inverter.
        dcl_a: the discharge current limit sent to the inverter.
        version: the gateway's package version.
    """

    boot_id: str
    written_s: float
    seq: int
    complete: bool
    current_a: float | None
    alarms: tuple[str, ...] = ()
    links: Mapping[str, bool] = field(default_factory=dict)
    hold: str | None = None
    ccl_a: float = 0.0
    dcl_a: float = 0.0
    version: str = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "boot_id": self.boot_id,
            "written_s": self.written_s,
            "seq": self.seq,
            "complete": self.complete,
            "current_a": self.current_a,
            "alarms": list(self.alarms),
            "links": dict(self.links),
            "hold": self.hold,
            "ccl_a": self.ccl_a,
            "dcl_a": self.dcl_a,
            "version": self.version,
        }

    @classmethod
    def from_json(cls, data: Any) -> HealthRecord:
        """Parse :meth:`to_json` output.

        Raises:
            ValueError: a field is missing or of the wrong type.
        """
        try:
            current = data["current_a"]
            rec = cls(
                boot_id=str(data["boot_id"]),
                written_s=float(data["written_s"]),
                seq=int(data["seq"]),
                complete=bool(data["complete"]),
                current_a=None if current is None else float(current),
                alarms=tuple(str(a) for a in data.get("alarms", ())),
                links={str(k): bool(v) for k, v in dict(data.get("links", {})).items()},
                hold=None if data.get("hold") is None else str(data["hold"]),
                ccl_a=float(data.get("ccl_a", 0.0)),
                dcl_a=float(data.get("dcl_a", 0.0)),
                version=str(data.get("version", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"health record malformed: {e}") from None
        if not math.isfinite(rec.written_s):
            raise ValueError("health record malformed: written_s not finite")
        return rec


def unsafe_reason(
    record: HealthRecord | None, now_s: float, *, stale_s: float, safe_current_a: float
) -> str | None:
    """Why the pack is not in a safe state to update, or ``None`` when it is.

    Safe: a fresh record from the running gateway, no active alarm, and a known pack current
    whose magnitude is at most ``safe_current_a``.
    """
    if record is None:
        return "pack state unknown (no health record from the running gateway)"
    age = now_s - record.written_s
    if age > stale_s:
        return f"pack state unknown (the gateway's health record is {age:.0f} s old)"
    if record.alarms:
        return f"alarm active: {', '.join(record.alarms)}"
    if record.current_a is None:
        return "pack current unknown"
    if abs(record.current_a) > safe_current_a:
        return f"pack current {record.current_a:.1f} A exceeds {safe_current_a:g} A"
    return None


class Verdict(enum.Enum):
    """The state of a health watch."""

    PENDING = "pending"
    PASSED = "passed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WatchResult:
    """A verdict and, for a failure, why."""

    verdict: Verdict
    reason: str = ""


class HealthWatch:
    """Judges a restarted gateway over a window against the record from before the restart.

    The window starts with the first record from the new process (another ``boot_id``), which
    must arrive within ``restart_timeout_s`` of the restart. Healthy at the end of the window
    when: the latest record is fresh (the control loop is alive) and its step count has
    advanced; data is complete if it was before (always, without a baseline); every link up
    before is up; and no alarm that was not active before appeared at any time (that fails at
    once).

    Args:
        baseline: the record before the restart (``None``: the gateway was not running).
        started_s: wall time of the restart.
        window_s: how long to watch the new process.
        stale_s: a record older than this at the end means a hung or dead gateway.
        restart_timeout_s: how long the new process may take to write its first record.
    """

    def __init__(
        self,
        baseline: HealthRecord | None,
        started_s: float,
        window_s: float,
        stale_s: float,
        restart_timeout_s: float = 60.0,
    ) -> None:
        self.baseline = baseline
        self.started_s = started_s
        self.window_s = window_s
        self.stale_s = stale_s
        self.restart_timeout_s = restart_timeout_s
        self._first: HealthRecord | None = None
        self._first_seen_s = 0.0
        self._last: HealthRecord | None = None

    def _is_new(self, rec: HealthRecord) -> bool:
        if self.baseline is not None and rec.boot_id == self.baseline.boot_id:
            return False
        return rec.written_s >= self.started_s

    def observe(self, record: HealthRecord | None, now_s: float) -> WatchResult:
        """Take the latest record (``None``: none readable) at ``now_s``; the verdict so far."""
        if record is not None and self._is_new(record):
            if self._first is None:
                self._first = record
                self._first_seen_s = now_s
            self._last = record
            before = set(self.baseline.alarms) if self.baseline else set()
            new = [a for a in record.alarms if a not in before]
            if new:
                return WatchResult(Verdict.FAILED, f"new alarm after the restart: {', '.join(new)}")
        if self._first is None:
            if now_s - self.started_s < self.restart_timeout_s:
                return WatchResult(Verdict.PENDING)
            return WatchResult(
                Verdict.FAILED,
                f"the gateway did not come back (no health record from a new process in "
                f"{self.restart_timeout_s:g} s)",
            )
        if now_s - self._first_seen_s < self.window_s:
            return WatchResult(Verdict.PENDING)
        return self._final(now_s)

    def _final(self, now_s: float) -> WatchResult:
        first, last = self._first, self._last
        assert first is not None
        assert last is not None
        age = now_s - last.written_s
        if age > self.stale_s:
            return WatchResult(
                Verdict.FAILED, f"control loop not alive (last health record {age:.1f} s old)"
            )
        if last.seq <= first.seq:
            return WatchResult(Verdict.FAILED, "control loop not alive (step count not advancing)")
        if (self.baseline is None or self.baseline.complete) and not last.complete:
            return WatchResult(Verdict.FAILED, "data incomplete after the restart")
        if self.baseline is not None:
            down = [n for n, up in self.baseline.links.items() if up and not last.links.get(n)]
            if down:
                return WatchResult(
                    Verdict.FAILED, f"link down after the restart (up before): {', '.join(down)}"
                )
        return WatchResult(Verdict.PASSED)
