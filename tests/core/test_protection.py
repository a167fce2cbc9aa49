"""Protection checks: thresholds, debounce, hysteresis, latching and reset (pure, no loop).

The SunSpec ``Evt1`` bits of these alarms are tested in tests/sunspec/test_evt1.py; the config
and the levels on their own in test_protection_config.py and test_protection_levels.py.
"""

from __future__ import annotations

from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import AlarmReport, Negotiation, Severity
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import Protection, ProtectionConfig
from tests.core.packdata import feed, snapshot

PACK4 = PackConfig(cells=4, temp_sensors=2)
OK_V = (3.30, 3.30, 3.30, 3.30)


def _run(
    p: Protection,
    cells_v: tuple[float, ...],
    t_s: float,
    temps: tuple[float, ...] = (25.0, 25.0),
    current: float = 0.0,
) -> AlarmReport:
    return p.step(snapshot(cells_v, temps, current, t_s), None, t_s)


def test_debounce_by_count() -> None:
    p = Protection(ProtectionConfig(debounce_count=3, debounce_s=0.0), PACK4)
    high = (3.57, 3.30, 3.30, 3.30)  # above the 3.55 V warning only
    assert not _run(p, high, 0.0).has("cell_overvoltage")
    assert not _run(p, high, 0.1).has("cell_overvoltage")
    report = _run(p, high, 0.2)
    assert report.has("cell_overvoltage", Severity.WARNING)
    assert not report.has("cell_overvoltage", Severity.ALARM)
    assert [a.code for a in report.active] == ["cell_overvoltage"]


def test_debounce_by_time_restarts_after_a_good_sample() -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=2.0), PACK4)
    high = (3.57, 3.30, 3.30, 3.30)
    assert not _run(p, high, 0.0).has("cell_overvoltage")
    assert not _run(p, high, 1.5).has("cell_overvoltage")
    assert not _run(p, OK_V, 1.6).has("cell_overvoltage")  # a good sample restarts the timer
    assert not _run(p, high, 2.0).has("cell_overvoltage")
    assert not _run(p, high, 3.9).has("cell_overvoltage")
    assert _run(p, high, 4.0).has("cell_overvoltage")


def test_hysteresis_holds_until_back_past_the_band() -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0, clear_debounce_s=1.0), PACK4)
    assert _run(p, (3.56, 3.3, 3.3, 3.3), 0.0).has("cell_overvoltage")
    # 3.52 V is under the 3.55 V warning but inside the 0.05 V hysteresis band: holds.
    for t in (1.0, 5.0, 10.0):
        assert _run(p, (3.52, 3.3, 3.3, 3.3), t).has("cell_overvoltage")
    # 3.49 V is past the band, but must stay there for clear_debounce_s.
    assert _run(p, (3.49, 3.3, 3.3, 3.3), 11.0).has("cell_overvoltage")
    assert _run(p, (3.49, 3.3, 3.3, 3.3), 11.5).has("cell_overvoltage")
    assert not _run(p, (3.49, 3.3, 3.3, 3.3), 12.0).has("cell_overvoltage")


def test_critical_alarm_latches_until_reset_and_only_when_the_cause_is_gone() -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0, clear_debounce_s=1.0), PACK4)
    report = _run(p, (3.70, 3.3, 3.3, 3.3), 0.0)
    alarm = next(a for a in report.active if a.code == "cell_overvoltage")
    assert alarm.severity is Severity.ALARM
    assert alarm.latched
    assert alarm.warning_too  # 3.70 V is past the warning level as well
    result = p.reset(0.5)
    assert not result.accepted
    assert "cell_overvoltage" in result.message
    assert p.last.has("cell_overvoltage", Severity.ALARM)
    # The cause goes away; the alarm stays latched.
    for t in (1.0, 2.0, 5.0):
        report = _run(p, OK_V, t)
    assert report.has("cell_overvoltage", Severity.ALARM)
    assert "reset to clear" in next(a.message for a in report.active)
    result = p.reset(6.0)
    assert result.accepted
    assert "cleared cell_overvoltage" in result.message
    assert not p.last.has("cell_overvoltage")
    assert not _run(p, OK_V, 7.0).active


def test_non_latching_alarm_clears_by_itself() -> None:
    cfg = ProtectionConfig(debounce_count=1, debounce_s=0, clear_debounce_s=0, latching=())
    p = Protection(cfg, PACK4)
    assert _run(p, (3.70, 3.3, 3.3, 3.3), 0.0).has("cell_overvoltage", Severity.ALARM)
    assert not _run(p, OK_V, 1.0).has("cell_overvoltage")
    assert p.reset(2.0).message == "no latched alarms"


def test_charge_temperature_window_applies_only_while_charging() -> None:
    cfg = ProtectionConfig(debounce_count=1, debounce_s=0, clear_debounce_s=0)
    p = Protection(cfg, PACK4)
    cold = (-3.0, -2.0)
    resting = _run(p, OK_V, 0.0, temps=cold, current=0.0)
    assert not resting.has("charge_undertemperature")
    assert not resting.has("discharge_undertemperature")
    charging = _run(p, OK_V, 1.0, temps=cold, current=20.0)
    assert charging.has("charge_undertemperature", Severity.WARNING)
    assert not charging.has("charge_undertemperature", Severity.ALARM)
    assert [a.code for a in charging.active] == ["charge_undertemperature"]
    frozen = _run(p, OK_V, 2.0, temps=(-25.0, -24.0), current=0.0)
    assert frozen.has("discharge_undertemperature", Severity.ALARM)


