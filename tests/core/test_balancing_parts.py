"""The balancing planner's parts, each on its own: imbalance, guards, selection, reasons."""

from __future__ import annotations

import math

import pytest

from gateway.core.balancing import BalancingPlanner
from gateway.core.balancing_band import soc_imbalance, voltage_imbalance
from gateway.core.balancing_config import BalancingConfig
from gateway.core.balancing_guards import HeatGuard, SelfCheck
from gateway.core.balancing_select import (
    PlanStep,
    action_reason,
    budget,
    candidates,
    idle_reason,
    voltage_top,
)
from gateway.core.model import BalancingMode, CellAction, CellEstimate
from gateway.core.pack import PackConfig
from tests.core.packdata import snapshot, soc_report

PACK4 = PackConfig(cells=4, temp_sensors=2)
NO_RUN: list[CellAction | None] = [None] * 4
LONG_AGO = [-math.inf] * 4


def _cells(
    socs: list[float], caps: list[float], rel_sigma: float = 0.1
) -> tuple[CellEstimate, ...]:
    return tuple(
        CellEstimate(s, 1.0, c, 0.5, soc_rel_sigma_pct=rel_sigma)
        for s, c in zip(socs, caps, strict=True)
    )


def _step(
    mode: BalancingMode,
    volts: list[float],
    cfg: BalancingConfig,
    *,
    socs: list[float] | None = None,
    states: frozenset[str] = frozenset({"rest", "top"}),
    now_s: float = 100.0,
) -> PlanStep:
    imb = (
        soc_imbalance(cfg, mode, _cells(socs, [100.0] * len(socs)))
        if socs is not None
        else voltage_imbalance(cfg, mode, volts)
    )
    state = "+".join(sorted(states))
    return PlanStep(mode, volts, (25.0,), max(volts), set(states), state, imb, 3.40, now_s)


# --- imbalance ------------------------------------------------------------------------------


def test_soc_imbalance_passive_is_the_band_excess_with_thresholds_in_ah() -> None:
    cfg = BalancingConfig(start_pct=0.5, stop_pct=0.05, sigma_factor=2.0)
    imb = soc_imbalance(cfg, BalancingMode.PASSIVE, _cells([52.0, 50.0, 51.0], [100.0] * 3))
    assert imb.dev == pytest.approx([2.0, 0.0, 1.0])
    assert imb.dev_start is imb.dev  # no capacity sigmas: nothing to discount
    # start = max(0.5 % of 100 Ah, 2 sigma of 0.1 % of 100 Ah) = 0.5 Ah; stop 0.05 Ah.
    assert imb.start == pytest.approx([0.5, 0.5, 0.5])
    assert imb.stop == pytest.approx([0.05, 0.05, 0.05])
    assert (imb.unit, imb.scale, imb.use_soc, imb.pair_sigma_ah, imb.drift) == (
        "Ah",
        1.0,
        True,
        None,
        None,
    )


def test_soc_imbalance_active_is_the_deviation_from_the_weighted_mean() -> None:
    cfg = BalancingConfig(active_start_pct=0.2, sigma_factor=1.0)
    cells = _cells([60.0, 40.0], [100.0, 300.0])
    imb = soc_imbalance(cfg, BalancingMode.ACTIVE, cells)
    mean = (60.0 * 100 + 40.0 * 300) / 400  # 45 %
    assert imb.dev == pytest.approx([(60 - mean) / 100 * 100, (40 - mean) / 100 * 300])
    assert imb.start == pytest.approx([0.2, 0.6])  # no sigma: tested per pair
    assert imb.pair_sigma_ah == pytest.approx([0.1, 0.3])
    assert imb.drift == pytest.approx([0.5, -0.5])  # 1 - cap / mean cap


def test_soc_imbalance_falls_back_to_the_absolute_sigma() -> None:
    cfg = BalancingConfig(start_pct=0.0, stop_pct=0.0, sigma_factor=1.0)
    imb = soc_imbalance(cfg, BalancingMode.PASSIVE, _cells([50.0, 50.0], [100.0] * 2, math.nan))
    assert imb.sigma_ah == pytest.approx([1.0, 1.0])  # soc_sigma_pct 1 % of 100 Ah
    assert imb.start == pytest.approx([1.0, 1.0])


