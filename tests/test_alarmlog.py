"""Alarm transitions reach the log once each, with value, threshold and level."""

from __future__ import annotations

import logging

import pytest

from gateway.alarmlog import AlarmLog
from gateway.core.model import Alarm, AlarmReport, Severity

MSG = "cell 0 at 3.700 V (alarm >= 3.65 V)"


def _report(*alarms: tuple[str, Severity]) -> AlarmReport:
    return AlarmReport(tuple(Alarm(code, sev, MSG, 0.0) for code, sev in alarms))


def test_each_transition_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="test.alarms")
    alarms = AlarmLog(logging.getLogger("test.alarms"))
    seq = [
        _report(),
        _report(("cell_overvoltage", Severity.WARNING)),
        *[_report(("cell_overvoltage", Severity.WARNING))] * 50,  # published every step
        _report(("cell_overvoltage", Severity.ALARM)),
        *[_report(("cell_overvoltage", Severity.ALARM))] * 50,
        _report(("cell_overvoltage", Severity.WARNING)),
        _report(),
        _report(),
    ]
    for r in seq:
        alarms.update(r)
    got = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert got == [
        ("WARNING", f"warning cell_overvoltage raised: {MSG}"),
        ("ERROR", f"alarm cell_overvoltage raised from warning: {MSG}"),
        ("INFO", f"warning cell_overvoltage eased from alarm: {MSG}"),
        ("INFO", "warning cell_overvoltage cleared"),
    ]
