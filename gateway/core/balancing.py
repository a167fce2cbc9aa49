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
"""

from __future__ import annotations

import math
from typing import cast

from pydantic import Field

from gateway.core.config import Section
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import (
    BalancingAction,
    BalancingMode,
    BalancingPlan,
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

STATES = ("rest", "charge", "discharge", "top")
"""Operating states a mode may be allowed in; ``top`` = near the top of charge, not discharging."""

# Chemistry defaults: the top-of-charge cell voltage (where voltages say something about SoC)
# and the minimum cell voltage for giving charge: where the discharge taper of the limits reaches
# 0 A. The guard sees loaded voltages, so a higher value stops an active balancer exactly when the
# weakest cell needs it most (end of discharge).
BALANCING_DEFAULTS: dict[str, dict[str, float]] = {
    "lfp": {"top_cell_v": 3.40, "min_cell_v": 2.80},
    "nmc": {"top_cell_v": 4.05, "min_cell_v": 3.10},
}


class BalancingConfig(Section):
    """Balancing mode, currents, thresholds and guards."""

    mode: BalancingMode = BalancingMode.PASSIVE
    """``off``, ``passive`` (bleed resistors) or ``active`` (charge transfer)."""
    bleed_current_a: float = Field(default=0.1, gt=0)
    """Bleed current of one cell's resistor (33 ohm at 3.3 V: 0.1 A)."""
    active_current_a: float = Field(default=2.0, gt=0)
    """Active balancer: current drawn from a donating cell."""
    active_efficiency: float = Field(default=0.85, gt=0, le=1)
    """Active balancer: fraction of the donated charge that reaches the receiving cell."""
    active_channels: int = Field(default=8, ge=1)
    """Active balancer: how many donor/receiver pairs may run at once."""
    start_pct: float = Field(default=0.5, ge=0)
    """A cell starts balancing when its excess (passive) or deviation (active) exceeds this,
    in percent of its capacity ..."""
    stop_pct: float = Field(default=0.05, ge=0)
    """... and stops when it is back under this (hysteresis)."""
    active_start_pct: float = Field(default=0.2, ge=0)
    """Active mode: start threshold (moving charge costs only the converter loss, so the
    active band is tighter than the passive one) ..."""
    active_stop_pct: float = Field(default=0.02, ge=0)
    """... and stop threshold, in percent of capacity."""
    sigma_factor: float = Field(default=1.0, ge=0)
    """... and only when the excess also exceeds this many standard deviations of the SoC
    estimate (do not act on noise): the cell's SoC against the other cells
    (``soc_rel_sigma_pct``; the string's common counting errors do not move charge between
    cells), or the absolute ``soc_sigma_pct`` where the estimate has no relative one."""
    capacity_sigma_factor: float = Field(default=0.35, ge=0)
    """Passive: a cell starts bleeding only when its excess over the band remains with the
    capacities this many standard deviations (``capacity_sigma_ah``) the wrong way. Charge a
    capacity error of that size could explain is not bled: bleeding is lost for good, waiting
    for the capacities to be learned costs only time. 0.35 because the estimator's capacity
    sigma is cautious (several times its actual error on the simulator, docs/PERFORMANCE.md);
    0: take the capacity estimates as exact."""
    voltage_start_mv: float = Field(default=15.0, ge=0)
    """Voltage fallback (no SoC estimate): start when a cell is this far above the lowest
    (passive) or the mean (active), near the top of charge only ..."""
    voltage_stop_mv: float = Field(default=5.0, ge=0)
    """... stop when back under this."""
    top_cell_v: float | None = Field(default=None, gt=0.0, le=10.0)
    """Near the top of charge when the highest cell reaches this (LFP 3.40, NMC 4.05 V) ..."""
    top_soc_pct: float = Field(default=90.0, ge=0, le=100)
    """... or the pack SoC is at or above this."""
    rest_current_c: float = Field(default=0.02, ge=0)
    """Below this C-rate (absolute) the pack is at rest."""
    passive_states: tuple[str, ...] = ("rest", "top")
    """Operating states in which passive balancing may run."""
    active_states: tuple[str, ...] = ("rest", "charge", "discharge")
    """Operating states in which the active converter may run."""
    min_cell_v: float | None = Field(default=None, gt=0.0, le=10.0)
    """Never bleed or draw from a cell at or below this voltage (LFP 2.80, NMC 3.10 V)."""
    max_cell_temp_c: float = Field(default=50.0, ge=-40.0, le=150.0)
    """Never balance a cell whose temperature sensor reads at or above this."""
    max_board_temp_c: float = Field(default=60.0, ge=-40.0, le=150.0)
    """Stop all balancing when a board sensor (or, without any, the hottest sensor) reads this."""
    board_sensors: tuple[int, ...] = ()
    """Deprecated: set ``pack.board_sensors`` (the map protection, limits and SoC use too); a
    sensor listed only here is refused at load."""
    guard_hysteresis: float = Field(default=0.02, ge=0)
    """Guards release this far back (fraction of the guard value) inside their limit."""
    max_active_cells: int | None = None
    """At most this many cells balance at once (thermal budget of the board; ``None``: any)."""
    power_budget_w: float | None = None
    """Power balancing may take from the pack (bleed heat, converter loss); ``None``: no limit.
    Power the charger makes available (``charge_power_available_w``) adds to it."""
    interval_s: float = Field(default=1.0, ge=0)
    """The plan is recomputed at most this often (the data checks run every step); balancing
    acts over hours, and planning 512 cells at 100 Hz would cost more than it gains."""
    max_data_age_s: float | None = Field(default=None, gt=0)
    """Deprecated: set ``timeouts.cell_voltage_timeout_s`` and ``timeouts.temperature_timeout_s``
    (balancing stops at the shorter of the two for a temperature). Until then, one age for both,
    in force while neither of those keys is set."""
    min_dwell_s: float = Field(default=30.0, ge=0)
    """A cell keeps its state at least this long after a switch (unless a guard trips)."""
    voltage_check_mv: float = Field(default=5.0, ge=0)
    """Near the top of charge (highest cell at ``top_cell_v`` or above), a cell the SoC estimate
    wants to bleed (or draw from) is left alone when its voltage is within this of the lowest
    cell (0 disables the check)."""
    progress_check_pct: float = Field(default=1.0, ge=0)
    """Self-check: after a cell has moved this much charge (percent of its capacity) the SoC
    estimate must show at least ``progress_min_ratio`` of it, else the cell pauses (an estimate
    that does not see balancing currents would otherwise drain it). 0 disables the check."""
    progress_min_ratio: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the moved charge the estimate must reflect."""
    progress_pause_s: float = Field(default=4 * 3600.0, ge=0)
    """How long a cell that failed the self-check pauses."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        for name, states in (
            ("passive_states", self.passive_states),
            ("active_states", self.active_states),
        ):
            bad = sorted(set(states) - set(STATES))
            if bad:
                raise ValueError(f"{name} (={bad}) must be among {list(STATES)}")
        if self.stop_pct > self.start_pct:
            raise ValueError(
                f"stop_pct (={self.stop_pct}) must not exceed start_pct (={self.start_pct})"
            )
        if self.active_stop_pct > self.active_start_pct:
            raise ValueError(
                f"active_stop_pct (={self.active_stop_pct}) must not exceed"
                f" active_start_pct (={self.active_start_pct})"
            )
        if self.voltage_stop_mv > self.voltage_start_mv:
            raise ValueError(
                f"voltage_stop_mv (={self.voltage_stop_mv}) must not exceed"
                f" voltage_start_mv (={self.voltage_start_mv})"
            )


