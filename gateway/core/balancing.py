"""Balancing planner: SoC-based, passive (bleed) or active (charge transfer). Pure.

Passive balancing can only remove charge. A series string delivers ``min(q) + min(cap - q)``
ampere-hours (``q`` the charge in each cell, ``cap`` its capacity): the first cell to run empty
ends the discharge, the first to be full ends the charge. The best passive balancing can do is
the smallest capacity, ``min(cap)``, and it gets there with the least dissipated charge when every
cell sits in the band ``m <= q_i <= m + cap_i - min(cap)`` with ``m = min(q)``. The planner
therefore bleeds each cell's *excess over that band*::

    excess_i = q_i - m - (cap_i - min(cap))      (>= 0; the pack current shifts every q_i alike)

which is invariant under the pack current, so it is valid at any time, and its sum is exactly
the minimum charge that must be dissipated (a fixed voltage-threshold balancer, which top-balances
at full, wastes the capacity differences on top). Active balancing moves charge from cells above
the pack's capacity-weighted mean SoC to cells below it; run while the pack cycles it approaches
the mean capacity.

Decisions weigh the estimate's uncertainty: a cell starts only when its excess (passive) exceeds
``sigma_factor`` times its SoC uncertainty *against the other cells* (``soc_rel_sigma_pct``: one
current flows through the string, so the count's common errors do not move charge between
cells), and an active pair only when the donor is that clearly above the receiver. The passive
band also depends on the capacities, which an estimator learns slowly: a cell starts bleeding
only when its excess remains with the capacities ``capacity_sigma_factor`` sigma the wrong way
(``band_excess_low_ah``); bleeding is irreversible, waiting only costs time.

Without an SoC estimate the planner falls back to voltages, and then only near the top of charge
(where the curve is steep enough for a voltage to mean something; the flat LFP middle does not).

One step runs in stages: the data guard (``_data_guard``); the board guard, the operating
state and each cell's imbalance with its thresholds (``_classify``,
:mod:`gateway.core.balancing_band`); the candidates with hysteresis, dwell and the voltage
top-balance (:mod:`gateway.core.balancing_select`); the cell guards (``guard_cells``,
:mod:`gateway.core.balancing_guards`); the channel, cell-count and power budgets (``budget``);
the actions and their reasons (``_act``). Settings: :mod:`gateway.core.balancing_config`.
"""

from __future__ import annotations

import math
from typing import cast

from gateway.core.balancing_band import (
    band_excess_ah,
    band_excess_low_ah,
    soc_imbalance,
    voltage_imbalance,
)
from gateway.core.balancing_config import BALANCING_DEFAULTS, STATES, BalancingConfig
from gateway.core.balancing_guards import HeatGuard, SelfCheck, guard_cells
from gateway.core.balancing_select import (
    PlanStep,
    action_reason,
    budget,
    candidates,
    idle_reason,
)
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import (
    BalancingAction,
    BalancingMode,
    BalancingPlan,
    CellAction,
    PackSnapshot,
    SocReport,
)
from gateway.core.pack import PackConfig

__all__ = [
    "BALANCING_DEFAULTS",
    "STATES",
    "BalancingConfig",
    "BalancingPlanner",
    "band_excess_ah",
    "band_excess_low_ah",
]

_DEFAULT_TIMEOUTS = TimeoutsConfig()


