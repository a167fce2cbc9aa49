"""core/pack.py: the latest value and age of every input, and what a snapshot shows."""

from __future__ import annotations

import math

import pytest

from gateway.core.model import Reading, Role
from gateway.core.pack import InputTimeouts, PackConfig, PackState, cell_temps

TIMEOUTS = InputTimeouts(cell_voltage_s=5.0, temperature_s=10.0, current_s=2.0)


def _pack(cells: int = 4, sensors: int = 2, **kw: object) -> PackState:
    cfg = PackConfig(cells=cells, temp_sensors=sensors, **kw)
    return PackState(cfg, timeouts=TIMEOUTS)


def _fill(p: PackState, t_s: float, cell_v: float = 3.3) -> None:
    for i in range(p.config.cells):
        p.apply(Reading(Role.CELL_VOLTAGE, i, cell_v + 0.01 * i, t_s))
    for j in range(p.config.temp_sensors):
        p.apply(Reading(Role.CELL_TEMPERATURE, j, 25.0 + j, t_s))
    p.apply(Reading(Role.PACK_CURRENT, 0, 10.0, t_s))


def test_a_full_fresh_set_is_complete_and_the_pack_voltage_is_the_cell_sum() -> None:
    p = _pack()
    _fill(p, 100.0)
    s = p.snapshot(101.0, frames=7, errors=1)
    assert s.complete
    assert s.cell_voltage_v == pytest.approx((3.3, 3.31, 3.32, 3.33))
    assert s.cell_voltage_age_s == (1.0, 1.0, 1.0, 1.0)
    assert s.cell_temp_c == (25.0, 26.0)
    assert s.current_a == 10.0
    assert s.pack_voltage_v == pytest.approx(3.3 + 3.31 + 3.32 + 3.33)
    assert s.pack_voltage_age_s == 1.0  # as old as the oldest cell
    assert (s.frames, s.errors, s.faults) == (7, 1, ())


def test_nothing_seen_is_unknown_and_incomplete() -> None:
    s = _pack().snapshot(0.0)
    assert not s.complete
    assert s.cell_voltage_v == (None,) * 4
    assert s.cell_voltage_age_s == (None,) * 4
    assert s.current_a is None
    assert s.pack_voltage_v is None


def test_a_value_past_its_timeout_is_shown_as_unknown_not_as_live() -> None:
    p = _pack()
    _fill(p, 100.0)
    s = p.snapshot(102.5)  # the current (2 s) is stale, cells (5 s) and temps (10 s) are not
    assert s.current_a is None
    assert s.current_age_s == 2.5
    assert not s.complete
    assert None not in s.cell_voltage_v
    s = p.snapshot(105.5)
    assert s.cell_voltage_v == (None,) * 4
    assert s.pack_voltage_v is None  # no cell sum from stale cells


def test_a_reading_stamped_in_the_future_is_not_trusted() -> None:
    p = _pack()
    _fill(p, 100.0)
    p.apply(Reading(Role.CELL_VOLTAGE, 2, 3.4, 200.0))
    s = p.snapshot(101.0)
    assert s.cell_voltage_v[2] is None
    assert s.cell_voltage_age_s[2] == -99.0
    assert not s.complete


def test_an_invalid_reading_clears_the_value_until_a_valid_one_arrives() -> None:
    p = _pack()
    _fill(p, 100.0)
    p.apply(Reading(Role.PACK_CURRENT, 0, 10.0, 100.5, valid=False))
    assert p.snapshot(101.0).current_a is None
    p.apply(Reading(Role.PACK_CURRENT, 0, -5.0, 100.8))
    assert p.snapshot(101.0).current_a == -5.0
    assert p.snapshot(101.0).complete


def test_an_implausible_reading_is_counted_cleared_and_listed_as_a_fault() -> None:
    p = _pack()
    _fill(p, 100.0)
    p.apply(Reading(Role.CELL_VOLTAGE, 1, 9.9, 100.0))
    p.apply(Reading(Role.CELL_TEMPERATURE, 0, math.nan, 100.0))
    s = p.snapshot(100.5)
    assert p.implausible == 2
    assert s.cell_voltage_v[1] is None
    assert s.cell_temp_c[0] is None
    assert [(f.input, f.index) for f in s.faults] == [("cell_voltage", 1), ("temperature", 0)]
    assert "outside the plausible" in s.faults[0].why
    assert "sentinel" in s.faults[1].why
    assert not s.complete
    # A plausible value clears the fault.
    p.apply(Reading(Role.CELL_VOLTAGE, 1, 3.31, 100.6))
    p.apply(Reading(Role.CELL_TEMPERATURE, 0, 25.0, 100.6))
    s = p.snapshot(101.0)
    assert s.faults == ()
    assert s.complete


