"""Balancing settings (``[balancing]``): mode, currents, thresholds, guards. Pure.

The planner that reads them is :mod:`gateway.core.balancing`; the theory behind the thresholds
(the passive band, the weighing of the estimate's uncertainty) is in its module docstring.
"""

from __future__ import annotations

from pydantic import Field

from gateway.core.config import Section
from gateway.core.model import BalancingMode

__all__ = ["BALANCING_DEFAULTS", "STATES", "BalancingConfig"]


STATES = ("rest", "charge", "discharge", "top")
"""Operating states a mode may be allowed in; ``top`` = near the top of charge, not discharging.
A step is in one of ``rest``, ``charge`` or ``discharge`` (by the pack current) and also in
``top`` when near the top; a mode may run when *any* of the step's states is listed (so
``["rest", "charge"]`` allows a charge near the top too)."""

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
    bleed_current_a: float = Field(default=0.1, gt=0, le=10)
    """Bleed current of one cell's resistor (33 ohm at 3.3 V: 0.1 A)."""
    active_current_a: float = Field(default=2.0, gt=0, le=100)
    """Active balancer: current drawn from a donating cell."""
    active_efficiency: float = Field(default=0.85, gt=0, le=1)
    """Active balancer: fraction of the donated charge that reaches the receiving cell."""
    active_channels: int = Field(default=8, ge=1, le=512)
    """Active balancer: how many donor/receiver pairs may run at once."""
    start_pct: float = Field(default=0.5, ge=0, le=100)
    """A cell starts balancing when its excess (passive) or deviation (active) exceeds this,
    in percent of its capacity ..."""
    stop_pct: float = Field(default=0.05, ge=0, le=100)
    """... and stops when it is back under this (hysteresis)."""
    active_start_pct: float = Field(default=0.2, ge=0, le=100)
    """Active mode: start threshold (moving charge costs only the converter loss, so the
    active band is tighter than the passive one) ..."""
    active_stop_pct: float = Field(default=0.02, ge=0, le=100)
    """... and stop threshold, in percent of capacity."""
    sigma_factor: float = Field(default=1.0, ge=0, le=10)
    """... and only when the excess also exceeds this many standard deviations of the SoC
    estimate (do not act on noise): the cell's SoC against the other cells
    (``soc_rel_sigma_pct``; the string's common counting errors do not move charge between
    cells), or the absolute ``soc_sigma_pct`` where the estimate has no relative one."""
    capacity_sigma_factor: float = Field(default=0.35, ge=0, le=10)
    """Passive: a cell starts bleeding only when its excess over the band remains with the
    capacities this many standard deviations (``capacity_sigma_ah``) the wrong way. Charge a
    capacity error of that size could explain is not bled: bleeding is lost for good, waiting
    for the capacities to be learned costs only time. 0.35 because the estimator's capacity
    sigma is cautious (several times its actual error on the simulator, docs/PERFORMANCE.md);
    0: take the capacity estimates as exact."""
    voltage_start_mv: float = Field(default=15.0, ge=0, le=1000)
    """Voltage fallback (no SoC estimate): start when a cell is this far above the lowest
    (passive) or the mean (active), near the top of charge only ..."""
    voltage_stop_mv: float = Field(default=5.0, ge=0, le=1000)
    """... stop when back under this."""
    top_cell_v: float | None = Field(default=None, gt=0.0, le=10.0)
    """Near the top of charge when the highest cell reaches this (LFP 3.40, NMC 4.05 V) ..."""
    top_soc_pct: float = Field(default=90.0, ge=0, le=100)
    """... or the pack SoC is at or above this."""
    rest_current_c: float = Field(default=0.02, ge=0, le=1)
    """Below this C-rate (absolute) the pack is at rest."""
    passive_states: tuple[str, ...] = STATES
    """Operating states in which passive balancing may run (default: every state). The excess
    over the passive band does not change with the pack current, so a cell can bleed while the
    pack charges or discharges; a pack that rests little (a light load floating below the top)
    otherwise bleeds only during absorptions, too few hours to remove a large spread."""
    active_states: tuple[str, ...] = ("rest", "charge", "discharge")
    """Operating states in which the active converter may run (any of the step's states
    listed: ``STATES``)."""
    min_cell_v: float | None = Field(default=None, gt=0.0, le=10.0)
    """Never bleed or draw from a cell at or below this voltage (LFP 2.80, NMC 3.10 V)."""
    max_cell_temp_c: float = Field(default=50.0, ge=-40.0, le=150.0)
    """Never balance a cell whose temperature sensor reads at or above this."""
    max_board_temp_c: float = Field(default=60.0, ge=-40.0, le=150.0)
    """Stop all balancing when a board sensor (or, without any, the hottest sensor) reads this."""
    board_sensors: tuple[int, ...] = ()
    """Deprecated: set ``pack.board_sensors`` (the map protection, limits and SoC use too); a
    sensor listed only here is refused at load."""
    guard_hysteresis: float = Field(default=0.02, ge=0, le=1)
    """Guards release this far back (fraction of the guard value) inside their limit."""
    max_active_cells: int | None = Field(default=None, ge=1, le=512, examples=[16])
    """At most this many cells balance at once (thermal budget of the board; ``None``: any)."""
    power_budget_w: float | None = Field(default=None, ge=0, le=100_000, examples=[50.0])
    """Power balancing may take from the pack (bleed heat, converter loss); ``None``: no limit.
    Power the charger makes available (``charge_power_available_w``) adds to it."""
    interval_s: float = Field(default=1.0, ge=0, le=3600)
    """The plan is recomputed at most this often (the data checks run every step); balancing
    acts over hours, and planning 512 cells at 100 Hz would cost more than it gains."""
    max_data_age_s: float | None = Field(default=None, gt=0, le=60)
    """Deprecated: set ``timeouts.cell_voltage_timeout_s`` and ``timeouts.temperature_timeout_s``
    (balancing stops at the shorter of the two for a temperature). Until then, one age for both,
    in force while neither of those keys is set."""
    min_dwell_s: float = Field(default=30.0, ge=0, le=86_400)
    """A cell keeps its state at least this long after a switch (unless a guard trips)."""
    voltage_check_mv: float = Field(default=5.0, ge=0, le=1000)
    """Near the top of charge (highest cell at ``top_cell_v`` or above), a cell the SoC estimate
    wants to bleed (or draw from) is left alone when its voltage is within this of the lowest
    cell (0 disables the check)."""
    progress_check_pct: float = Field(default=1.0, ge=0, le=100)
    """Self-check: after a cell has moved this much charge (percent of its capacity) the SoC
    estimate must show at least ``progress_min_ratio`` of it, else the cell pauses (an estimate
    that does not see balancing currents would otherwise drain it). 0 disables the check."""
    progress_min_ratio: float = Field(default=0.5, ge=0, le=1)
    """Fraction of the moved charge the estimate must reflect."""
    progress_pause_s: float = Field(default=4 * 3600.0, ge=0, le=604_800)
    """How long a cell that failed the self-check pauses."""

    def states_of(self, mode: BalancingMode) -> tuple[str, ...]:
        """The operating states ``mode`` may run in (``passive_states`` or ``active_states``)."""
        return self.passive_states if mode is BalancingMode.PASSIVE else self.active_states

    def runs_off_top(self) -> bool:
        """Whether the configured mode may run while the pack charges or discharges, not only
        at rest or near the top (the charge phases then let a top for balancing wait)."""
        return bool({"charge", "discharge"}.intersection(self.states_of(self.mode)))

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
