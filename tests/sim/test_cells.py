"""The drawn cells (``gateway.sim.cells``) and the sensors (``gateway.sim.sensors``) of the
simulated pack: seeded, independent streams, faults that replace one cell's draw only."""

from __future__ import annotations

import random

import pytest

from gateway.core.chemistry import get_chemistry
from gateway.core.model import Role
from gateway.sim.cells import CellFault, PackSimConfig, draw_cells
from gateway.sim.sensors import Sensors, readings

LFP = get_chemistry("lfp")


def test_a_seed_always_draws_the_same_cells() -> None:
    cfg = PackSimConfig(cells=8, voltage_offset_spread_mv=3.0)
    a = draw_cells(cfg, LFP, random.Random(5))
    b = draw_cells(cfg, LFP, random.Random(5))
    c = draw_cells(cfg, LFP, random.Random(6))
    assert a == b
    assert a != c
    params, socs = a
    assert [p.index for p in params] == list(range(8))
    assert len(socs) == 8
    assert all(0.0 <= s <= 100.0 for s in socs)


def test_no_spread_draws_identical_nominal_cells() -> None:
    cfg = PackSimConfig(
        cells=3,
        capacity_spread_pct=0.0,
        resistance_spread_pct=0.0,
        self_discharge_spread_pct_per_day=0.0,
        initial_soc_spread_pct=0.0,
        initial_soc_pct=40.0,
    )
    params, socs = draw_cells(cfg, LFP, random.Random(1))
    assert socs == [40.0] * 3
    for p in params:
        assert p.capacity_ah == cfg.capacity_ah
        assert p.r0_ohm == LFP.r0_ohm(cfg.capacity_ah)
        assert p.r1_ohm == LFP.r1_ohm(cfg.capacity_ah)
        assert p.self_discharge_a == pytest.approx(0.05 / 100 * cfg.capacity_ah / 24)
        assert p.voltage_offset_v == 0.0


def test_a_faulty_cell_replaces_its_own_leak_and_leaves_the_others_as_drawn() -> None:
    plain = PackSimConfig(cells=5)
    leaky = PackSimConfig(cells=5, faults=(CellFault(2, self_discharge_pct_per_day=3.0),))
    p0, s0 = draw_cells(plain, LFP, random.Random(9))
    p1, s1 = draw_cells(leaky, LFP, random.Random(9))
    assert s0 == s1
    for k in range(5):
        if k == 2:
            assert p1[k].self_discharge_a == pytest.approx(3.0 / 100 * p1[k].capacity_ah / 24)
            assert p1[k].capacity_ah == p0[k].capacity_ah
        else:
            assert p1[k] == p0[k]


def test_sensors_add_offsets_and_noise_on_their_own_stream() -> None:
    cfg = PackSimConfig(cells=2, voltage_offset_spread_mv=4.0, current_offset_a=0.25)
    params, _ = draw_cells(cfg, LFP, random.Random(3))
    quiet = Sensors(cfg, params, seed=3)
    assert quiet.cell_voltages_v([3.3, 3.3]) == [3.3 + p.voltage_offset_v for p in params]
    assert quiet.current_a(10.0) == 10.25
    assert len(quiet.temperatures_c(25.0)) == cfg.temp_sensor_count
    noisy_cfg = PackSimConfig(cells=2, voltage_noise_mv=2.0, temp_noise_c=0.1)
    a, b = Sensors(noisy_cfg, params, seed=3), Sensors(noisy_cfg, params, seed=3)
    assert a.cell_voltages_v([3.3, 3.3]) == b.cell_voltages_v([3.3, 3.3])  # seeded
    assert a.cell_voltages_v([3.3, 3.3]) != a.cell_voltages_v([3.3, 3.3])  # noisy


def test_readings_are_rounded_as_the_dbc_carries_them() -> None:
    out = readings(
        [3.30049, 3.2996], [25.04], 12.34567, 6.60049, [False, True], 7.0, quantized=True
    )
    by_role = {(r.role, r.index): r.value for r in out}
    assert by_role[(Role.CELL_VOLTAGE, 0)] == 3.3
    assert by_role[(Role.CELL_VOLTAGE, 1)] == 3.3
    assert by_role[(Role.CELL_TEMPERATURE, 0)] == 25.0
    assert by_role[(Role.PACK_CURRENT, 0)] == 12.346
    assert by_role[(Role.PACK_VOLTAGE, 0)] == 6.6
    assert by_role[(Role.BALANCING_STATUS, 1)] == 1.0
    assert all(r.t_s == 7.0 for r in out)
    raw = readings([3.30049], [], 1.0, 3.3, [False], 0.0, quantized=False)
    assert raw[0].value == 3.30049