def test_out_of_range_indices_are_dropped_and_counted() -> None:
    p = _pack()
    assert not p.apply(Reading(Role.CELL_VOLTAGE, 4, 3.3, 0.0))
    assert not p.apply(Reading(Role.CELL_TEMPERATURE, -1, 25.0, 0.0))
    assert not p.apply(Reading(Role.BALANCING_STATUS, 9, 1.0, 0.0))
    assert p.apply(Reading(Role.BALANCING_STATUS, 3, 1.0, 0.0))
    assert (p.dropped, p.applied) == (3, 1)
    assert p.snapshot(0.0).balancing_active == (False, False, False, True)


def test_a_pack_voltage_that_contradicts_one_cell_blames_that_cell() -> None:
    p = _pack(cells=8)
    _fill(p, 100.0)
    true_sum = sum(3.3 + 0.01 * i for i in range(8))
    p.apply(Reading(Role.CELL_VOLTAGE, 5, 3.3 + 0.05 + 0.6, 100.0))  # reads 0.6 V high
    p.apply(Reading(Role.PACK_VOLTAGE, 0, true_sum, 100.0))
    s = p.snapshot(100.5)
    assert s.cell_voltage_v[5] is None
    assert [(f.input, f.index) for f in s.faults] == [("cell_voltage", 5)]
    assert "contradicted by the pack voltage" in s.faults[0].why
    assert s.pack_voltage_v == pytest.approx(true_sum)


def test_a_required_pack_voltage_makes_the_set_incomplete_until_seen() -> None:
    p = _pack(require_pack_voltage=True)
    _fill(p, 100.0)
    assert not p.snapshot(100.0).complete
    p.apply(Reading(Role.PACK_VOLTAGE, 0, 13.26, 100.0))
    assert p.snapshot(100.0).complete


def test_sensor_roles_pick_the_cell_sensors() -> None:
    cfg = PackConfig(cells=4, temp_sensors=4, board_sensors=(1, 3))
    assert cfg.cell_sensors() == (0, 2)
    assert cell_temps((10.0, 50.0, 12.0, None), cfg.cell_sensors()) == (10.0, 12.0)
    assert cell_temps((10.0, None), None) == (10.0, None)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"temp_sensors": 2, "board_sensors": (2,)}, "within 0..1"),
        ({"temp_sensors": 2, "board_sensors": (0, 1)}, "leaves no cell sensor"),
        ({"chemistry": "lead"}, "must be 'lfp' or 'nmc'"),
    ],
)
def test_bad_pack_settings_are_named(kw: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PackConfig(**kw)


def test_cells_and_sensors_beyond_the_configured_pack_are_reported_while_they_come() -> None:
    p = _pack(cells=4, sensors=2)
    _fill(p, 100.0)
    assert (p.snapshot(100.0).extra_cell_number, p.snapshot(100.0).extra_sensor_number) == (0, 0)
    for i in range(16):  # the BMS has 16 cells and 3 sensors
        p.apply(Reading(Role.CELL_VOLTAGE, i, 3.3, 101.0))
    p.apply(Reading(Role.CELL_TEMPERATURE, 2, 25.0, 101.0))
    s = p.snapshot(102.0)
    assert (s.extra_cell_number, s.extra_sensor_number) == (16, 3)
    assert s.cell_count == 4  # the configured cells are still the pack's
    # Gone once none has come for a timeout (cells 5 s, sensors 10 s here).
    assert p.snapshot(106.5).extra_cell_number == 0
    assert p.snapshot(106.5).extra_sensor_number == 3
    assert p.snapshot(111.5).extra_sensor_number == 0
    # A negative index is a numbering fault, not a bigger pack: dropped, not reported.
    p.apply(Reading(Role.CELL_VOLTAGE, -1, 3.3, 112.0))
    # Unused slots of a frame (flagged invalid, 0 V, a sentinel) are not cells either.
    p.apply(Reading(Role.CELL_VOLTAGE, 5, 3.3, 112.0, False))
    p.apply(Reading(Role.CELL_VOLTAGE, 6, 0.0, 112.0))
    p.apply(Reading(Role.CELL_VOLTAGE, 7, math.nan, 112.0))
    assert p.snapshot(112.0).extra_cell_number == 0
