"""Daily summaries from the real control step on the pack simulator (pure, no event loop)."""

from __future__ import annotations

import math

import pytest

from gateway.control import Controller
from gateway.core.daily import DailyConfig, DayAccumulator
from gateway.core.model import (
    AlarmReport,
    BalancingMode,
    BalancingPlan,
    ControlOutput,
    Limit,
    Limits,
    PackSnapshot,
)
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

CELLS = 4
Q = 100.0


def run(
    acc: DayAccumulator, ctrl: Controller, sim: PackSim, t0: float, seconds: float, current: float
) -> float:
    """Step simulator and controller every 5 s at ``current``; returns the end time."""
    t = t0
    for _ in range(round(seconds / 5.0)):
        sim.step(5.0, current)
        t += 5.0
        ctrl.ingest(sim.readings(t))
        out = ctrl.step(t)
        acc.add(out, bled_ah=ctrl.balancing.dissipated_ah, moved_ah=ctrl.balancing.moved_ah)
    return t


def setup() -> tuple[DayAccumulator, Controller, PackSim]:
    sim = PackSim(PackSimConfig(cells=CELLS, temp_sensors=2, initial_soc_pct=50.0), seed=4)
    settings = Settings(pack={"cells": CELLS, "temp_sensors": 2, "capacity_ah": Q})
    acc = DayAccumulator(DailyConfig(rest_min_s=600.0), CELLS, 2, Q, day=100)
    return acc, Controller(settings), sim


def output(t_s: float, cells: int = 2) -> ControlOutput:
    """A bare control step at ``t_s`` (no current, no estimate)."""
    snap = PackSnapshot(
        t_s, (3.3,) * cells, (0.0,) * cells, (25.0,), (0.0,), None, None, None, None,
        (False,) * cells, False,
    )  # fmt: skip
    lim = Limit(0.0, "test", ())
    return ControlOutput(
        0, t_s, snap, None, AlarmReport(), Limits(lim, lim, lim, lim),
        BalancingPlan(BalancingMode.PASSIVE, (False,) * cells),
    )  # fmt: skip


def test_a_day_of_charge_discharge_and_rest() -> None:
    acc, ctrl, sim = setup()
    t = run(acc, ctrl, sim, 0.0, 1800.0, 20.0)  # charge 10 Ah
    v_top = sim.cell_voltages_v()
    t = run(acc, ctrl, sim, t, 1800.0, -10.0)  # discharge 5 Ah
    t = run(acc, ctrl, sim, t, 1200.0, 0.0)  # a 20 min rest
    rec = acc.record()
    assert rec.day == 100
    p = rec.pack
    assert p.charge_in_ah == pytest.approx(10.0, rel=0.01)
    assert p.charge_out_ah == pytest.approx(5.0, rel=0.01)
    assert p.cycles == pytest.approx(0.05, rel=0.01)
    # Energy: about the charge times the pack voltage (4 LFP cells, ~13 V).
    assert 10.0 * 12.0 < p.energy_in_wh < 10.0 * 14.0
    assert 5.0 * 12.0 < p.energy_out_wh < 5.0 * 14.0
    assert p.covered_s == pytest.approx(4800.0 - 5.0)
    assert p.rest_s >= 600.0
    assert math.isfinite(p.rest_soc_pct)
    for k, c in enumerate(rec.cells):
        assert c.v_max_v >= round(v_top[k], 3) - 0.002
        assert c.v_min_v < c.v_max_v
        assert c.t_min_c <= c.t_max_c
        assert math.isfinite(c.capacity_ah)
        assert math.isfinite(c.r0_mohm)
        assert math.isfinite(c.rest_dv_mv)
    # Offsets against the median cell: they straddle zero.
    dv = sorted(c.rest_dv_mv for c in rec.cells)
    assert dv[0] <= 0.0 <= dv[-1]


def test_no_rest_long_enough_gives_no_rest_values() -> None:
    acc, ctrl, sim = setup()
    t = run(acc, ctrl, sim, 0.0, 300.0, 0.0)  # 5 min: shorter than rest_min_s
    run(acc, ctrl, sim, t, 600.0, 10.0)
    rec = acc.record()
    assert all(math.isnan(c.rest_dv_mv) for c in rec.cells)
    assert math.isnan(rec.pack.rest_soc_pct)


def test_balancing_counters_go_by_day_and_survive_a_restart() -> None:
    acc = DayAccumulator(DailyConfig(), 2, 1, Q, day=1)
    acc.add(output(0.0), bled_ah=[0.0, 0.0])
    acc.add(output(10.0), bled_ah=[0.5, 0.1])
    assert [c.bled_ah for c in acc.record().cells] == [0.5, 0.1]
    nxt = acc.next_day(2)
    nxt.add(output(20.0), bled_ah=[0.7, 0.1])
    assert [c.bled_ah for c in nxt.record().cells] == pytest.approx([0.2, 0.0])
    # The controller restarted: its counters begin at zero again; nothing is lost or negative.
    nxt.add(output(30.0), bled_ah=[0.05, 0.0])
    assert [c.bled_ah for c in nxt.record().cells] == pytest.approx([0.25, 0.0])
    # The daemon restarted mid-day: the day goes on from what was written.
    again = DayAccumulator.resume(DailyConfig(), nxt.record(), 1, Q)
    again.add(output(40.0), bled_ah=[0.0, 0.0])
    again.add(output(50.0), bled_ah=[0.1, 0.3])
    assert [c.bled_ah for c in again.record().cells] == pytest.approx([0.35, 0.3])
    assert again.day == 2
    with pytest.raises(ValueError, match="cells"):
        again.add(output(60.0, cells=3))


def test_board_sensors_are_not_cell_temperatures() -> None:
    acc = DayAccumulator(DailyConfig(), 4, 4, Q, day=1, cell_sensors=(0, 1, 3))
    base = output(0.0, cells=4)
    snap = base.pack
    hot_board = PackSnapshot(
        snap.t_s, snap.cell_voltage_v, snap.cell_voltage_age_s, (20.0, 21.0, 60.0, 23.0),
        (0.0,) * 4, None, None, None, None, snap.balancing_active, False,
    )  # fmt: skip
    acc.add(ControlOutput(0, 0.0, hot_board, None, base.alarms, base.limits, base.balancing))
    temps = [c.t_max_c for c in acc.record().cells]
    assert temps == [20.0, 20.0, 21.0, 23.0]  # cell k -> cell_sensors[k * 3 // 4]
