"""Trend warnings in the control step: published with the alarms, never cutting a limit."""

from __future__ import annotations

from gateway.control import Controller
from gateway.core.health import HealthCode, HealthWarning
from gateway.core.model import Severity
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

WARN = HealthWarning(
    HealthCode.CELL_SELF_DISCHARGE, 3, 0.97, 0.02, 9, "cell 4: leaks 0.97 %/day more ..."
)


def test_warnings_join_the_alarms_and_leave_the_limits_alone() -> None:
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=60.0), seed=2)
    plain, warned = Controller(Settings()), Controller(Settings())
    t = 0.0
    for step in range(400):
        t += 0.5
        sim.step(0.5, 20.0)
        readings = sim.readings(t)
        if step == 100:
            warned.set_health_warnings((WARN,), t)
        plain.ingest(readings)
        warned.ingest(readings)
        a, b = plain.step(t), warned.step(t)
        assert a.limits == b.limits  # the very same limits, terms and winners at every step
        assert a.mode == b.mode
        assert b.alarms.has("cell_self_discharge") is (step >= 100)
    assert b.limits.ccl_a.value > 0
    alarm = next(x for x in b.alarms.active if x.code == "cell_self_discharge")
    assert alarm.severity is Severity.WARNING
    assert alarm.since_s == 50.5
    assert "cell 4" in alarm.message
    # The next daily report with the same warning keeps its start; a cleared one goes.
    warned.set_health_warnings((WARN,), t)
    assert next(x for x in warned.step(t + 1).alarms.active if x.code == WARN.code).since_s == 50.5
    warned.set_health_warnings((), t + 2)
    assert not warned.step(t + 3).alarms.has("cell_self_discharge")
