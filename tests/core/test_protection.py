"""Protection: thresholds, debounce, hysteresis, latching and reset, Evt1 bits (pure, no loop)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sunspec2
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import AlarmReport, Negotiation, Severity
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import (
    ALARMS,
    EVT1_BITS,
    PROTECTION_DEFAULTS,
    Protection,
    ProtectionConfig,
)
from tests.core.packdata import feed, snapshot

PACK4 = PackConfig(cells=4, temp_sensors=2)
OK_V = (3.30, 3.30, 3.30, 3.30)


def _evt1_symbols() -> dict[str, int]:
    path = Path(sunspec2.__file__).parent / "models" / "json" / "model_802.json"
    model = json.loads(path.read_text())
    evt1 = next(p for p in model["group"]["points"] if p["name"] == "Evt1")
    return {s["name"]: s["value"] for s in evt1["symbols"]}


def test_evt1_bits_match_pysunspec2_model_802() -> None:
    symbols = _evt1_symbols()
    for name, bit in EVT1_BITS.items():
        assert symbols[name] == bit, name
    for spec in ALARMS.values():
        assert spec.evt1_warning in symbols
        assert spec.evt1_alarm in symbols


def test_every_alarm_sets_its_evt1_bits() -> None:
    assert ALARMS["cell_overvoltage"].alarm_mask == 1 << 9
    assert ALARMS["cell_overvoltage"].warning_mask == 1 << 10
    assert ALARMS["communication_loss"].alarm_mask == 1 << 0
    assert ALARMS["temperature_imbalance"].alarm_mask == 1 << 18


def _run(
    p: Protection,
    cells_v: tuple[float, ...],
    t_s: float,
    temps: tuple[float, ...] = (25.0, 25.0),
    current: float = 0.0,
) -> AlarmReport:
    return p.step(snapshot(cells_v, temps, current, t_s), None, t_s)


def test_defaults_per_chemistry_and_override_keeps_the_rest() -> None:
    lfp = Protection(ProtectionConfig(), PACK4).thresholds
    nmc = Protection(ProtectionConfig(), PackConfig(cells=4, chemistry="nmc")).thresholds
    assert lfp.cell_overvoltage_alarm_v == PROTECTION_DEFAULTS["lfp"]["cell_overvoltage_alarm_v"]
    assert nmc.cell_overvoltage_alarm_v == PROTECTION_DEFAULTS["nmc"]["cell_overvoltage_alarm_v"]
    assert lfp.overcurrent_charge_alarm_a == pytest.approx(1.3 * 100.0)
    own = Protection(ProtectionConfig(cell_overvoltage_alarm_v=3.62), PACK4).thresholds
    assert own.cell_overvoltage_alarm_v == 3.62
    assert own.cell_overvoltage_warning_v == lfp.cell_overvoltage_warning_v


def test_thresholds_out_of_order_name_the_keys() -> None:
    with pytest.raises(ValueError, match=r"cell_overvoltage_warning_v.*cell_overvoltage_alarm_v"):
        Protection(ProtectionConfig(cell_overvoltage_warning_v=3.70), PACK4)
    with pytest.raises(ValueError, match="latching"):
        ProtectionConfig(latching=("no_such_alarm",))


def test_debounce_by_count() -> None:
    p = Protection(ProtectionConfig(debounce_count=3, debounce_s=0.0), PACK4)
    high = (3.57, 3.30, 3.30, 3.30)  # above the 3.55 V warning only
    assert not _run(p, high, 0.0).has("cell_overvoltage")
    assert not _run(p, high, 0.1).has("cell_overvoltage")
    report = _run(p, high, 0.2)
    assert report.has("cell_overvoltage", Severity.WARNING)
    assert not report.has("cell_overvoltage", Severity.ALARM)
    assert report.evt1 == 1 << EVT1_BITS["OVER_VOLT_WARNING"]


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
    assert report.evt1 & (1 << EVT1_BITS["OVER_VOLT_ALARM"])
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
    assert charging.evt1 == 1 << EVT1_BITS["UNDER_TEMP_WARNING"]
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
    assert report.evt1 & (1 << EVT1_BITS["TEMPERATURE_IMBALANCE_ALARM"])


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
            assert report.evt1 & 1  # COMMUNICATION_ERROR
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
    assert report.evt1 & (1 << EVT1_BITS["CONFIGURATION_ALARM"])
    p2 = Protection(ProtectionConfig(debounce_count=1, debounce_s=0), PackConfig(cells=5))
    assert p2.step(snapshot(OK_V, (25.0,)), None, 0.0).has("configuration", Severity.ALARM)


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
    assert seen[10].evt1 & (1 << EVT1_BITS["OVER_CHARGE_CURRENT_WARNING"])
    assert seen[30].has("inverter_overcharge", Severity.ALARM)
    assert seen[30].evt1 & (1 << EVT1_BITS["OVER_CHARGE_CURRENT_ALARM"])
    # Within the margin (10 A + max(5 A, 10 %)) nothing happens; the alarm stays latched.
    report = p.step(snapshot(OK_V, (25.0, 25.0), 14.0, 50.0), None, 50.0, neg)
    assert report.has("inverter_overcharge", Severity.ALARM)
    report = p.step(snapshot(OK_V, (25.0, 25.0), 14.0, 53.0), None, 53.0, neg)
    assert p.reset(53.0).accepted
    fresh = Protection(cfg, PACK4)
    for t in range(60):
        snap = snapshot(OK_V, (25.0, 25.0), 14.0, float(t))
        assert not fresh.step(snap, None, float(t), neg).active


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.floats(2.3, 3.8), min_size=4, max_size=4),
            st.lists(st.floats(-30.0, 70.0), min_size=2, max_size=2),
            st.floats(-200.0, 200.0),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_evt1_is_exactly_the_bits_of_the_active_alarms(
    steps: list[tuple[list[float], list[float], float]],
) -> None:
    p = Protection(ProtectionConfig(debounce_count=1, debounce_s=0, imbalance_debounce_s=0), PACK4)
    for t, (cells, temps, current) in enumerate(steps):
        report = p.step(snapshot(cells, temps, current, float(t)), None, float(t))
        expected = 0
        for a in report.active:
            spec = ALARMS[a.code]
            expected |= spec.alarm_mask if a.severity is Severity.ALARM else spec.warning_mask
        # Alarms may also carry their warning bit; nothing else may appear.
        allowed = expected
        for a in report.active:
            allowed |= ALARMS[a.code].warning_mask
        assert report.evt1 & expected == expected
        assert report.evt1 & ~allowed == 0
        if max(cells) >= 3.65:
            assert report.has("cell_overvoltage", Severity.ALARM)


def test_docs_list_every_alarm_with_its_evt1_bits() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "LIMITS.md").read_text()
    rows = {
        line.split("|")[1].strip(" `"): line for line in doc.splitlines() if line.startswith("| `")
    }
    for code, spec in ALARMS.items():
        row = rows[code]
        assert f"{spec.evt1_warning} ({EVT1_BITS[spec.evt1_warning]})" in row, code
        assert f"{spec.evt1_alarm} ({EVT1_BITS[spec.evt1_alarm]})" in row, code
        assert ("yes" in row.split("|")[-2]) is (code in ProtectionConfig().latching), code
