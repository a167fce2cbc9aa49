"""What the battery asks of its inverter beyond the limits: enable flags, force and full charge.

Pure and clock-free: ``RequestPlanner.step`` takes one ``ControlOutput`` and returns
``BatteryRequests`` (the Controller puts them in ``ControlOutput.requests``); the only state is
the two requests' hysteresis. The battery-CAN protocols (Pylontech 0x35C / HV 0x4250 and 0x4280,
SMA/Victron 0x35C) carry the result, MQTT ``state.requests`` shows it; the rules are the
gateway's, written down in docs/INVERTER_CAN.md:

* charge (discharge) enable: the CCL (DCL) in force is above zero. Stale, missing or incomplete
  data makes both limits 0 A in the same step (core.limits), so both flags drop in that step.
* force charge: rises when the pack SoC or the lowest cell is below its threshold while discharge
  is blocked (DCL = 0) and charging is allowed; clears once both are back above their (higher)
  clear thresholds, or at once when charging is no longer allowed.
* full charge: rises when the cells' SoC spread is at least ``full_charge_spread_pct`` while no
  cell is balancing (the balancer is waiting for the top of charge, where passive balancing and
  the voltage check work); clears when the spread is below ``full_charge_clear_spread_pct`` or
  charging is no longer allowed. It is also raised while the charge phases
  (``core.phases``) request a full charge and it is due (not while it waits for the end of the
  day's PV charge).
* a grid full charge (``ChargeState.grid_charge_requested``: requested, allowed to draw from the
  grid, below the re-bulk threshold) raises the force-charge request while charging is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.model import (
    BalancingPlan,
    BatteryRequests,
    CellAction,
    ChargeState,
    ControlOutput,
    Limits,
    PackSnapshot,
    SocReport,
)

__all__ = ["BatteryRequests", "RequestPlanner", "RequestThresholds"]


@dataclass(frozen=True, slots=True)
class RequestThresholds:
    """Thresholds of the force- and full-charge requests (percent and volts).

    Raises:
        ValueError: a clear threshold is on the wrong side of its set threshold.
    """

    force_charge_soc_pct: float = 5.0
    force_charge_clear_soc_pct: float = 10.0
    force_charge_cell_v: float = 2.9
    force_charge_clear_cell_v: float = 3.1
    full_charge_spread_pct: float = 5.0
    full_charge_clear_spread_pct: float = 2.0

    def __post_init__(self) -> None:
        pairs = (
            ("force_charge_soc_pct", "force_charge_clear_soc_pct"),
            ("force_charge_cell_v", "force_charge_clear_cell_v"),
            ("full_charge_clear_spread_pct", "full_charge_spread_pct"),
        )
        for low, high in pairs:
            if getattr(self, low) > getattr(self, high):
                raise ValueError(
                    f"{low} (={getattr(self, low)}) must not exceed {high} (={getattr(self, high)})"
                )


class RequestPlanner:
    """Enable flags and the force-/full-charge requests with hysteresis, one step at a time."""

    def __init__(self, thresholds: RequestThresholds | None = None) -> None:
        self.thresholds = thresholds or RequestThresholds()
        self._force = False
        self._full = False

    def step(self, out: ControlOutput) -> BatteryRequests:
        """The requests for the control step ``out``."""
        return self.plan(out.limits, out.pack, out.soc, out.balancing, out.charge)

    def plan(
        self,
        limits: Limits,
        pack: PackSnapshot,
        soc: SocReport | None,
        balancing: BalancingPlan,
        charge_state: ChargeState | None = None,
    ) -> BatteryRequests:
        """The requests for one step's limits, pack state, SoC, balancing plan and phase."""
        th = self.thresholds
        charge = limits.ccl_a.value > 0.0
        discharge = limits.dcl_a.value > 0.0
        soc_pct = soc.soc_pct if soc is not None else None
        vmin = pack.min_cell_v
        if not charge:
            self._force = False
        elif self._force:
            soc_ok = soc_pct is None or soc_pct >= th.force_charge_clear_soc_pct
            v_ok = vmin is None or vmin >= th.force_charge_clear_cell_v
            self._force = not (soc_ok and v_ok)
        else:
            low = (soc_pct is not None and soc_pct < th.force_charge_soc_pct) or (
                vmin is not None and vmin < th.force_charge_cell_v
            )
            self._force = low and not discharge
        spread = _soc_spread_pct(soc)
        if not charge or spread is None:
            self._full = False
        elif self._full:
            self._full = spread >= th.full_charge_clear_spread_pct
        else:
            balancing_now = any(balancing.bleed) or any(
                a.action is not CellAction.BLOCKED for a in balancing.actions
            )
            self._full = spread >= th.full_charge_spread_pct and not balancing_now
        phase_full = phase_grid = False
        if charge_state is not None and charge:
            # A full charge that waits for the end of the day's PV is not asked for yet.
            waiting = (charge_state.full_charge_due_in_s or 0.0) > 0.0
            phase_full = charge_state.full_charge_requested and not waiting
            phase_grid = charge_state.grid_charge_requested
        return BatteryRequests(
            charge, discharge, self._force or phase_grid, self._full or phase_full
        )


def _soc_spread_pct(soc: SocReport | None) -> float | None:
    if soc is None or not soc.cells:
        return None
    socs = [c.soc_pct for c in soc.cells if math.isfinite(c.soc_pct)]
    return max(socs) - min(socs) if socs else None
