"""Simulator faults for the health checks: a leaking cell, capacity fade, resistance growth."""

from __future__ import annotations

import pytest

from gateway.sim.pack import CellFault, PackSim, PackSimConfig

DAY_S = 86400.0


def test_a_leaking_cell_loses_its_rate_at_rest() -> None:
    cfg = PackSimConfig(
        cells=4,
        self_discharge_pct_per_day=0.0,
        self_discharge_spread_pct_per_day=0.0,
        faults=(CellFault(2, self_discharge_pct_per_day=1.0),),
    )
    sim = PackSim(cfg, seed=1)
    before = sim.true_soc_pct()
    sim.run(3 * DAY_S, 600.0, 0.0)
    after = sim.true_soc_pct()
    drop = [b - a for b, a in zip(before, after, strict=True)]
    assert drop[2] == pytest.approx(3.0, rel=1e-6)
    assert drop[0] == pytest.approx(0.0, abs=1e-9)
    assert sim.self_discharge_a()[2] == pytest.approx(0.01 * sim.params[2].capacity_ah / 24.0)


def test_capacity_fades_and_resistance_grows_linearly() -> None:
    cfg = PackSimConfig(
        cells=3,
        capacity_fade_pct_per_day=0.1,
        resistance_growth_pct_per_day=0.2,
        faults=(
            CellFault(1, capacity_fade_pct_per_day=0.3),
            CellFault(2, resistance_growth_pct_per_day=2.0),
        ),
    )
    sim = PackSim(cfg, seed=2)
    cap0 = [p.capacity_ah for p in sim.params]
    r0 = [p.r0_ohm for p in sim.params]
    sim.run(10 * DAY_S, 600.0, 0.0)
    caps = sim.capacities_ah()
    assert caps[0] == pytest.approx(cap0[0] * (1 - 0.001 * 10))
    assert caps[1] == pytest.approx(cap0[1] * (1 - 0.003 * 10))
    assert sim.cells[1].capacity_ah == caps[1]
    rs = sim.r0_ohm()
    assert rs[0] == pytest.approx(r0[0] * (1 + 0.002 * 10))
    assert rs[2] == pytest.approx(r0[2] * (1 + 0.02 * 10))
    # A faded cell moves further in SoC for the same charge.
    s0 = sim.true_soc_pct()
    sim.run(3600.0, 10.0, 10.0)
    s1 = sim.true_soc_pct()
    assert (s1[1] - s0[1]) / (s1[0] - s0[0]) == pytest.approx(caps[0] / caps[1], rel=1e-3)


@pytest.mark.parametrize(
    ("faults", "match"),
    [
        ((CellFault(9),), "fault cell"),
        ((CellFault(1), CellFault(1)), "twice"),
        ((CellFault(0, capacity_fade_pct_per_day=-1.0),), "capacity_fade_pct_per_day"),
    ],
)
def test_bad_faults_are_named(faults: tuple[CellFault, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PackSimConfig(cells=4, faults=faults)
    with pytest.raises(ValueError, match="resistance_growth"):
        PackSimConfig(resistance_growth_pct_per_day=-0.1)