def band_excess_low_ah(
    soc_pct: list[float], capacity_ah: list[float], capacity_sigma_ah: list[float], z: float
) -> list[float]:
    """Each cell's excess over the band (``band_excess_ah``) when the capacities are off.

    The smallest excess found with this cell's capacity ``z`` sigma up or down and every other
    capacity at ``z`` sigma down, as estimated or ``z`` sigma up (the smallest capacity and the
    lowest charge set the band for every cell, so their errors move all excesses). A lower
    bound to bleed against: what is above it is not explained by a capacity error of that size.
    Non-finite sigmas count as 0. O(n): the minimum over the other cells comes from the two
    smallest.
    """
    n = len(capacity_ah)
    sig = [z * x if math.isfinite(x) and x > 0 else 0.0 for x in capacity_sigma_ah]
    frac = [s / 100.0 for s in soc_pct]
    low = [math.inf] * n
    for other in (-1.0, 0.0, 1.0):
        caps = [max(1e-6, c + other * d) for c, d in zip(capacity_ah, sig, strict=True)]
        q = [f * c for f, c in zip(frac, caps, strict=True)]
        c_lo = _two_smallest(caps)
        q_lo = _two_smallest(q)
        for i in range(n):
            c_rest = c_lo[1] if c_lo[2] == i else c_lo[0]
            q_rest = q_lo[1] if q_lo[2] == i else q_lo[0]
            for own in (-1.0, 1.0):
                ci = max(1e-6, capacity_ah[i] + own * sig[i])
                qi = frac[i] * ci
                e = qi - min(q_rest, qi) - ci + min(c_rest, ci)
                low[i] = min(low[i], e)
    return [max(0.0, x) for x in low]


