"""Plausibility: readings no healthy cell or sensor can show are measurement faults (pure).

A measurement fault has no value (so the limits are 0 A through ``implausible:...``), raises
``measurement_fault`` at once, never feeds over/under-voltage (so never latches them) and clears by
itself once plausible readings return.
"""

from __future__ import annotations

import math

import pytest

from gateway.core.freshness import TimeoutsConfig, stale_inputs
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import Reading, Role, Severity
from gateway.core.pack import PackConfig, PackState
from gateway.core.plausibility import PlausibilityConfig, contradicted_cells
from gateway.core.protection import Protection, ProtectionConfig

PACK = PackConfig(cells=4, temp_sensors=2, chemistry="lfp")
NMC = PackConfig(cells=4, temp_sensors=2, chemistry="nmc")


def feed(
    state: PackState,
    t: float,
    cells: list[float],
    temps: tuple[float, ...] = (20.0, 21.0),
    current: float = -10.0,
    pack_v: float | None = None,
) -> None:
    for i, v in enumerate(cells):
        state.apply(Reading(Role.CELL_VOLTAGE, i, v, t))
    for j, c in enumerate(temps):
        state.apply(Reading(Role.CELL_TEMPERATURE, j, c, t))
    state.apply(Reading(Role.PACK_CURRENT, 0, current, t))
    if pack_v is not None:
        state.apply(Reading(Role.PACK_VOLTAGE, 0, pack_v, t))


GOOD = [3.30, 3.301, 3.302, 3.303]


@pytest.mark.parametrize(
    ("cells", "temps", "current", "input_name"),
    [
        ([3.3, 3.3, 0.85, 3.3], (20.0, 21.0), -10.0, "cell_voltage[3]"),  # the field case (index 2)
        ([3.3, 0.0, 3.3, 3.3], (20.0, 21.0), -10.0, "cell_voltage[2]"),  # 0 V
        ([3.3, 3.3, 3.3, 65.535], (20.0, 21.0), -10.0, "cell_voltage[4]"),  # 0xFFFF mV
        ([3.3, 3.3, 3.3, math.nan], (20.0, 21.0), -10.0, "cell_voltage[4]"),  # a sentinel
        (GOOD, (215.0, 21.0), -10.0, "temperature[1]"),  # raw 0xFF - 40 degC
        (GOOD, (20.0, -273.15), -10.0, "temperature[2]"),  # an open thermistor
        (GOOD, (20.0, 21.0), 5000.0, "current"),  # 50 C on a 100 Ah pack
        (GOOD, (20.0, 21.0), math.inf, "current"),
    ],
)
def test_implausible_reading_is_a_fault_with_no_value(
    cells: list[float], temps: tuple[float, ...], current: float, input_name: str
) -> None:
    state = PackState(PACK)
    feed(state, 10.0, cells, temps, current)
    snap = state.snapshot(10.1)
    assert [f.name for f in snap.faults] == [input_name]
    assert not snap.complete
    assert state.implausible == 1
    stale = stale_inputs(snap, TimeoutsConfig().input_timeouts(PACK))
    assert [s.name for s in stale] == [f"implausible:{input_name}"]
    # A plausible reading ends it.
    feed(state, 11.0, GOOD)
    snap = state.snapshot(11.1)
    assert snap.faults == ()
    assert snap.complete


def test_windows_follow_the_chemistry_and_the_settings() -> None:
    # 4.6 V: implausible on LFP (window up to 4.5 V), an overcharged but real NMC cell.
    for pack, faults in ((PACK, 1), (NMC, 0)):
        state = PackState(pack)
        feed(state, 1.0, [3.6, 3.6, 3.6, 4.6])
        assert len(state.snapshot(1.0).faults) == faults
    own = PlausibilityConfig(cell_voltage_min_v=2.0)
    state = PackState(PACK, own)
    feed(state, 1.0, [3.3, 3.3, 3.3, 1.9])
    assert [f.name for f in state.snapshot(1.0).faults] == ["cell_voltage[4]"]  # index 3


