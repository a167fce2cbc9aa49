"""What may stop a cell from balancing: heat, a low voltage, an estimate that does not follow. Pure.

Two guards with memory, each owned by the planner (:mod:`gateway.core.balancing`):

* ``HeatGuard``: the board (all balancing stops while it is hot) and each cell's sensor, both
  with hysteresis, and the minimum voltage of a cell that gives charge.
* ``SelfCheck``: after a cell has moved ``progress_check_pct`` of its capacity, the SoC estimate
  must show at least ``progress_min_ratio`` of it; else the cell pauses for
  ``progress_pause_s`` (an estimate that does not see balancing currents would otherwise drain
  it). The pauses persist across restarts (``export_pauses``/``restore_pauses``).

Each returns a reason (one phrase for users) when it holds a cell, else ``""``. ``guard_cells``
runs them, and the voltage check near the top, over the candidates of one step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.core.balancing_config import BALANCING_DEFAULTS, BalancingConfig
from gateway.core.balancing_select import PlanStep
from gateway.core.model import BalancingAction, CellAction
from gateway.core.pack import PackConfig

__all__ = ["HeatGuard", "SelfCheck", "guard_cells"]


class HeatGuard:
    """The board and cell temperature guards (with hysteresis) and the minimum cell voltage.

    Raises:
        ValueError: at construction, a board sensor outside the pack's sensors (names the key).
    """

    def __init__(self, config: BalancingConfig, pack: PackConfig) -> None:
        self.config = config
        defaults = BALANCING_DEFAULTS[pack.chemistry]
        self.min_cell_v = (
            config.min_cell_v if config.min_cell_v is not None else defaults["min_cell_v"]
        )
        # pack.board_sensors is the one map of sensor roles; balancing.board_sensors only adds.
        board_sensors = (*pack.board_sensors, *config.board_sensors)
        bad = [i for i in board_sensors if not 0 <= i < pack.temp_sensors]
        if bad:
            raise ValueError(
                f"balancing.board_sensors (={bad}) must be within 0..{pack.temp_sensors - 1}"
            )
        n = pack.cells
        self._board = frozenset(board_sensors)
        # Cell k is read by sensor k * m // n (sensors spread evenly along the string), skipping
        # board sensors.
        cell_sensors = [i for i in range(pack.temp_sensors) if i not in self._board]
        m = len(cell_sensors)
        self._sensor_of = [cell_sensors[k * m // n] if m else -1 for k in range(n)]
        self._board_hot = False
        self._cell_hot = [False] * n

    def board(self, temps: tuple[float | None, ...]) -> str:
        """Why all balancing stops (the board, or without board sensors the hottest sensor, is
        at ``max_board_temp_c``, until back under it by the hysteresis), else ``""``."""
        cfg = self.config
        board = [temps[i] for i in self._board] if self._board else list(temps)
        board_known = [t for t in board if t is not None]
        hot = max(board_known) if board_known else None
        limit = cfg.max_board_temp_c
        if hot is not None:
            release = limit - abs(limit) * cfg.guard_hysteresis - 1.0
            self._board_hot = hot >= limit or (self._board_hot and hot > release)
        if self._board_hot:
            return f"board at {hot:.1f} degC (limit {limit:g} degC)"
        return ""

    def cell(self, k: int, voltage_v: float | None, temps: tuple[float | None, ...]) -> str:
        """Why cell ``k`` may not balance: its sensor unknown or hot, or (``voltage_v`` given,
        for a cell that gives charge) at or below ``min_cell_v``; else ``""``."""
        cfg = self.config
        j = self._sensor_of[k]
        if j >= 0:
            t = temps[j]
            if t is None:
                return f"sensor {j + 1} unknown"
            limit = cfg.max_cell_temp_c
            # Hysteresis: a cell stopped for heat resumes only once clearly below the limit.
            release = limit - abs(limit) * cfg.guard_hysteresis - 1.0
            hot = t >= limit or (self._cell_hot[k] and t > release)
            self._cell_hot[k] = hot
            if hot:
                return f"sensor {j + 1} at {t:.1f} degC (limit {limit:g} degC)"
        if voltage_v is not None and voltage_v <= self.min_cell_v:
            return f"cell at {voltage_v:.3f} V <= minimum {self.min_cell_v:g} V"
        return ""


class SelfCheck:
    """Pauses a cell whose SoC estimate does not follow the charge balancing moved.

    The planner reports the pack charge (``advance``), each cell's moved charge (``count``) and
    every switch of a cell (``restart``); ``guard`` compares.
    """

    def __init__(self, config: BalancingConfig, cells: int) -> None:
        self.config = config
        self.cells = cells
        self.pack_ah = 0.0  # charge through the pack since start (positive charging)
        self.drift: list[float] = [0.0] * cells  # d(imbalance)/d(pack Ah) of each cell (active)
        self.pauses_started = 0  # self-check pauses begun since start (a change to persist)
        self._moved_ah: list[float] = [0.0] * cells  # moved since the last check
        self._dev: list[float] = [0.0] * cells  # signed imbalance at the last check
        self._pack_ah: list[float] = [0.0] * cells  # pack charge counter at that moment
        self._paused_until: list[float] = [-math.inf] * cells

    def advance(self, charge_ah: float) -> None:
        """Count ``charge_ah`` through the pack (positive charging)."""
        self.pack_ah += charge_ah

    def count(self, k: int, charge_ah: float) -> None:
        """Count ``charge_ah`` moved by cell ``k``'s balancing since its last check."""
        self._moved_ah[k] += charge_ah

    def restart(self, k: int, dev: float) -> None:
        """Cell ``k`` switched: count afresh from its imbalance ``dev`` now."""
        self._moved_ah[k] = 0.0
        self._dev[k] = dev
        self._pack_ah[k] = self.pack_ah

    def guard(
        self,
        k: int,
        dev: float,
        running: CellAction | None,
        capacity_ah: float,
        sigma_ah: float,
        now_s: float,
        *,
        active: bool,
    ) -> str:
        """Why cell ``k`` pauses (paused before, or the check fails now), else ``""``.

        ``dev`` is the cell's signed imbalance (Ah above its target), ``running`` what it did
        in the last plan, ``sigma_ah`` the uncertainty of that imbalance, ``active`` the mode.
        Passive band excess does not move with the pack current; the active deviation drifts by
        ``drift[k]`` per Ah through the pack, which is taken out before comparing. A shortfall
        within ``sigma_ah`` proves nothing (the estimate corrects itself by that much while
        balancing runs): the check then keeps counting, until the moved charge makes the
        shortfall clear or the estimate catches up.
        """
        cfg = self.config
        if now_s < self._paused_until[k]:
            left_h = (self._paused_until[k] - now_s) / 3600.0
            return f"paused {left_h:.1f} h more: SoC estimate did not follow balancing"
        moved = self._moved_ah[k]
        if running is None or cfg.progress_check_pct <= 0:
            return ""
        if moved < cfg.progress_check_pct / 100.0 * capacity_ah:
            return ""
        drift = 0.0
        if active:
            drift = (self.pack_ah - self._pack_ah[k]) * self.drift[k]
        effect = dev - self._dev[k] - drift
        if running is CellAction.RECEIVE:
            moved *= cfg.active_efficiency
            seen = effect
        else:
            seen = -effect
        shortfall = cfg.progress_min_ratio * moved - seen
        if 0.0 < shortfall <= sigma_ah:
            return ""  # inconclusive: keep counting from the same start
        self.restart(k, dev)
        if shortfall <= 0.0:
            return ""
        self._paused_until[k] = now_s + cfg.progress_pause_s
        self.pauses_started += 1
        return (
            f"SoC estimate moved {max(0.0, seen):.2f} Ah while balancing moved {moved:.2f} Ah;"
            f" paused {cfg.progress_pause_s / 3600.0:g} h"
        )

    def export_pauses(self, now_s: float) -> dict[int, float]:
        """Cells paused, as ``{cell: seconds left}`` (to persist)."""
        return {k: u - now_s for k, u in enumerate(self._paused_until) if u > now_s}

    def restore_pauses(self, pauses: dict[int, float], now_s: float) -> None:
        """Resume pauses saved by ``export_pauses`` (cells out of range are skipped)."""
        for k, left_s in pauses.items():
            if 0 <= k < self.cells and left_s > 0:
                self._paused_until[k] = now_s + left_s