def test_voltage_imbalance_from_the_lowest_or_the_mean() -> None:
    cfg = BalancingConfig(voltage_start_mv=15.0, voltage_stop_mv=5.0)
    volts = [3.40, 3.42, 3.44]
    passive = voltage_imbalance(cfg, BalancingMode.PASSIVE, volts)
    assert passive.dev == pytest.approx([0.0, 0.02, 0.04])
    assert passive.start == pytest.approx([0.015] * 3)
    assert passive.stop == pytest.approx([0.005] * 3)
    assert (passive.unit, passive.scale, passive.use_soc) == ("mV", 1000.0, False)
    active = voltage_imbalance(cfg, BalancingMode.ACTIVE, volts)
    assert active.dev == pytest.approx([-0.02, 0.0, 0.02])


# --- guards ---------------------------------------------------------------------------------


def test_the_board_guard_releases_only_below_its_hysteresis() -> None:
    guard = HeatGuard(BalancingConfig(max_board_temp_c=60.0, guard_hysteresis=0.02), PACK4)
    assert guard.board((59.9, 25.0)) == ""
    assert guard.board((60.0, 25.0)) == "board at 60.0 degC (limit 60 degC)"
    # Release at 60 - 1.2 - 1 = 57.8 degC: still hot just below the limit.
    assert guard.board((58.0, 25.0)).startswith("board at 58.0")
    assert guard.board((57.8, 25.0)) == ""


def test_the_board_guard_reads_the_board_sensors_when_there_are_some() -> None:
    guard = HeatGuard(
        BalancingConfig(max_board_temp_c=60.0),
        PackConfig(cells=4, temp_sensors=3, board_sensors=(2,)),
    )
    assert guard.board((70.0, 25.0, 30.0)) == ""  # a hot cell is the cell guard's business
    assert guard.board((25.0, 25.0, 61.0)) != ""


def test_the_cell_guard_checks_the_cells_sensor_and_the_minimum_voltage() -> None:
    guard = HeatGuard(BalancingConfig(max_cell_temp_c=50.0), PACK4)
    # Cells 0 and 1 are read by sensor 0, cells 2 and 3 by sensor 1.
    assert guard.cell(0, 3.3, (25.0, 55.0)) == ""
    assert guard.cell(3, 3.3, (25.0, 55.0)) == "sensor 2 at 55.0 degC (limit 50 degC)"
    assert guard.cell(3, 3.3, (25.0, None)) == "sensor 2 unknown"
    assert guard.cell(0, 2.80, (25.0, 25.0)) == "cell at 2.800 V <= minimum 2.8 V"  # LFP default
    assert guard.cell(0, None, (25.0, 25.0)) == ""  # a receiving cell has no minimum


def test_a_board_sensor_outside_the_pack_is_refused() -> None:
    with pytest.raises(ValueError, match=r"balancing.board_sensors \(=\[5\]\)"):
        HeatGuard(BalancingConfig(board_sensors=(5,)), PACK4)


def test_the_self_check_pauses_a_cell_whose_estimate_does_not_follow() -> None:
    cfg = BalancingConfig(progress_check_pct=1.0, progress_min_ratio=0.5, progress_pause_s=3600.0)
    check = SelfCheck(cfg, 2)
    bleed = CellAction.BLEED
    check.restart(0, dev=2.0)
    check.count(0, 0.5)  # under 1 % of 100 Ah: too early to judge
    assert check.guard(0, 2.0, bleed, 100.0, 0.1, 0.0, active=False) == ""
    check.count(0, 0.7)  # 1.2 Ah bled, the estimate still says 2.0 Ah excess
    why = check.guard(0, 2.0, bleed, 100.0, 0.1, 10.0, active=False)
    assert why == "SoC estimate moved 0.00 Ah while balancing moved 1.20 Ah; paused 1 h"
    assert check.pauses_started == 1
    assert check.guard(0, 2.0, bleed, 100.0, 0.1, 1810.0, active=False).startswith(
        "paused 0.5 h more"
    )
    assert check.export_pauses(1810.0) == {0: pytest.approx(1800.0)}
    again = SelfCheck(cfg, 2)
    again.restore_pauses({0: 1800.0, 7: 10.0, 1: -1.0}, 0.0)  # 7: no such cell; 1: over
    assert again.export_pauses(0.0) == {0: 1800.0}