def test_an_invalid_flag_is_missing_not_a_fault() -> None:
    state = PackState(PACK)
    feed(state, 1.0, GOOD)
    state.apply(Reading(Role.CELL_VOLTAGE, 1, 0.0, 1.5, valid=False))
    snap = state.snapshot(1.6)
    assert snap.faults == ()
    assert snap.cell_voltage_v[1] is None
    stale = stale_inputs(snap, TimeoutsConfig().input_timeouts(PACK))
    assert [s.name for s in stale] == ["missing:cell_voltage[2]"]  # index 1


def test_pack_voltage_contradicts_a_cell_inside_the_window() -> None:
    # 2.0 V is a possible LFP reading, but the string measures 13.2 V: cell 3 is wrong.
    state = PackState(PACK)
    feed(state, 1.0, [3.3, 3.3, 2.0, 3.3], pack_v=13.2)
    snap = state.snapshot(1.0)
    assert [f.name for f in snap.faults] == ["cell_voltage[3]"]
    assert "pack voltage" in snap.faults[0].why
    assert snap.cell_voltage_v[2] is None
    # The pack voltage agrees with a really low cell: believed.
    state = PackState(PACK)
    feed(state, 1.0, [3.3, 3.3, 2.0, 3.3], pack_v=11.9)
    assert state.snapshot(1.0).faults == ()
    # A stale pack voltage contradicts nothing.
    state = PackState(PACK)
    state.apply(Reading(Role.PACK_VOLTAGE, 0, 13.2, 0.0))
    feed(state, 10.0, [3.3, 3.3, 2.0, 3.3])
    assert state.snapshot(10.0).faults == ()


@pytest.mark.parametrize(
    ("cells", "pack_v", "blamed"),
    [
        ((3.3, 3.3, 3.3, 3.3), 13.2, ()),
        ((3.3, 3.3, 0.85, 3.3), 13.2, (2,)),
        ((3.3, 3.3, 4.9, 3.3), 13.2, (2,)),  # a high outlier
        ((3.3, 0.85), 6.6, (1,)),
        ((3.3, 3.3, 3.3, 3.3), 26.4, ()),  # no single cell explains it: wiring or cell count
        ((3.3,), 1.0, ()),
        ((3.3, 3.3), math.nan, ()),
    ],
)
def test_contradicted_cells(cells: tuple[float, ...], pack_v: float, blamed: tuple[int]) -> None:
    assert contradicted_cells(cells, pack_v, 0.5) == blamed


def test_measurement_fault_cuts_both_limits_clears_by_itself_and_never_latches() -> None:
    pcfg = ProtectionConfig()
    state = PackState(PACK)
    prot = Protection(pcfg, PACK)
    lim = LimitsCalculator(LimitsConfig(ramp_hold_s=0.0, ramp_a_per_s=1000.0), PACK)
    t = 0.0
    reports = []
    for k in range(60):
        t = k * 0.5
        glitch = 10.0 <= t < 12.5
        feed(state, t, [3.3, 3.3, 0.85 if glitch else 3.302, 3.3], pack_v=13.2)
        snap = state.snapshot(t)
        alarms = prot.step(snap, None, t)
        limits = lim.step(snap, None, alarms, t)
        reports.append((t, alarms, limits))
        if glitch:
            assert alarms.has("measurement_fault", Severity.ALARM)
            assert limits.ccl_a.value == 0.0
            assert limits.dcl_a.value == 0.0
        assert not alarms.has("cell_undervoltage")
        assert not alarms.has("stale_data")  # implausible is its own alarm
    _, end_alarms, end_limits = reports[-1]
    assert end_alarms.active == ()
    assert end_limits.dcl_a.value == 100.0
    assert not any(a.latched for _, r, _ in reports for a in r.active)


def test_measurement_fault_cannot_be_made_to_latch() -> None:
    with pytest.raises(ValueError, match="measurement_fault"):
        ProtectionConfig(latching=("measurement_fault",))


@pytest.mark.parametrize(
    "kw",
    [
        {"cell_voltage_min_v": 4.0, "cell_voltage_max_v": 3.0},
        {"cell_temp_min_c": 50.0, "cell_temp_max_c": 40.0},
        {"cell_voltage_max_v": math.inf},
        {"current_max_c": math.nan},
        {"cross_check_v": 0.0},
    ],
)
def test_plausibility_settings_are_checked(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"cell_voltage|cell_temp|current_max_c|cross_check_v"):
        PlausibilityConfig(**kw)