def test_overcurrent_and_imbalance() -> None:
    cfg = ProtectionConfig(debounce_count=1, debounce_s=0, imbalance_debounce_s=0)
    p = Protection(cfg, PACK4)
    report = _run(p, (3.30, 3.28, 3.12, 3.30), 0.0, current=-160.0)
    assert report.has("overcurrent_discharge", Severity.ALARM)
    assert report.has("voltage_imbalance", Severity.WARNING)
    assert not report.has("voltage_imbalance", Severity.ALARM)
    report = _run(p, OK_V, 1.0, temps=(20.0, 37.0))
    assert report.has("temperature_imbalance", Severity.ALARM)


def test_stale_input_warns_at_once_and_alarms_when_it_persists() -> None:
    cfg = ProtectionConfig(startup_grace_s=0.0, stale_alarm_s=10.0)
    p = Protection(cfg, PACK4, TimeoutsConfig(cell_voltage_timeout_s=5.0))
    state = PackState(PACK4)
    feed(state, 0.0, OK_V, (25.0, 25.0), 0.0)
    assert not p.step(state.snapshot(0.0), None, 0.0).active
    for t in range(1, 30):
        # Cell 3 (index 2) stops reporting at t = 0; everything else keeps coming.
        feed(state, float(t), (3.3, 3.3, None, 3.3), (25.0, 25.0), 0.0)
        report = p.step(state.snapshot(float(t)), None, float(t))
        if t <= 5:
            assert not report.has("stale_data"), t
        elif t < 16:
            assert report.has("stale_data", Severity.WARNING), t
            assert not report.has("stale_data", Severity.ALARM), t
            assert "cell_voltage[3]" in report.active[0].message
        else:
            assert report.has("stale_data", Severity.ALARM), t
    assert not report.has("communication_loss")


def test_communication_loss_when_nothing_arrives() -> None:
    p = Protection(ProtectionConfig(startup_grace_s=3.0), PACK4)
    state = PackState(PACK4)
    assert not p.step(state.snapshot(0.0), None, 0.0).has("communication_loss")
    assert p.step(state.snapshot(3.0), None, 3.0).has("communication_loss", Severity.ALARM)
    for t in (4.0, 5.0, 6.0):  # data again: clears after clear_debounce_s (2 s)
        feed(state, t, OK_V, (25.0, 25.0), 0.0)
        report = p.step(state.snapshot(t), None, t)
    assert not report.has("communication_loss")
    assert not p.step(state.snapshot(10.9), None, 10.9).has("communication_loss")
    assert p.step(state.snapshot(11.5), None, 11.5).has("communication_loss", Severity.ALARM)


def test_configuration_fault_on_pack_voltage_mismatch() -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0), PACK4)
    snap = snapshot(OK_V, (25.0, 25.0), 0.0, 0.0, pack_v=13.2 + 1.0)
    report = p.step(snap, None, 0.0)
    assert report.has("configuration", Severity.ALARM)
    p2 = Protection(ProtectionConfig(debounce_count=1, debounce_s=0), PackConfig(cells=5))
    assert p2.step(snapshot(OK_V, (25.0,)), None, 0.0).has("configuration", Severity.ALARM)


def test_configuration_fault_names_the_setting_when_the_bms_sends_more_cells() -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0), PACK4)
    state = PackState(PACK4)
    feed(state, 0.0, OK_V, (25.0, 25.0), 0.0)
    assert not p.step(state.snapshot(0.0), None, 0.0).has("configuration")
    feed(state, 1.0, (*OK_V, 3.3, 3.3), (25.0, 25.0), 0.0)  # a sixth cell: 6 cells, not 4
    report = p.step(state.snapshot(1.0), None, 1.0)
    assert report.has("configuration", Severity.ALARM)
    messages = [a.message for a in report.active if a.code == "configuration"]
    assert any("cell 6 (pack.cells = 4)" in m for m in messages), messages


def test_inverter_disobedience_warning_then_latched_alarm() -> None:
    cfg = ProtectionConfig(disobedience_warning_s=10.0, disobedience_alarm_s=30.0)
    p = Protection(cfg, PACK4)
    neg = Negotiation("server", True, requested_ccl_a=10.0, requested_dcl_a=50.0)
    seen: dict[float, AlarmReport] = {}
    for t in range(41):
        snap = snapshot(OK_V, (25.0, 25.0), 30.0, float(t))
        seen[t] = p.step(snap, None, float(t), neg)
    assert not seen[9].has("inverter_overcharge")
    assert seen[10].has("inverter_overcharge", Severity.WARNING)
    assert seen[30].has("inverter_overcharge", Severity.ALARM)
    overcharge = next(a for a in seen[30].active if a.code == "inverter_overcharge")
    assert overcharge.warning_too  # its warning level, active since 10 s, holds as well
    # Within the margin (10 A + max(5 A, 10 %)) nothing happens; the alarm stays latched.
    report = p.step(snapshot(OK_V, (25.0, 25.0), 14.0, 50.0), None, 50.0, neg)
    assert report.has("inverter_overcharge", Severity.ALARM)
    report = p.step(snapshot(OK_V, (25.0, 25.0), 14.0, 53.0), None, 53.0, neg)
    assert p.reset(53.0).accepted
    fresh = Protection(cfg, PACK4)
    for t in range(60):
        snap = snapshot(OK_V, (25.0, 25.0), 14.0, float(t))
        assert not fresh.step(snap, None, float(t), neg).active
