"""Which cells balance: candidates with hysteresis and dwell, the top-balance by voltage, the
budgets, and the reasons users read. Pure functions of one planning step.

The planner (:mod:`gateway.core.balancing`) holds what ran before (each cell's action and the
time it switched) and passes it in; nothing here keeps state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.balancing_band import Imbalance
from gateway.core.balancing_config import BalancingConfig
from gateway.core.model import BalancingMode, CellAction

__all__ = ["PlanStep", "action_reason", "budget", "candidates", "idle_reason", "voltage_top"]

_GIVES = (CellAction.BLEED, CellAction.DONATE)
_SEARCH_FACTOR = 4  # active pairs are searched among this many x the pairs on each side


@dataclass(frozen=True, slots=True)
class PlanStep:
    """What one planning step knows once the pack passed the data and board guards.

    ``volts`` every cell voltage (V), ``temps`` every sensor (degC), ``vmax`` the highest cell,
    ``states`` the operating states (``rest``/``charge``/``discharge``, plus ``top``), ``state``
    the same for reasons (``charge+top``), ``top_cell_v`` where the top of charge starts.
    """

    mode: BalancingMode
    volts: list[float]
    temps: tuple[float | None, ...]
    vmax: float
    states: set[str]
    state: str
    imbalance: Imbalance
    top_cell_v: float
    now_s: float


def candidates(
    config: BalancingConfig,
    step: PlanStep,
    prev: Sequence[CellAction | None],
    switched_s: Sequence[float],
    prev_by_voltage: Sequence[bool],
) -> tuple[list[int], list[int], set[int]]:
    """Cells that want to give (``up``) and to take (``down``, active) charge.

    Hysteresis and dwell: a running cell (``prev``, switched at ``switched_s``) keeps running
    until under ``stop``, or for ``min_dwell_s`` after its switch. Voltage top-balance (passive,
    SoC estimate in use): at rest on the steep top of the curve a cell clearly above the lowest
    is fuller whatever the estimate says. Without it an estimate that cannot separate the cells
    (capacities not learned yet) never bleeds the high cell, while that cell holds CCL at 0 A:
    limits and balancing would wait for each other for ever (``docs/RELIABILITY.md``, runaway
    cell at the top). Returns ``(up, down, by_voltage)``, ``by_voltage`` the top-balanced cells.
    """
    imb = step.imbalance
    want_up: list[int] = []
    want_down: list[int] = []
    for k, d in enumerate(imb.dev):
        was = prev[k]
        dwell = step.now_s - switched_s[k] < config.min_dwell_s
        if d > 0:
            if imb.dev_start[k] > imb.start[k] or (was in _GIVES and (d > imb.stop[k] or dwell)):
                want_up.append(k)
        elif step.mode is BalancingMode.ACTIVE and (
            -d > imb.start[k] or (was is CellAction.RECEIVE and (-d > imb.stop[k] or dwell))
        ):
            want_down.append(k)
    by_voltage: set[int] = set()
    if imb.use_soc and not want_up:
        by_voltage = voltage_top(config, step, prev, switched_s, prev_by_voltage)
        want_up.extend(sorted(by_voltage))
    return want_up, want_down, by_voltage


def voltage_top(
    config: BalancingConfig,
    step: PlanStep,
    prev: Sequence[CellAction | None],
    switched_s: Sequence[float],
    prev_by_voltage: Sequence[bool],
) -> set[int]:
    """Cells to bleed by voltage alone, when the SoC plan bleeds none: passive, at rest.

    A cell at or above ``top_cell_v`` starts ``voltage_start_mv`` above the lowest and stops
    under ``voltage_stop_mv`` (or after ``min_dwell_s``). At rest the IR drop is gone, so
    the voltage difference on the steep top is a difference of charge, not of resistance;
    and such a cell is what holds CCL down, so bleeding it is what lets the pack charge on.
    """
    cfg = config
    states, volts, top_v = step.states, step.volts, step.top_cell_v
    if step.mode is not BalancingMode.PASSIVE or "rest" not in states or "top" not in states:
        return set()
    vmin = min(volts)
    if max(volts) < top_v:
        return set()
    chosen: set[int] = set()
    for k, v in enumerate(volts):
        above_mv = (v - vmin) * 1000.0
        running = prev[k] is CellAction.BLEED and prev_by_voltage[k]
        dwell = running and step.now_s - switched_s[k] < cfg.min_dwell_s
        if v < top_v and not running:
            continue
        if above_mv > cfg.voltage_start_mv or (
            running and (above_mv > cfg.voltage_stop_mv or dwell)
        ):
            chosen.add(k)
    return chosen


def budget(
    config: BalancingConfig,
    step: PlanStep,
    up: list[int],
    down: list[int],
    prev: Sequence[CellAction | None],
    charge_power_available_w: float | None,
) -> tuple[list[int], list[int], int]:
    """Largest imbalance first, within the channel, cell-count and power budgets.

    Sorts ``up`` and ``down`` in place. Active: the most pairs whose donor is clearly above
    its receiver (``_pairs``); channels left without such a pair are counted as doubtful.
    Returns ``(chosen_up, chosen_down, doubtful)``.
    """
    cfg = config
    dev, volts = step.imbalance.dev, step.volts
    up.sort(key=lambda k: -dev[k])
    down.sort(key=lambda k: dev[k])
    cap_cells = cfg.max_active_cells if cfg.max_active_cells is not None else len(volts)
    budget_w = math.inf
    if cfg.power_budget_w is not None:
        budget_w = cfg.power_budget_w + max(0.0, charge_power_available_w or 0.0)
    chosen_up: list[int] = []
    if step.mode is BalancingMode.PASSIVE:
        per_cell_w = [cfg.bleed_current_a * v for v in volts]
        used_w = 0.0
        for k in up[:cap_cells]:
            if used_w + per_cell_w[k] > budget_w:
                break
            used_w += per_cell_w[k]
            chosen_up.append(k)
        return chosen_up, [], 0
    pairs = min(len(up), len(down), cfg.active_channels, cap_cells // 2)
    loss_w = cfg.active_current_a * (1.0 - cfg.active_efficiency)
    if loss_w > 0 and math.isfinite(budget_w):
        pairs = min(pairs, int(budget_w / (loss_w * max(volts))))
    chosen_up, chosen_down, doubtful = _pairs(step, up, down, prev, pairs)
    return chosen_up, chosen_down, doubtful


def _pairs(
    step: PlanStep,
    up: list[int],
    down: list[int],
    prev: Sequence[CellAction | None],
    pairs: int,
) -> tuple[list[int], list[int], int]:
    """Up to ``pairs`` donor/receiver pairs whose donor is clearly above its receiver.

    A pair is clear when ``dev[donor] - dev[receiver]`` exceeds the combined
    ``pair_sigma_ah`` of the two cells, or when both ran as donor and receiver in the last
    plan (hysteresis). The converter moves the same current whoever a donor is paired with, so
    the pairing only serves this test: the largest donor with the largest receiver leaves
    smaller donors with smaller receivers, pairs that fail the test while the same cells paired
    the other way round pass it (donors 5 and 1 Ah, receivers -5 and -1 Ah, 3 Ah combined
    sigma: sorted, 10 and 2 Ah apart, one pair; crossed, 6 and 6 Ah, two). So the pairs are a
    maximum matching (augmenting paths, Kuhn): donors in order of their imbalance, each kept
    when some matching still pairs it; a free receiver is taken before another pair is moved,
    receivers tried largest first (so the sorted pairs stay where they are clear). Candidates
    are the ``_SEARCH_FACTOR x pairs`` largest on each side (a bounded cost for large packs:
    512 cells, 256 channels, half the pairs doubtful: about 50 ms a plan on the project's
    2-core machine; 8 channels: under 1 ms).

    ``up`` and ``down`` are sorted (largest imbalance first). Returns ``(chosen_up,
    chosen_down, doubtful)``: the pairs in donor order, and how many of the ``pairs``
    channels found no clear pair.
    """
    dev = step.imbalance.dev
    pair_sig = step.imbalance.pair_sigma_ah
    if pairs <= 0:
        return [], [], 0
    if pair_sig is None:
        return up[:pairs], down[:pairs], 0
    width = _SEARCH_FACTOR * pairs
    donors, receivers = up[:width], down[:width]

    def clear(k: int, j: int) -> bool:
        if prev[k] is CellAction.DONATE and prev[j] is CellAction.RECEIVE:
            return True
        return dev[k] - dev[j] > math.hypot(pair_sig[k], pair_sig[j])

    partner: dict[int, int] = {}  # receiver -> donor

    def augment(k: int, seen: set[int]) -> bool:
        # A free receiver first (cheap), else one whose donor can move to another.
        for j in receivers:
            if j not in partner and j not in seen and clear(k, j):
                partner[j] = k
                return True
        for j in receivers:
            if j in partner and j not in seen and clear(k, j):
                seen.add(j)
                if augment(partner[j], seen):
                    partner[j] = k
                    return True
        return False

    # A search that fails leaves the matching as it was, so the receivers it visited cannot
    # lead to a free one until a search succeeds: they stay visited till then.
    seen: set[int] = set()
    for k in donors:
        if len(partner) >= pairs:
            break
        if augment(k, seen):
            seen = set()
    of_donor = {k: j for j, k in partner.items()}
    chosen_up = [k for k in donors if k in of_donor]
    chosen_down = [of_donor[k] for k in chosen_up]
    return chosen_up, chosen_down, pairs - len(chosen_up)


def action_reason(step: PlanStep, k: int, current_a: float, by_voltage: bool) -> str:
    """Why cell ``k`` balances at ``current_a``, for users."""
    imb, state, volts = step.imbalance, step.state, step.volts
    d = abs(imb.dev[k])
    passive = step.mode is BalancingMode.PASSIVE
    if by_voltage:
        return (
            f"voltage top-balance: {(volts[k] - min(volts)) * 1000.0:.0f} mV above the"
            f" lowest cell at rest near the top ({state})"
        )
    if imb.use_soc:
        hours = d / current_a if current_a > 0 else math.inf
        return (
            f"{'excess over band' if passive else 'SoC deviation'}"
            f" {d:.3f} Ah, ~{hours:.1f} h at {current_a:.2f} A ({state})"
        )
    ref_name = "lowest" if passive else "mean"
    return f"{d * imb.scale:.0f} {imb.unit} from the {ref_name} cell near the top ({state})"


def idle_reason(step: PlanStep, doubtful: int) -> str:
    """Why no cell balances: balanced, or held back by the uncertainty of the estimates."""
    imb, state = step.imbalance, step.state
    dev, unit, scale = imb.dev, imb.unit, imb.scale
    worst = max(dev) if dev else 0.0
    idle = f"balanced: largest imbalance {worst * scale:.3f} {unit} ({state})"
    # Never "balanced" above the start threshold: say why nothing runs instead.
    if imb.use_soc and any(
        d > imb.start_pct / 100.0 * c for d, c in zip(dev, imb.capacity_ah, strict=True)
    ):
        idle = (
            f"imbalance {worst * scale:.3f} {unit} above the start threshold but within"
            f" the uncertainty of the SoC or capacity estimates ({state})"
        )
    if doubtful:
        idle = (
            f"no donor clearly above a receiver: largest imbalance"
            f" {worst * scale:.3f} {unit} ({state})"
        )
    return idle