def test_the_self_check_passes_a_cell_the_estimate_follows_and_waits_within_sigma() -> None:
    cfg = BalancingConfig(progress_check_pct=1.0, progress_min_ratio=0.5)
    check = SelfCheck(cfg, 1)
    check.restart(0, dev=2.0)
    check.count(0, 1.2)
    # The estimate moved 0.5 Ah of the 0.6 Ah required: short by 0.1 Ah, within sigma 0.2.
    assert check.guard(0, 1.5, CellAction.BLEED, 100.0, 0.2, 0.0, active=False) == ""
    assert check.pauses_started == 0
    check.count(0, 0.4)  # 1.6 Ah moved, the estimate now shows 1.0 Ah: passed, restarted
    assert check.guard(0, 1.0, CellAction.BLEED, 100.0, 0.2, 0.0, active=False) == ""
    check.count(0, 0.9)  # counted afresh from 1.0 Ah: 0.9 Ah moved is not yet 1 %
    assert check.guard(0, 1.0, CellAction.BLEED, 100.0, 0.0, 0.0, active=False) == ""


# --- selection ------------------------------------------------------------------------------


def test_candidates_start_above_start_and_run_until_stop_or_dwell() -> None:
    cfg = BalancingConfig(start_pct=1.0, stop_pct=0.2, min_dwell_s=60.0, sigma_factor=0.0)
    step = _step(BalancingMode.PASSIVE, [3.3] * 4, cfg, socs=[50.5, 50.0, 51.5, 50.0])
    up, down, by_v = candidates(cfg, step, NO_RUN, LONG_AGO, [False] * 4)
    assert (up, down, by_v) == ([2], [], set())  # 1.5 Ah > 1 Ah; 0.5 Ah is not
    running = [CellAction.BLEED, None, None, None]
    up, _, _ = candidates(cfg, step, running, LONG_AGO, [False] * 4)
    assert up == [0, 2]  # 0.5 Ah > stop 0.2 Ah: keeps running
    step = _step(BalancingMode.PASSIVE, [3.3] * 4, cfg, socs=[50.1, 50.0, 51.5, 50.0])
    assert candidates(cfg, step, running, LONG_AGO, [False] * 4)[0] == [2]
    recent = [step.now_s - 10.0, *LONG_AGO[1:]]
    assert candidates(cfg, step, running, recent, [False] * 4)[0] == [0, 2]  # dwell


def test_active_candidates_give_and_take() -> None:
    cfg = BalancingConfig(mode=BalancingMode.ACTIVE, active_start_pct=0.2, min_dwell_s=0.0)
    step = _step(BalancingMode.ACTIVE, [3.3] * 4, cfg, socs=[51.0, 49.0, 50.0, 50.0])
    up, down, _ = candidates(cfg, step, NO_RUN, LONG_AGO, [False] * 4)
    assert (up, down) == ([0], [1])


def test_the_voltage_top_balance_runs_passive_at_rest_near_the_top_only() -> None:
    cfg = BalancingConfig(voltage_start_mv=15.0, voltage_stop_mv=5.0, min_dwell_s=0.0)
    volts = [3.40, 3.45, 3.41, 3.40]
    step = _step(BalancingMode.PASSIVE, volts, cfg, socs=[50.0] * 4)
    assert voltage_top(cfg, step, NO_RUN, LONG_AGO, [False] * 4) == {1}
    # The SoC plan has nobody to bleed, so the candidates are the top-balanced cells.
    assert candidates(cfg, step, NO_RUN, LONG_AGO, [False] * 4) == ([1], [], {1})
    charging = _step(
        BalancingMode.PASSIVE, volts, cfg, socs=[50.0] * 4, states=frozenset({"charge", "top"})
    )
    assert voltage_top(cfg, charging, NO_RUN, LONG_AGO, [False] * 4) == set()
    low = _step(BalancingMode.PASSIVE, [3.30, 3.35, 3.31, 3.30], cfg, socs=[50.0] * 4)
    assert voltage_top(cfg, low, NO_RUN, LONG_AGO, [False] * 4) == set()  # under top_cell_v


def test_the_power_budget_and_the_cell_cap_limit_passive_bleeding() -> None:
    cfg = BalancingConfig(bleed_current_a=1.0, power_budget_w=7.0, sigma_factor=0.0)
    step = _step(BalancingMode.PASSIVE, [3.4] * 4, cfg, socs=[52.0, 53.0, 54.0, 50.0])
    up = [0, 1, 2]
    chosen_up, chosen_down, doubtful = budget(cfg, step, up, [], NO_RUN, None)
    assert up == [2, 1, 0]  # largest excess first
    assert (chosen_up, chosen_down, doubtful) == ([2, 1], [], 0)  # 3.4 W each, 7 W budget
    assert budget(cfg, step, [0, 1, 2], [], NO_RUN, 4.0)[0] == [2, 1, 0]  # surplus PV adds
    capped = BalancingConfig(max_active_cells=1, sigma_factor=0.0)
    assert budget(capped, step, [0, 1, 2], [], NO_RUN, None)[0] == [2]


