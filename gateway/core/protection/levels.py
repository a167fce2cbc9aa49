"""The debounce, hysteresis and latch level of the protection checks, and the set of them.

Each alarm code has a warning and an alarm ``Level``. A level becomes active once its condition
has held for ``debounce_n`` consecutive steps *and* ``debounce_s`` seconds, and clears once the
value is back past the threshold by the hysteresis for ``clear_debounce_s``. A latching level
stays active after its cause is gone until it is reset. ``Levels`` holds the pair of every code
and turns them into the ``AlarmReport``; it knows nothing of what a check measures.
"""

from __future__ import annotations

from gateway.core.model import Alarm, AlarmReport, CommandResult, Severity
from gateway.core.protection.alarms import AlarmSpec

__all__ = ["CLEAR", "HOLD", "Check", "Level", "Levels", "above", "below"]

HOLD = (False, False)
"""Neither violated nor cleared: the value is unknown or inside the band; the level holds."""
CLEAR = (False, True)
"""Cleared: the check does not apply (or nothing is wrong); the level clears after its debounce."""


def above(x: float, threshold: float, hysteresis: float) -> tuple[bool, bool]:
    """(violated, cleared) of a high threshold: at or above it; cleared below it by the band."""
    return x >= threshold, x < threshold - hysteresis


def below(x: float, threshold: float, hysteresis: float) -> tuple[bool, bool]:
    """(violated, cleared) of a low threshold: at or below it; cleared above it by the band."""
    return x <= threshold, x > threshold + hysteresis


class Level:
    """Debounce, hysteresis and latch state of one level (warning or alarm) of one check."""

    __slots__ = (
        "active",
        "cause_gone",
        "clear_debounce_s",
        "clear_n",
        "clear_t",
        "debounce_n",
        "debounce_s",
        "latch",
        "message",
        "pend_n",
        "pend_t",
        "since_s",
    )

    def __init__(self, debounce_n: int, debounce_s: float, clear_s: float, latch: bool) -> None:
        self.debounce_n = debounce_n
        self.debounce_s = debounce_s
        self.clear_debounce_s = clear_s
        self.latch = latch
        self.active = False
        self.cause_gone = False
        self.since_s = 0.0
        self.pend_n = 0
        self.pend_t = 0.0
        self.clear_n = 0
        self.clear_t = 0.0
        self.message = ""

    def update(self, violated: bool, cleared: bool, now_s: float) -> None:
        """Advance by one step. Neither ``violated`` nor ``cleared``: in the band, hold."""
        if not self.active:
            if not violated:
                self.pend_n = 0
                return
            if self.pend_n == 0:
                self.pend_t = now_s
            self.pend_n += 1
            if self.pend_n >= self.debounce_n and now_s - self.pend_t >= self.debounce_s:
                self.active = True
                self.cause_gone = False
                self.since_s = now_s
                self.pend_n = 0
                self.clear_n = 0
            return
        if not cleared:
            self.clear_n = 0
            if violated:
                self.cause_gone = False
            return
        if self.clear_n == 0:
            self.clear_t = now_s
        self.clear_n += 1
        if now_s - self.clear_t >= self.clear_debounce_s:
            if self.latch:
                self.cause_gone = True
            else:
                self._deactivate()

    def _deactivate(self) -> None:
        self.active = False
        self.cause_gone = False
        self.pend_n = 0
        self.clear_n = 0

    def reset(self) -> bool:
        """Clear a latched level whose cause is gone; return whether it was cleared."""
        if self.active and self.latch and self.cause_gone:
            self._deactivate()
            return True
        return False

    def restore(self, message: str, now_s: float) -> None:
        """Re-activate a level that was active before a restart, its cause not known gone."""
        self.active = True
        self.cause_gone = False
        self.since_s = now_s
        self.pend_n = self.clear_n = 0
        self.message = f"{message} (restored after a restart)"


class Check:
    """Warning and alarm level of one alarm code."""

    __slots__ = ("alarm", "spec", "warning")

    def __init__(self, spec: AlarmSpec, warning: Level, alarm: Level) -> None:
        self.spec = spec
        self.warning = warning
        self.alarm = alarm


class Levels:
    """The levels of every alarm code: advanced by the checks, read as an ``AlarmReport``."""

    def __init__(self, checks: dict[str, Check]) -> None:
        """``checks``: by code, in the order the report lists them."""
        self.checks = checks

    def run(
        self,
        code: str,
        now_s: float,
        warning: tuple[bool, bool],
        alarm: tuple[bool, bool],
        message: str,
    ) -> None:
        """Advance both levels of ``code`` by one step with (violated, cleared) each.

        ``message`` replaces both levels' message when either is violated (it says the value).
        """
        c = self.checks[code]
        c.warning.update(warning[0], warning[1], now_s)
        c.alarm.update(alarm[0], alarm[1], now_s)
        if warning[0] or alarm[0]:
            c.warning.message = message
            c.alarm.message = message

    def report(self) -> AlarmReport:
        """The active warnings and alarms, one entry per code at its worst active level."""
        active: list[Alarm] = []
        for code, c in self.checks.items():
            w, a = c.warning, c.alarm
            if not (w.active or a.active):
                continue
            if a.active:
                message = a.message
                since = min(a.since_s, w.since_s) if w.active else a.since_s
                if a.cause_gone:
                    message = f"{message} [latched: cause gone, reset to clear]"
                elif a.latch:
                    message = f"{message} [latched]"
                alarm = Alarm(
                    code, Severity.ALARM, message, since, latched=a.latch, warning_too=w.active
                )
            else:
                alarm = Alarm(code, Severity.WARNING, w.message, w.since_s)
            active.append(alarm)
        if not active:
            return AlarmReport()
        return AlarmReport(active=tuple(active))

    def reset(self, now_s: float) -> CommandResult:
        """Clear latched alarms whose cause has gone; say which were cleared and which remain.

        ``accepted`` is False when a latched alarm stays because its cause persists.
        """
        cleared: list[str] = []
        kept: list[str] = []
        for code, c in self.checks.items():
            if c.alarm.active and c.alarm.latch:
                if c.alarm.reset():
                    cleared.append(code)
                else:
                    kept.append(code)
        if not cleared and not kept:
            return CommandResult(True, "no latched alarms")
        parts = []
        if cleared:
            parts.append(f"cleared {', '.join(cleared)}")
        if kept:
            parts.append(f"kept {', '.join(kept)} (cause persists)")
        return CommandResult(not kept, f"at {now_s:.1f} s: " + "; ".join(parts))

    def export_latched(self) -> dict[str, str]:
        """Active latched alarm levels as ``{code: message}``, to persist across restarts."""
        return {
            code: c.alarm.message
            for code, c in self.checks.items()
            if c.alarm.active and c.alarm.latch
        }

    def restore_latched(self, latched: dict[str, str], now_s: float) -> list[str]:
        """Re-activate the alarm levels of ``latched`` (codes not known are skipped); the codes
        restored."""
        restored: list[str] = []
        for code, message in latched.items():
            c = self.checks.get(code)
            if c is None:
                continue
            c.alarm.restore(message, now_s)
            restored.append(code)
        return restored