def _two_smallest(xs: list[float]) -> tuple[float, float, int]:
    """The smallest value, the second smallest, and the index of the smallest."""
    best, second, at = math.inf, math.inf, -1
    for k, x in enumerate(xs):
        if x < best:
            best, second, at = x, best, k
        elif x < second:
            second = x
    return best, second, at


def band_excess_ah(soc_pct: list[float], capacity_ah: list[float]) -> list[float]:
    """Each cell's charge above the band that lets the pack deliver ``min(capacity)``.

    ``sum()`` of the result is the least charge passive balancing must dissipate; its ``max()``
    is the capacity the pack loses to imbalance now. See the module docstring.
    """
    q = [s / 100.0 * c for s, c in zip(soc_pct, capacity_ah, strict=True)]
    m = min(q)
    cmin = min(capacity_ah)
    return [max(0.0, qi - m - (ci - cmin)) for qi, ci in zip(q, capacity_ah, strict=True)]


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
        self.mode = config.mode
        n = pack.cells
        self._board = frozenset(board_sensors)
        # Cell k is read by sensor k * m // n (sensors spread evenly along the string), skipping
        # board sensors.
        cell_sensors = [i for i in range(pack.temp_sensors) if i not in self._board]
        m = len(cell_sensors)
        self._sensor_of = [cell_sensors[k * m // n] if m else -1 for k in range(n)]
        self._action: list[str] = [""] * n  # "", "bleed", "donate", "receive"
        self._current_a: list[float] = [0.0] * n
        self._charge_ah: list[float] = [0.0] * n
        self._switched_s: list[float] = [-math.inf] * n
        self._check_ah: list[float] = [0.0] * n  # moved since the last self-check
        self._check_dev: list[float] = [0.0] * n  # signed imbalance at the last self-check
        self._check_pack_ah: list[float] = [0.0] * n  # pack charge counter at that moment
        self._pack_ah = 0.0  # charge through the pack since start (positive charging)
        self._last_current_a = 0.0
        self._drift: list[float] = [0.0] * n  # d(imbalance)/d(pack Ah) of each cell (active)
        self._paused_until: list[float] = [-math.inf] * n
        self.pauses_started = 0  # self-check pauses begun since start (a change to persist)
        self._by_voltage = [False] * n  # bleeding by the voltage top-balance
        self._board_hot = False
        self._cell_hot = [False] * n
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
            c if a == "receive" else -c for a, c in zip(self._action, self._current_a, strict=True)
        )

    def set_mode(self, mode: BalancingMode) -> None:
        """Switch the mode; running actions stop at the next step."""
        self.mode = BalancingMode(mode)

    def export_pauses(self, now_s: float) -> dict[int, float]:
        """Cells paused by the self-check, as ``{cell: seconds left}`` (to persist)."""
        return {k: u - now_s for k, u in enumerate(self._paused_until) if u > now_s}

    def restore_pauses(self, pauses: dict[int, float], now_s: float) -> None:
        """Resume pauses saved by ``export_pauses`` (cells out of range are skipped)."""
        for k, left_s in pauses.items():
            if 0 <= k < self.pack.cells and left_s > 0:
                self._paused_until[k] = now_s + left_s
        self._plan = None

    # ------------------------------------------------------------------------------------

    def _account(self, now_s: float) -> None:
        """Count the time the current plan has run (currents are constant until it changes)."""
        last = self._last_s
        self._last_s = now_s
        if last is not None and now_s > last:
            h = (now_s - last) / 3600.0
            self._pending_h += h
            self._pack_ah += self._last_current_a * h

    def _flush(self) -> None:
        """Integrate the running plan's currents into the per-action and total charges."""
        h = self._pending_h
        self._pending_h = 0.0
        if h <= 0.0:
            return
        for k, act in enumerate(self._action):
            if not act:
                continue
            dq = self._current_a[k] * h
            self._charge_ah[k] += dq
            self._check_ah[k] += dq
            if act == "bleed":
                self._dissipated_ah[k] += dq
            elif act == "donate":
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

    def _idle(self, reason: str) -> BalancingPlan:
        n = self.pack.cells
        self._flush()
        self._action = [""] * n
        self._current_a = [0.0] * n
        self._plan = None
        return BalancingPlan(self.mode, (False,) * n, (), reason)

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
        cfg = self.config
        n = self.pack.cells
        mode = self.mode
        if mode is BalancingMode.OFF:
            return self._idle("mode off")
        cell_v = snapshot.cell_voltage_v
        if len(cell_v) != n or None in cell_v or snapshot.current_a is None:
            return self._idle("incomplete data")
        if None in snapshot.cell_temp_c:
            return self._idle("incomplete data")
        # Every value known implies every age known.
        oldest = max(cast(tuple[float, ...], snapshot.cell_voltage_age_s), default=0.0)
        oldest_t = max(cast(tuple[float, ...], snapshot.cell_temp_age_s), default=0.0)
        if oldest > self._voltage_age_s or oldest_t > self._temp_age_s:
            return self._idle("stale data")
        plan = self._plan
        if plan is not None and plan.mode is mode and 0.0 <= now_s - self._plan_s < cfg.interval_s:
            return plan
        self._flush()
        volts: list[float] = list(cell_v)  # type: ignore[arg-type]
        temps = snapshot.cell_temp_c

        # Board guard (with hysteresis): all balancing stops while the board is hot.
        board = [temps[i] for i in self._board] if self._board else list(temps)
        board_known = [t for t in board if t is not None]
        hot = max(board_known) if board_known else None
        limit = cfg.max_board_temp_c
        if hot is not None:
            release = limit - abs(limit) * cfg.guard_hysteresis - 1.0
            self._board_hot = hot >= limit or (self._board_hot and hot > release)
        if self._board_hot:
            return self._idle(f"board at {hot:.1f} degC (limit {limit:g} degC)")

        vmax = max(volts)
        states = self._states(snapshot, soc, vmax)
        state = "+".join(sorted(states))
        allowed = cfg.passive_states if mode is BalancingMode.PASSIVE else cfg.active_states
        if not states.intersection(allowed):
            return self._idle(f"{mode.value} not allowed while {state}")

        use_soc = soc is not None and len(soc.cells) == n
        if not use_soc and "top" not in states:
            return self._idle("no SoC estimate; the voltage fallback runs near the top only")

        # Imbalance of each cell in Ah (SoC) or V (fallback), and the start/stop thresholds.
        pair_sig: list[float] | None = None
        if use_soc:
            assert soc is not None
            caps = [c.capacity_ah for c in soc.cells]
            socs = [c.soc_pct for c in soc.cells]
            # Cell-to-cell uncertainty where the estimate has it (see ``sigma_factor``).
            sig = [
                (c.soc_rel_sigma_pct if math.isfinite(c.soc_rel_sigma_pct) else c.soc_sigma_pct)
                / 100.0
                * c.capacity_ah
                for c in soc.cells
            ]
            if mode is BalancingMode.PASSIVE:
                dev = band_excess_ah(socs, caps)
                dev_start = dev
                cap_sig = [c.capacity_sigma_ah for c in soc.cells]
                if cfg.capacity_sigma_factor > 0 and any(x > 0 for x in cap_sig):  # NaN: False
                    dev_start = band_excess_low_ah(socs, caps, cap_sig, cfg.capacity_sigma_factor)
            else:
                mean = math.fsum(s * c for s, c in zip(socs, caps, strict=True)) / math.fsum(caps)
                # The pack current alone moves a cell's deviation from the mean SoC by
                # (1 - cap / mean cap) per Ah through the pack; the self-check allows for it.
                mean_cap = math.fsum(caps) / n
                self._drift = [1.0 - c / mean_cap for c in caps]
                dev = [(s - mean) / 100.0 * c for s, c in zip(socs, caps, strict=True)]
                dev_start = dev
            passive = mode is BalancingMode.PASSIVE
            start_pct = cfg.start_pct if passive else cfg.active_start_pct
            stop_pct = cfg.stop_pct if passive else cfg.active_stop_pct
            if passive:
                start = [
                    max(start_pct / 100.0 * c, cfg.sigma_factor * s)
                    for c, s in zip(caps, sig, strict=True)
                ]
            else:
                # Active: a transfer needs the donor clearly above the receiver (tested per
                # pair below); against the mean alone each cell's own sigma would hold back
                # pairs whose difference is far beyond doubt.
                start = [start_pct / 100.0 * c for c in caps]
                pair_sig = [cfg.sigma_factor * s for s in sig]
            stop = [stop_pct / 100.0 * c for c in caps]
            unit, scale = "Ah", 1.0
        else:
            ref = min(volts) if mode is BalancingMode.PASSIVE else math.fsum(volts) / n
            dev = [v - ref for v in volts]
            dev_start = dev
            start = [cfg.voltage_start_mv / 1000.0] * n
            stop = [cfg.voltage_stop_mv / 1000.0] * n
            unit, scale = "mV", 1000.0

        # Hysteresis and dwell: candidates keep running until under ``stop``.
        prev = self._action
        want_up: list[int] = []
        want_down: list[int] = []
        # Voltage top-balance (passive, SoC estimate in use): at rest on the steep top of the
        # curve a cell clearly above the lowest is fuller whatever the estimate says. Without it
        # an estimate that cannot separate the cells (capacities not learned yet) never bleeds the
        # high cell, while that cell holds CCL at 0 A: limits and balancing would wait for each
        # other for ever (``docs/RELIABILITY.md``, runaway cell at the top).
        by_voltage: set[int] = set()
        for k in range(n):
            d = dev[k]
            was = prev[k]
            dwell = now_s - self._switched_s[k] < cfg.min_dwell_s
            if d > 0:
                on = dev_start[k] > start[k] or (
                    was in ("bleed", "donate") and (d > stop[k] or dwell)
                )
                if on:
                    want_up.append(k)
            elif mode is BalancingMode.ACTIVE:
                on = -d > start[k] or (was == "receive" and (-d > stop[k] or dwell))
                if on:
                    want_down.append(k)

        if use_soc and not want_up:
            by_voltage = self._voltage_top(volts, states, prev, now_s)
            want_up.extend(sorted(by_voltage))

        # Cell guards: temperature and minimum voltage (for cells that give charge).
        blocked: list[BalancingAction] = []
        up: list[int] = []
        # Near the top the voltages are steep enough to check the estimate: a cell it calls high
        # that sits with the lowest cells is not bled (an estimate can be confidently wrong).
        # Only where the voltage is on the steep top: a pack SoC near the top alone may leave the
        # cells on the flat just below it (LFP 85..93 %), where 3 Ah apart read within 1 mV and
        # the check would hold back exactly the cells that need it.
        check_v = (
            use_soc and "top" in states and vmax >= self.top_cell_v and cfg.voltage_check_mv > 0
        )
        v_floor = min(volts) + cfg.voltage_check_mv / 1000.0
        for k in want_up:
            why = self._cell_guard(k, volts[k], temps)
            if k in by_voltage:
                pass  # the voltage is the check: it stops once the cell is back down
            elif not why and check_v and volts[k] < v_floor:
                why = (
                    f"estimate says {dev[k]:.2f} Ah high, but the cell is within"
                    f" {cfg.voltage_check_mv:g} mV of the lowest near the top"
                )
            elif not why and use_soc:
                why = self._progress_guard(k, dev[k], prev[k], caps[k], sig[k], now_s)
            if why:
                blocked.append(BalancingAction(k, mode, "blocked", why, 0.0, 0.0))
            else:
                up.append(k)
        down: list[int] = []
        for k in want_down:
            why = self._cell_guard(k, None, temps)
            if not why and use_soc:
                why = self._progress_guard(k, dev[k], prev[k], caps[k], sig[k], now_s)
            if why:
                blocked.append(BalancingAction(k, mode, "blocked", why, 0.0, 0.0))
            else:
                down.append(k)

        # Largest imbalance first; then the channel, cell-count and power budgets.
        up.sort(key=lambda k: -dev[k])
        down.sort(key=lambda k: dev[k])
        cap_cells = cfg.max_active_cells if cfg.max_active_cells is not None else n
        doubtful = 0  # active pairs whose difference is within the estimate's uncertainty
        budget_w = math.inf
        if cfg.power_budget_w is not None:
            budget_w = cfg.power_budget_w + max(0.0, charge_power_available_w or 0.0)
        if mode is BalancingMode.PASSIVE:
            per_cell_w = [cfg.bleed_current_a * v for v in volts]
            chosen_up: list[int] = []
            used_w = 0.0
            for k in up[:cap_cells]:
                if used_w + per_cell_w[k] > budget_w:
                    break
                used_w += per_cell_w[k]
                chosen_up.append(k)
            chosen_down: list[int] = []
        else:
            pairs = min(len(up), len(down), cfg.active_channels, cap_cells // 2)
            loss_w = cfg.active_current_a * (1.0 - cfg.active_efficiency)
            if loss_w > 0 and math.isfinite(budget_w):
                pairs = min(pairs, int(budget_w / (loss_w * max(volts))))
            chosen_up, chosen_down = [], []
            for k, j in zip(up[:pairs], down[:pairs], strict=True):
                if (
                    pair_sig is not None
                    and not (prev[k] == "donate" and prev[j] == "receive")
                    and dev[k] - dev[j] <= math.hypot(pair_sig[k], pair_sig[j])
                ):
                    doubtful += 1
                    continue
                chosen_up.append(k)
                chosen_down.append(j)
        skipped = len(up) - len(chosen_up) - doubtful

        # Build the actions and remember the state.
        actions: list[BalancingAction] = []
        new_action = [""] * n
        new_current = [0.0] * n
        bleed = [False] * n
        if mode is BalancingMode.PASSIVE:
            current_up, verb_up = cfg.bleed_current_a, "bleed"
        else:
            current_up, verb_up = cfg.active_current_a, "donate"
        current_down = cfg.active_current_a * cfg.active_efficiency
        for k in chosen_up:
            new_action[k], new_current[k] = verb_up, current_up
            bleed[k] = True
        for k in chosen_down:
            new_action[k], new_current[k] = "receive", current_down
        for k in range(n):
            if new_action[k] != prev[k]:
                self._switched_s[k] = now_s
                self._charge_ah[k] = 0.0
                self._check_ah[k] = 0.0
                self._check_dev[k] = dev[k]
                self._check_pack_ah[k] = self._pack_ah
            act = new_action[k]
            if not act:
                continue
            d = abs(dev[k])
            if k in by_voltage:
                reason = (
                    f"voltage top-balance: {(volts[k] - min(volts)) * 1000.0:.0f} mV above the"
                    f" lowest cell at rest near the top ({state})"
                )
            elif use_soc:
                hours = d / new_current[k] if new_current[k] > 0 else math.inf
                reason = (
                    f"{'excess over band' if mode is BalancingMode.PASSIVE else 'SoC deviation'}"
                    f" {d:.3f} Ah, ~{hours:.1f} h at {new_current[k]:.2f} A ({state})"
                )
            else:
                ref_name = "lowest" if mode is BalancingMode.PASSIVE else "mean"
                reason = f"{d * scale:.0f} {unit} from the {ref_name} cell near the top ({state})"
            actions.append(
                BalancingAction(k, mode, act, reason, new_current[k], self._charge_ah[k])
            )
        self._action = new_action
        self._current_a = new_current
        self._by_voltage = [k in by_voltage and bool(new_action[k]) for k in range(n)]
        actions.extend(blocked)
        idle = ""
        if not actions:
            worst = max(dev) if dev else 0.0
            idle = f"balanced: largest imbalance {worst * scale:.3f} {unit} ({state})"
            # Never "balanced" above the start threshold: say why nothing runs instead.
            if use_soc and any(d > start_pct / 100.0 * c for d, c in zip(dev, caps, strict=True)):
                idle = (
                    f"imbalance {worst * scale:.3f} {unit} above the start threshold but within"
                    f" the uncertainty of the SoC or capacity estimates ({state})"
                )
            if doubtful:
                idle = (
                    f"no donor clearly above a receiver: largest imbalance"
                    f" {worst * scale:.3f} {unit} ({state})"
                )
        elif skipped and not chosen_up:
            idle = "power or cell budget exhausted"
        self._plan = BalancingPlan(mode, tuple(bleed), tuple(actions), idle)
        self._plan_s = now_s
        return self._plan

    def _voltage_top(
        self, volts: list[float], states: set[str], prev: list[str], now_s: float
    ) -> set[int]:
        """Cells to bleed by voltage alone, when the SoC plan bleeds none: passive, at rest.

        A cell at or above ``top_cell_v`` starts ``voltage_start_mv`` above the lowest and stops
        under ``voltage_stop_mv`` (or after ``min_dwell_s``). At rest the IR drop is gone, so
        the voltage difference on the steep top is a difference of charge, not of resistance;
        and such a cell is what holds CCL down, so bleeding it is what lets the pack charge on.
        """
        cfg = self.config
        if self.mode is not BalancingMode.PASSIVE or "rest" not in states or "top" not in states:
            return set()
        vmin = min(volts)
        if max(volts) < self.top_cell_v:
            return set()
        chosen: set[int] = set()
        for k, v in enumerate(volts):
            above_mv = (v - vmin) * 1000.0
            running = prev[k] == "bleed" and self._by_voltage[k]
            dwell = running and now_s - self._switched_s[k] < cfg.min_dwell_s
            if v < self.top_cell_v and not running:
                continue
            if above_mv > cfg.voltage_start_mv or (
                running and (above_mv > cfg.voltage_stop_mv or dwell)
            ):
                chosen.add(k)
        return chosen

    def _progress_guard(
        self, k: int, dev: float, running: str, capacity_ah: float, sigma_ah: float, now_s: float
    ) -> str:
        """Pause a cell whose SoC estimate does not follow the charge balancing moved.

        ``dev`` is the cell's signed imbalance (Ah above its target), ``sigma_ah`` the
        uncertainty of that imbalance. Passive band excess does not move with the pack current;
        the active deviation drifts by ``_drift[k]`` per Ah through the pack, which is taken out
        before comparing. A shortfall within ``sigma_ah`` proves nothing (the estimate corrects
        itself by that much while balancing runs): the check then keeps counting, until the
        moved charge makes the shortfall clear or the estimate catches up.
        """
        cfg = self.config
        if now_s < self._paused_until[k]:
            left_h = (self._paused_until[k] - now_s) / 3600.0
            return f"paused {left_h:.1f} h more: SoC estimate did not follow balancing"
        moved = self._check_ah[k]
        if not running or cfg.progress_check_pct <= 0:
            return ""
        if moved < cfg.progress_check_pct / 100.0 * capacity_ah:
            return ""
        drift = 0.0
        if self.mode is BalancingMode.ACTIVE:
            drift = (self._pack_ah - self._check_pack_ah[k]) * self._drift[k]
        effect = dev - self._check_dev[k] - drift
        if running == "receive":
            moved *= self.config.active_efficiency
            seen = effect
        else:
            seen = -effect
        shortfall = cfg.progress_min_ratio * moved - seen
        if 0.0 < shortfall <= sigma_ah:
            return ""  # inconclusive: keep counting from the same start
        self._check_ah[k] = 0.0
        self._check_dev[k] = dev
        self._check_pack_ah[k] = self._pack_ah
        if shortfall <= 0.0:
            return ""
        self._paused_until[k] = now_s + cfg.progress_pause_s
        self.pauses_started += 1
        return (
            f"SoC estimate moved {max(0.0, seen):.2f} Ah while balancing moved {moved:.2f} Ah;"
            f" paused {cfg.progress_pause_s / 3600.0:g} h"
        )

    def _cell_guard(self, k: int, voltage_v: float | None, temps: tuple[float | None, ...]) -> str:
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