def test_active_pairs_within_the_uncertainty_are_doubtful() -> None:
    cfg = BalancingConfig(mode=BalancingMode.ACTIVE, sigma_factor=3.0, active_channels=4)
    # Sigma 0.1 % of 100 Ah = 0.1 Ah per cell, 3 sigma each: a pair needs > 0.42 Ah apart.
    # Cell 2 (+0.05 Ah) is within 0.42 Ah of both receivers (-0.3, -0.35 Ah): doubtful.
    step = _step(BalancingMode.ACTIVE, [3.3] * 4, cfg, socs=[50.6, 49.7, 50.05, 49.65])
    up, down = [0, 2], [1, 3]
    chosen_up, chosen_down, doubtful = budget(cfg, step, up, down, NO_RUN, None)
    assert (chosen_up, chosen_down, doubtful) == ([0], [3], 1)
    # A pair already running keeps running (hysteresis), doubtful or not.
    running = [None, CellAction.RECEIVE, CellAction.DONATE, None]
    assert budget(cfg, step, [0, 2], [1, 3], running, None) == ([0, 2], [3, 1], 0)


def test_active_pairs_cross_when_the_largest_with_the_largest_leaves_doubtful_pairs() -> None:
    cfg = BalancingConfig(mode=BalancingMode.ACTIVE, sigma_factor=3.0, active_channels=4)
    # Deviations +0.3, -0.1, +1.0, -1.2 Ah; a pair needs > 0.42 Ah apart. Largest with largest
    # (2 with 3: 2.2 Ah) leaves 0 with 1 (0.4 Ah: doubtful); crossed, 2 with 1 (1.1 Ah) and 0
    # with 3 (1.5 Ah) are both clear: two channels run, not one.
    step = _step(BalancingMode.ACTIVE, [3.3] * 4, cfg, socs=[50.3, 49.9, 51.0, 48.8])
    assert budget(cfg, step, [0, 2], [1, 3], NO_RUN, None) == ([2, 0], [1, 3], 0)


def test_reasons_say_why_in_the_unit_of_the_imbalance() -> None:
    cfg = BalancingConfig(start_pct=0.5, sigma_factor=0.0)
    step = _step(BalancingMode.PASSIVE, [3.3] * 4, cfg, socs=[52.0, 50.0, 50.0, 50.0])
    assert action_reason(step, 0, 0.1, False) == (
        "excess over band 2.000 Ah, ~20.0 h at 0.10 A (rest+top)"
    )
    by_v = _step(BalancingMode.PASSIVE, [3.45, 3.40, 3.40, 3.40], cfg, socs=[50.0] * 4)
    assert action_reason(by_v, 0, 0.1, True) == (
        "voltage top-balance: 50 mV above the lowest cell at rest near the top (rest+top)"
    )
    volts = _step(BalancingMode.PASSIVE, [3.45, 3.40, 3.40, 3.40], cfg)
    assert action_reason(volts, 0, 0.1, False) == (
        "50 mV from the lowest cell near the top (rest+top)"
    )
    assert idle_reason(volts, 0) == "balanced: largest imbalance 50.000 mV (rest+top)"
    assert idle_reason(step, 0).startswith("imbalance 2.000 Ah above the start threshold")
    assert idle_reason(step, 1).startswith("no donor clearly above a receiver")


# --- the planner's plan ---------------------------------------------------------------------


def test_plan_actions_are_cell_actions() -> None:
    cfg = BalancingConfig(start_pct=1.0, min_dwell_s=0.0, max_cell_temp_c=30.0)
    planner = BalancingPlanner(cfg, PACK4)
    snap = snapshot((3.30, 3.30, 3.30, 3.30), (25.0, 35.0))
    plan = planner.step(snap, soc_report([52.0, 50.0, 53.0, 50.0], [100.0] * 4), 0.0)
    kinds = {a.cell: a.action for a in plan.actions}
    assert kinds == {0: CellAction.BLEED, 2: CellAction.BLOCKED}  # cell 2's sensor is hot
    assert all(isinstance(a.action, CellAction) for a in plan.actions)
    assert planner.cell_currents_a() == (-0.1, 0.0, 0.0, 0.0)