class BalancingPlanner:
    """Decides each step which cells bleed (passive) or donate and receive (active)."""

    def __init__(
        self,
        config: BalancingConfig,
        pack: PackConfig,
        timeouts: TimeoutsConfig = _DEFAULT_TIMEOUTS,
    ) -> None:
        """Resolve chemistry defaults and the input ages, check the board sensors exist.

        Raises:
            ValueError: naming the bad key.
        """
        self.config = config
        self.pack = pack
        # Balancing stops while a cell voltage or temperature is older (``timeouts``).
        self._voltage_age_s, self._temp_age_s = timeouts.balancing_ages_s(config.max_data_age_s)
        defaults = BALANCING_DEFAULTS[pack.chemistry]
        self.top_cell_v = (
            config.top_cell_v if config.top_cell_v is not None else defaults["top_cell_v"]
        )
        self._heat = HeatGuard(config, pack)
        self.min_cell_v = self._heat.min_cell_v
        self.mode = config.mode
        n = pack.cells
        self._check = SelfCheck(config, n)
        self._action: list[CellAction | None] = [None] * n
        self._current_a: list[float] = [0.0] * n
        self._charge_ah: list[float] = [0.0] * n
        self._switched_s: list[float] = [-math.inf] * n
        self._last_current_a = 0.0
        self._by_voltage = [False] * n  # bleeding by the voltage top-balance
        self._last_s: float | None = None
        self._plan: BalancingPlan | None = None
        self._plan_s = -math.inf
        self._dissipated_ah: list[float] = [0.0] * n
        self._moved_ah: list[float] = [0.0] * n
        self._pending_h = 0.0

    def cell_currents_a(self) -> tuple[float, ...]:
        """Balancing current of each cell as planned in the last step, positive into the cell.

        For an SoC estimator that counts per-cell charge: bleeding and donating cells lose this
        current on top of the pack current, receiving cells gain it.
        """
        return tuple(
            c if a is CellAction.RECEIVE else -c
            for a, c in zip(self._action, self._current_a, strict=True)
        )

    def set_mode(self, mode: BalancingMode) -> None:
        """Switch the mode; running actions stop at the next step."""
        self.mode = BalancingMode(mode)

    @property
    def pauses_started(self) -> int:
        """Self-check pauses begun since start (a change to persist)."""
        return self._check.pauses_started

    def export_pauses(self, now_s: float) -> dict[int, float]:
        """Cells paused by the self-check, as ``{cell: seconds left}`` (to persist)."""
        return self._check.export_pauses(now_s)

    def restore_pauses(self, pauses: dict[int, float], now_s: float) -> None:
        """Resume pauses saved by ``export_pauses`` (cells out of range are skipped)."""
        self._check.restore_pauses(pauses, now_s)
        self._plan = None

    # --- accounting -----------------------------------------------------------------------

    def _account(self, now_s: float) -> None:
        """Count the time the current plan has run (currents are constant until it changes)."""
        last = self._last_s
        self._last_s = now_s
        if last is not None and now_s > last:
            h = (now_s - last) / 3600.0
            self._pending_h += h
            self._check.advance(self._last_current_a * h)

    def _flush(self) -> None:
        """Integrate the running plan's currents into the per-action and total charges."""
        h = self._pending_h
        self._pending_h = 0.0
        if h <= 0.0:
            return
        for k, act in enumerate(self._action):
            if act is None:
                continue
            dq = self._current_a[k] * h
            self._charge_ah[k] += dq
            self._check.count(k, dq)
            if act is CellAction.BLEED:
                self._dissipated_ah[k] += dq
            elif act is CellAction.DONATE:
                self._moved_ah[k] -= dq
            else:
                self._moved_ah[k] += dq

    @property
    def dissipated_ah(self) -> list[float]:
        """Charge dissipated in each cell's bleed resistor since start (as planned)."""
        self._flush()
        return list(self._dissipated_ah)

    @property
    def moved_ah(self) -> list[float]:
        """Charge drawn from (negative) or delivered to (positive) each cell by the converter."""
        self._flush()
        return list(self._moved_ah)

    # --- the step -------------------------------------------------------------------------

    def step(
        self,
        snapshot: PackSnapshot,
        soc: SocReport | None,
        now_s: float,
        *,
        charge_power_available_w: float | None = None,
    ) -> BalancingPlan:
        """The balancing plan for this step.

        Args:
            snapshot: the pack as of ``now_s``.
            soc: per-cell SoC and capacity; ``None``: voltage fallback (near the top only).
            now_s: monotonic seconds (injected).
            charge_power_available_w: power the charger/inverter offers beyond what the pack
                takes (surplus PV); it raises ``power_budget_w``. ``None``: unknown.
        """
        self._account(now_s)
        self._last_current_a = snapshot.current_a or 0.0
        mode = self.mode
        why = self._data_guard(snapshot, mode)
        if why:
            return self._idle(why)
        plan = self._plan
        if (
            plan is not None
            and plan.mode is mode
            and 0.0 <= now_s - self._plan_s < self.config.interval_s
        ):
            return plan
        self._flush()
        step = self._classify(snapshot, soc, mode, now_s)
        if isinstance(step, str):
            return self._idle(step)
        cfg, prev = self.config, self._action
        want_up, want_down, by_voltage = candidates(
            cfg, step, prev, self._switched_s, self._by_voltage
        )
        up, down, blocked = guard_cells(
            cfg,
            step,
            self._heat,
            self._check,
            prev,
            (want_up, want_down, by_voltage),
            active=self.mode is BalancingMode.ACTIVE,
        )
        chosen_up, chosen_down, doubtful = budget(
            cfg, step, up, down, prev, charge_power_available_w
        )
        actions, bleed = self._act(step, chosen_up, chosen_down, by_voltage)
        actions.extend(blocked)
        idle = ""
        if not actions:
            idle = idle_reason(step, doubtful)
        elif len(up) - len(chosen_up) - doubtful and not chosen_up:
            idle = "power or cell budget exhausted"
        self._plan = BalancingPlan(mode, bleed, tuple(actions), idle)
        self._plan_s = now_s
        return self._plan

    def _idle(self, reason: str) -> BalancingPlan:
        n = self.pack.cells
        self._flush()
        self._action = [None] * n
        self._current_a = [0.0] * n
        self._plan = None
        return BalancingPlan(self.mode, (False,) * n, (), reason)

    def _data_guard(self, snapshot: PackSnapshot, mode: BalancingMode) -> str:
        """Why nothing may be planned from this snapshot (mode off, data incomplete or stale)."""
        if mode is BalancingMode.OFF:
            return "mode off"
        cell_v = snapshot.cell_voltage_v
        if len(cell_v) != self.pack.cells or None in cell_v or snapshot.current_a is None:
            return "incomplete data"
        if None in snapshot.cell_temp_c:
            return "incomplete data"
        # Every value known implies every age known.
        oldest = max(cast(tuple[float, ...], snapshot.cell_voltage_age_s), default=0.0)
        oldest_t = max(cast(tuple[float, ...], snapshot.cell_temp_age_s), default=0.0)
        if oldest > self._voltage_age_s or oldest_t > self._temp_age_s:
            return "stale data"
        return ""

    def _states(self, snapshot: PackSnapshot, soc: SocReport | None, vmax: float) -> set[str]:
        """The operating states the pack is in: one of rest/charge/discharge, plus ``top``."""
        current = snapshot.current_a
        assert current is not None
        rest_a = self.config.rest_current_c * self.pack.capacity_ah
        if current < -rest_a:
            return {"discharge"}
        base = "rest" if current <= rest_a else "charge"
        near_top = vmax >= self.top_cell_v or (
            soc is not None and soc.soc_pct >= self.config.top_soc_pct
        )
        return {base, "top"} if near_top else {base}

    def _classify(
        self, snapshot: PackSnapshot, soc: SocReport | None, mode: BalancingMode, now_s: float
    ) -> PlanStep | str:
        """The board guard, the operating state, and each cell's imbalance; or why not."""
        cfg = self.config
        volts: list[float] = list(snapshot.cell_voltage_v)  # type: ignore[arg-type]
        temps = snapshot.cell_temp_c
        # Board guard (with hysteresis): all balancing stops while the board is hot.
        why = self._heat.board(temps)
        if why:
            return why
        vmax = max(volts)
        states = self._states(snapshot, soc, vmax)
        state = "+".join(sorted(states))
        if not states.intersection(cfg.states_of(mode)):
            return f"{mode.value} not allowed while {state} (balancing.{mode.value}_states)"
        if soc is not None and len(soc.cells) == self.pack.cells:
            imbalance = soc_imbalance(cfg, mode, soc.cells)
            if imbalance.drift is not None:
                self._check.drift = imbalance.drift
        elif "top" not in states:
            return "no SoC estimate; the voltage fallback runs near the top only"
        else:
            imbalance = voltage_imbalance(cfg, mode, volts)
        return PlanStep(mode, volts, temps, vmax, states, state, imbalance, self.top_cell_v, now_s)

    def _act(
        self, step: PlanStep, chosen_up: list[int], chosen_down: list[int], by_voltage: set[int]
    ) -> tuple[list[BalancingAction], tuple[bool, ...]]:
        """The actions with their reasons, remembered for the next step; and the bleed flags
        (every cell that gives charge)."""
        cfg = self.config
        n = self.pack.cells
        mode, dev = step.mode, step.imbalance.dev
        new_action: list[CellAction | None] = [None] * n
        new_current = [0.0] * n
        bleed = [False] * n
        if mode is BalancingMode.PASSIVE:
            current_up, verb_up = cfg.bleed_current_a, CellAction.BLEED
        else:
            current_up, verb_up = cfg.active_current_a, CellAction.DONATE
        current_down = cfg.active_current_a * cfg.active_efficiency
        for k in chosen_up:
            new_action[k], new_current[k] = verb_up, current_up
            bleed[k] = True
        for k in chosen_down:
            new_action[k], new_current[k] = CellAction.RECEIVE, current_down
        actions: list[BalancingAction] = []
        for k in range(n):
            if new_action[k] != self._action[k]:
                self._switched_s[k] = step.now_s
                self._charge_ah[k] = 0.0
                self._check.restart(k, dev[k])
            act = new_action[k]
            if act is None:
                continue
            reason = action_reason(step, k, new_current[k], k in by_voltage)
            actions.append(
                BalancingAction(k, mode, act, reason, new_current[k], self._charge_ah[k])
            )
        self._action = new_action
        self._current_a = new_current
        self._by_voltage = [k in by_voltage and new_action[k] is not None for k in range(n)]
        return actions, tuple(bleed)
