"""Alarm transitions in the log: each raise, change of level and clear, once.

The control step publishes the active alarms every step (MQTT ``alarms``, SunSpec ``Evt1``); the
journal needs the transitions only. ``AlarmLog.update`` compares the codes and levels of a
report with the last one and logs what changed, with the check's own message (value, threshold
and level, e.g. ``cell 0 at 3.700 V (alarm >= 3.65 V)``): a raised alarm at ERROR, a warning at
WARNING, a clear or an easing at INFO.
"""

from __future__ import annotations

import logging

from gateway.core.model import AlarmReport, Severity

__all__ = ["AlarmLog"]


class AlarmLog:
    """Logs the transitions between successive alarm reports on ``logger``."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._levels: dict[str, Severity] = {}
        self._last: AlarmReport | None = None

    def update(self, report: AlarmReport) -> None:
        """Log what changed since the last report (nothing when it is the same object)."""
        if report is self._last:
            return
        self._last = report
        now = {a.code: a for a in report.active}
        for code, alarm in now.items():
            before = self._levels.get(code)
            if before == alarm.severity:
                continue
            name = alarm.severity.name.lower()
            if before is None:
                what = "raised"
            elif alarm.severity > before:
                what = f"raised from {before.name.lower()}"
            else:
                what = f"eased from {before.name.lower()}"
            level = logging.ERROR if alarm.severity >= Severity.ALARM else logging.WARNING
            if before is not None and alarm.severity < before:
                level = logging.INFO
            self._log.log(level, "%s %s %s: %s", name, code, what, alarm.message)
            self._levels[code] = alarm.severity
        for code in [c for c in self._levels if c not in now]:
            self._log.info("%s %s cleared", self._levels.pop(code).name.lower(), code)