def guard_cells(
    cfg: BalancingConfig,
    step: PlanStep,
    heat: HeatGuard,
    check: SelfCheck,
    running: Sequence[CellAction | None],
    wanted: tuple[list[int], list[int], set[int]],
    *,
    active: bool,
) -> tuple[list[int], list[int], list[BalancingAction]]:
    """The cell guards over one step's candidates: temperature, the minimum voltage (cells that
    give charge), the voltage check near the top and the self-check.

    Args:
        cfg: the ``[balancing]`` settings.
        step: the step's data and imbalance.
        heat: the planner's heat guard.
        check: the planner's self-check.
        running: each cell's action of the previous plan (``None``: idle).
        wanted: ``(want_up, want_down, by_voltage)``: the cells that would give charge, take
            it (active), and those the voltage top-balance chose.
        active: the mode is active balancing (the self-check's scale).

    Returns:
        ``(up, down, blocked)``: the cells that may give and take charge; a ``BLOCKED`` action
        with its reason per cell held back.
    """
    want_up, want_down, by_voltage = wanted
    imb = step.imbalance
    volts, temps = step.volts, step.temps
    blocked: list[BalancingAction] = []
    up: list[int] = []
    # Near the top the voltages are steep enough to check the estimate: a cell it calls high
    # that sits with the lowest cells is not bled (an estimate can be confidently wrong).
    # Only where the voltage is on the steep top: a pack SoC near the top alone may leave the
    # cells on the flat just below it (LFP 85..93 %), where 3 Ah apart read within 1 mV and
    # the check would hold back exactly the cells that need it.
    check_v = (
        imb.use_soc
        and "top" in step.states
        and step.vmax >= step.top_cell_v
        and cfg.voltage_check_mv > 0
    )
    v_floor = min(volts) + cfg.voltage_check_mv / 1000.0
    for k in want_up:
        why = heat.cell(k, volts[k], temps)
        if k in by_voltage:
            pass  # the voltage is the check: it stops once the cell is back down
        elif not why and check_v and volts[k] < v_floor:
            why = (
                f"estimate says {imb.dev[k]:.2f} Ah high, but the cell is within"
                f" {cfg.voltage_check_mv:g} mV of the lowest near the top"
            )
        elif not why and imb.use_soc:
            why = _progress(check, step, k, running[k], active)
        if why:
            blocked.append(BalancingAction(k, step.mode, CellAction.BLOCKED, why, 0.0, 0.0))
        else:
            up.append(k)
    down: list[int] = []
    for k in want_down:
        why = heat.cell(k, None, temps)
        if not why and imb.use_soc:
            why = _progress(check, step, k, running[k], active)
        if why:
            blocked.append(BalancingAction(k, step.mode, CellAction.BLOCKED, why, 0.0, 0.0))
        else:
            down.append(k)
    return up, down, blocked


def _progress(
    check: SelfCheck, step: PlanStep, k: int, running: CellAction | None, active: bool
) -> str:
    """The self-check of cell ``k`` (``SelfCheck.guard``) with this step's imbalance."""
    imb = step.imbalance
    return check.guard(
        k, imb.dev[k], running, imb.capacity_ah[k], imb.sigma_ah[k], step.now_s, active=active
    )
