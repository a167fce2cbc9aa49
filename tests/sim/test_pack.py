"""The pack simulator: physics, determinism, bleeding, sensing (pure, no event loop)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.chemistry import get_chemistry
from gateway.sim.pack import PackSim, PackSimConfig

# A pack without self-discharge, so charge bookkeeping is exact.
NO_LEAK = PackSimConfig(
    cells=8, self_discharge_pct_per_day=0.0, self_discharge_spread_pct_per_day=0.0
)


def _drive(sim: PackSim) -> None:
    """A mixed current pattern with bleeding, for determinism checks."""
    sim.set_bleed([k % 3 == 0 for k in range(sim.config.cells)])
    for k in range(600):
        sim.step(1.0, 30.0 * math.sin(k / 50.0))


def test_same_seed_same_trajectory() -> None:
    a, b = PackSim(PackSimConfig(cells=12), seed=7), PackSim(PackSimConfig(cells=12), seed=7)
    _drive(a)
    _drive(b)
    assert a.true_soc_pct() == b.true_soc_pct()
    assert a.cell_voltages_v() == b.cell_voltages_v()
    assert a.temperature_c == b.temperature_c
    assert a.bleed_charge_ah == b.bleed_charge_ah


def test_other_seed_other_pack() -> None:
    a, b = PackSim(PackSimConfig(cells=12), seed=7), PackSim(PackSimConfig(cells=12), seed=8)
    assert a.capacities_ah() != b.capacities_ah()
    assert a.true_soc_pct() != b.true_soc_pct()


def test_spreads_follow_the_config() -> None:
    cfg = PackSimConfig(cells=400, capacity_ah=50.0, capacity_spread_pct=2.0)
    caps = PackSim(cfg, seed=3).capacities_ah()
    mean = sum(caps) / len(caps)
    sd = math.sqrt(sum((c - mean) ** 2 for c in caps) / (len(caps) - 1))
    assert mean == pytest.approx(50.0, rel=0.005)
    assert sd / mean == pytest.approx(0.02, rel=0.2)
    flat = PackSim(
        PackSimConfig(cells=4, capacity_spread_pct=0.0, initial_soc_spread_pct=0.0), seed=3
    )
    assert flat.capacities_ah() == [100.0] * 4
    assert flat.true_soc_pct() == [50.0] * 4


def test_reading_sensed_values_does_not_change_the_physics() -> None:
    cfg = PackSimConfig(cells=6, voltage_noise_mv=2.0, current_noise_a=0.5, temp_noise_c=0.2)
    a, b = PackSim(cfg, seed=1), PackSim(cfg, seed=1)
    for _ in range(100):
        a.step(1.0, 20.0)
        b.step(1.0, 20.0)
        b.sensed_cell_voltages_v()
        b.sensed_current_a()
        b.sensed_temperatures_c()
    assert a.true_soc_pct() == b.true_soc_pct()
    assert a.cell_voltages_v() == b.cell_voltages_v()


def test_constant_charge_raises_soc_by_i_t_over_c() -> None:
    sim = PackSim(NO_LEAK, seed=2)
    before = sim.true_soc_pct()
    current_a, hours = 20.0, 1.5
    sim.run(hours * 3600.0, 1.0, current_a)
    for s0, s1, cap in zip(before, sim.true_soc_pct(), sim.capacities_ah(), strict=True):
        assert s1 - s0 == pytest.approx(100.0 * current_a * hours / cap, rel=1e-9)


def test_self_discharge_lowers_soc_at_rest() -> None:
    cfg = PackSimConfig(
        cells=3, self_discharge_pct_per_day=1.0, self_discharge_spread_pct_per_day=0
    )
    sim = PackSim(cfg, seed=2)
    before = sim.true_soc_pct()
    sim.run(2 * 86400.0, 60.0, 0.0)
    for s0, s1 in zip(before, sim.true_soc_pct(), strict=True):
        assert s0 - s1 == pytest.approx(2.0, rel=1e-9)


def test_soc_clamps_at_full_and_empty() -> None:
    sim = PackSim(PackSimConfig(cells=4, initial_soc_pct=95.0), seed=1)
    sim.run(3600.0, 10.0, 50.0)  # +50 % on a 100 Ah cell
    assert sim.true_soc_pct() == [100.0] * 4
    sim.run(3 * 3600.0, 10.0, -50.0)
    assert sim.true_soc_pct() == [0.0] * 4


@pytest.mark.parametrize("chemistry", ["lfp", "nmc"])
def test_voltage_at_rest_is_the_ocv_table(chemistry: str) -> None:
    sim = PackSim(PackSimConfig(cells=8, chemistry=chemistry, initial_soc_spread_pct=15.0), seed=4)
    sim.run(600.0, 1.0, -40.0)
    sim.run(3600.0, 1.0, 0.0)  # many RC time constants
    chem = get_chemistry(chemistry)
    for soc, volt in zip(sim.true_soc_pct(), sim.cell_voltages_v(), strict=True):
        assert volt == pytest.approx(chem.ocv.voltage(soc, sim.temperature_c), abs=1e-5)
        assert volt == pytest.approx(chem.ocv.voltage(soc), abs=1e-3)  # ~25 degC
    assert sim.pack_voltage_v() == pytest.approx(sum(sim.cell_voltages_v()), abs=1e-9)


def test_terminal_voltage_has_ohmic_step_and_rc_relaxation() -> None:
    cfg = PackSimConfig(cells=1, resistance_follows_temperature=False, initial_soc_spread_pct=0.0)
    sim = PackSim(cfg, seed=1)
    p = sim.params[0]
    ocv0 = sim.ocv_v()[0]
    sim.step(1e-3, 50.0)
    # Right after the step only R0 has responded (the RC branch needs tau).
    assert sim.cell_voltages_v()[0] - sim.ocv_v()[0] == pytest.approx(50.0 * p.r0_ohm, rel=1e-3)
    sim.run(10 * p.tau1_s, 0.5, 50.0)
    over_v = sim.cell_voltages_v()[0] - sim.ocv_v()[0]
    assert over_v == pytest.approx(50.0 * (p.r0_ohm + p.r1_ohm), rel=1e-3)
    sim.step(p.tau1_s, 0.0)
    # One time constant of rest: the RC voltage has decayed to 1/e.
    assert sim.cell_voltages_v()[0] - sim.ocv_v()[0] == pytest.approx(
        50.0 * p.r1_ohm / math.e, rel=1e-4
    )
    assert sim.ocv_v()[0] > ocv0


def test_bleeding_lowers_one_cell_relative_to_the_others() -> None:
    ref, bled = PackSim(NO_LEAK, seed=5), PackSim(NO_LEAK, seed=5)
    mask = [False] * 8
    mask[3] = True
    bled.set_bleed(mask)
    assert bled.bleed_mask == tuple(mask)
    for sim in (ref, bled):
        sim.run(2 * 3600.0, 1.0, 5.0)
    diff = [r - b for r, b in zip(ref.true_soc_pct(), bled.true_soc_pct(), strict=True)]
    assert all(d == 0.0 for k, d in enumerate(diff) if k != 3)
    # ~3.29 V / 33 ohm ~ 0.1 A for 2 h = 0.2 Ah from a 100 Ah cell.
    expected_ah = bled.bleed_charge_ah[3]
    assert expected_ah == pytest.approx(3.29 / 33.0 * 2.0, rel=0.03)
    assert diff[3] == pytest.approx(100.0 * expected_ah / bled.capacities_ah()[3], rel=1e-6)
    assert bled.bleed_charge_ah[0] == 0.0
    assert bled.bleed_heat_j > 0.0
    assert bled.cells[3].bleeding
    assert bled.cells[3].bleed_current_a == pytest.approx(0.1, rel=0.05)


def test_bleed_current_lowers_the_terminal_voltage() -> None:
    sim = PackSim(NO_LEAK, seed=5)
    before = sim.cell_voltages_v()
    sim.set_bleed([True] + [False] * 7)
    after = sim.cell_voltages_v()
    assert after[0] < before[0]
    assert after[1:] == before[1:]


def test_heat_raises_temperature_and_ambient_cools_it() -> None:
    cfg = PackSimConfig(cells=4, capacity_ah=10.0, ambient_c=20.0, thermal_time_constant_s=1800)
    sim = PackSim(cfg, seed=1)
    sim.run(1800.0, 1.0, 20.0)  # 2C into a small pack
    hot_c = sim.temperature_c
    assert hot_c > 20.5
    assert sim.heat_j > 0.0
    sim.run(5 * 1800.0, 10.0, 0.0)
    assert 20.0 <= sim.temperature_c < 20.0 + (hot_c - 20.0) * 0.05


def test_cold_pack_has_higher_resistance() -> None:
    warm = PackSim(PackSimConfig(cells=1, ambient_c=25.0), seed=1)
    cold = PackSim(PackSimConfig(cells=1, ambient_c=0.0), seed=1)
    for sim in (warm, cold):
        sim.step(1e-3, 50.0)
    drop = [s.cell_voltages_v()[0] - s.ocv_v()[0] for s in (warm, cold)]
    assert drop[1] > 1.5 * drop[0]


def test_sensor_offsets_and_noise() -> None:
    cfg = PackSimConfig(
        cells=4, voltage_offset_spread_mv=5.0, voltage_noise_mv=1.0, current_offset_a=0.3
    )
    sim = PackSim(cfg, seed=9)
    true_v = sim.cell_voltages_v()
    sensed = sim.sensed_cell_voltages_v()
    assert sensed != true_v
    assert all(abs(s - t) < 0.05 for s, t in zip(sensed, true_v, strict=True))
    assert sim.sensed_current_a() == pytest.approx(0.3)
    assert len(sim.sensed_temperatures_c()) == 1  # default: one sensor per 4 cells
    assert PackSimConfig(cells=17).temp_sensor_count == 5
    assert PackSim(PackSimConfig(cells=4, temp_sensors=0), seed=1).sensed_temperatures_c() == []


def test_set_soc_and_bad_inputs() -> None:
    sim = PackSim(PackSimConfig(cells=2), seed=1)
    sim.set_soc_pct([10.0, 90.0])
    assert sim.true_soc_pct() == [10.0, 90.0]
    with pytest.raises(ValueError, match="2 cells"):
        sim.set_soc_pct([10.0])
    with pytest.raises(ValueError, match="bleed mask has 3"):
        sim.set_bleed([True, True, True])
    with pytest.raises(ValueError, match="dt_s"):
        sim.step(0.0, 1.0)
    with pytest.raises(ValueError, match="current_a"):
        sim.step(1.0, math.nan)
    with pytest.raises(ValueError, match=r"cells \(=0\)"):
        PackSimConfig(cells=0)
    with pytest.raises(ValueError, match="chemistry"):
        PackSimConfig(chemistry="lead")
    with pytest.raises(ValueError, match="bleed_resistance_ohm"):
        PackSimConfig(bleed_resistance_ohm=0.0)


@settings(max_examples=40, deadline=None)
@given(
    currents=st.lists(st.floats(-30.0, 30.0), min_size=1, max_size=40),
    mask=st.lists(st.booleans(), min_size=4, max_size=4),
    dt_s=st.sampled_from([0.1, 1.0, 7.0]),
)
def test_charge_is_conserved(currents: list[float], mask: list[bool], dt_s: float) -> None:
    """Away from the clamps, every cell's SoC moves by (charge in - bleed - leak) / capacity."""
    cfg = PackSimConfig(cells=4, self_discharge_pct_per_day=5.0)
    sim = PackSim(cfg, seed=11)
    sim.set_bleed(mask)
    before = sim.true_soc_pct()
    charge_ah = 0.0
    for i in currents:
        sim.step(dt_s, i)
        charge_ah += i * dt_s / 3600.0
    t_h = len(currents) * dt_s / 3600.0
    for k, p in enumerate(sim.params):
        expected_ah = charge_ah - sim.bleed_charge_ah[k] - p.self_discharge_a * t_h
        moved_ah = (sim.true_soc_pct()[k] - before[k]) / 100.0 * p.capacity_ah
        assert moved_ah == pytest.approx(expected_ah, abs=1e-9)
        assert (sim.bleed_charge_ah[k] > 0.0) == mask[k]
