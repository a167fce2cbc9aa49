"""Adaptive charge phases: bulk, absorption, float, and a full charge when the estimate asks. Pure.

The peers hold the charge voltage at the top all day and run a full charge on a fixed timer. Here
the charge voltage limit (CVL) follows a phase decided from the data:

- ``bulk``: charging, current-limited by CCL, CVL at the absorption voltage. Without a full
  charge due, bulk ends at ``float_soc_pct`` by the SoC estimate (or, without an estimate, at the
  float voltage with the current tapered): on the flat LFP plateau a float voltage in bulk would
  throttle the charge from about 70 % on (R x I lifts the cells above it) and store less PV.
- ``absorption``: a requested full charge has reached the top. CVL stays at the absorption
  voltage while the top cells settle and balancing works. It ends when no cell is balancing any
  more (done, or nothing it can do) *and* the charge current has tapered below
  ``tail_current_c`` for ``tail_hold_s``; ``absorption_max_s`` bounds it, and so do the loads
  taking the pack down. Its end is the "full anchor" the next request is measured from.
- ``float``: CVL = cells x float voltage, below the top. Back to ``bulk`` when the pack SoC falls
  below ``rebulk_soc_pct`` or ``float_recharge_pct`` below the float SoC, or when a full charge is
  due. The float rises towards the 95 % line while the pack's nights use the charge it holds back
  (``gateway.core.charge_float``).

A requested full charge is *due* at once, or, when ``full_charge_lead_s`` is set and the pack
charges from PV, some time before the time of day at which the pack's daily charge usually ends
(``gateway.core.charge_window`` learns it from the SoC), and then until the day's charge is seen to
end: the pack reaches the top just before the loads take it down, instead of waiting at the top for
the rest of the day; until then it bulks to the float level. How long before the end: the
afternoon's *lift slope* (``gateway.core.charge_lift``; ``full_charge_lead_s`` until one is
measured). An absorption the loads cut short counts as a full charge if the current had tapered
at the top for ``tail_hold_s`` (the anchor was made); if a cell bled and one is still above the
balancing start threshold by the estimate when it ended (``charge_request.imbalance_left``),
balancing is unfinished: a full charge is requested for it (ahead of the sigma trigger). It is due
at once, so that its absorption has the day's hours, when balancing may run only at rest or near
the top; when it may also run while the pack charges or discharges (``balancing_off_top``, the
default passive states), the full charge waits for the end of the PV day as others do.

A full charge is requested (and, but for the sigma's, stays until an absorption ends) when it pays:

- the worst per-cell SoC sigma has stayed at or above ``full_charge_sigma_pct`` for
  ``full_charge_sigma_hold_s`` (a top anchors the estimate: the OCV curve is steep there for
  every chemistry); it lapses when the sigma is below it again before the top (anchored at a
  knee: ``charge_request.sigma_held``);
- balancing needs a top to separate the cells: the worst relative sigma of the cells (their SoC
  against each other) is above the balancing start threshold, so the planner cannot tell which
  cell to bleed (the flat LFP middle), and has not been at or below it for a day (an NMC pack
  at rest at night is told apart there; its relative sigma rises under load the next day, which
  is no reason for a top), or balancing was left unfinished at the last top;
- when set (off by default), the pack SoC has fallen below ``full_charge_below_soc_pct``, and
  then once a day for ``full_charge_below_soc_days``: the stored energy is being used, so holding
  back the top may cost delivered energy. Off by default: a household that empties the pack
  most nights would be held at the top most afternoons (docs/PERFORMANCE.md "Charge phases");
- ``full_charge_max_interval_days`` have passed since the last full anchor, or none is on record.

A full charge may draw from the grid with ``full_charge_from_grid``: ``grid_charge_requested``
rises below the re-bulk threshold (battery CAN force-charge, SunSpec ``ChaGriSet``).

Every transition carries its reason; CVL's phase term is named after the phase (it wins unless
the dynamic CVL or the ramp is lower: docs/MQTT.md). Here: the state machine; ``charge_config``
the section, ``charge_request`` the triggers, ``charge_lift`` when a request is due and the lift
slope, ``charge_float`` the float in force, ``phases_state`` a restored state's checks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from gateway.core import phases_state as saved
from gateway.core.charge_config import ChargeConfig, ChargeStrategy
from gateway.core.charge_float import FloatLevel
from gateway.core.charge_lift import FullChargeTiming
from gateway.core.charge_request import full_charge_request, imbalance_left, sigma_held
from gateway.core.charge_window import ChargeWindow
from gateway.core.model import BalancingPlan, ChargePhase, ChargeState, PackSnapshot, SocReport

__all__ = ["ChargeConfig", "ChargePhases", "ChargeStrategy"]


class ChargePhases:
    """The charge-phase state machine of one pack; one ``step`` per control step.

    Args:
        config: the ``charge`` section.
        cells: series cells.
        capacity_ah: nominal capacity (the tail current is a C-rate of it).
        absorption_cell_v: absorption voltage per cell (``limits.cvl_cell_v`` in force).
        float_cell_v: float voltage per cell, resolved by the caller (``config.float_cell_v``
            or the chemistry's OCV at ``config.float_soc_pct``).
        raised_float: the raised float's SoC (%) and V per cell (``charge_float``); ``None``: none.
        balancing_start_pct: the balancing planner's start threshold (percent of capacity).
        balancing_off_top: balancing may run while the pack charges or discharges, not only at
            rest or near the top (the mode's ``balancing.*_states``): a full charge for
            unfinished balancing then waits for the end of the PV day instead of being due at once.

    Raises:
        ValueError: the float voltage (or the raised one) is not below the absorption voltage.
    """

    def __init__(
        self,
        config: ChargeConfig,
        *,
        cells: int,
        capacity_ah: float,
        absorption_cell_v: float,
        float_cell_v: float,
        balancing_start_pct: float,
        balancing_off_top: bool = False,
        raised_float: tuple[float, float] | None = None,
    ) -> None:
        v = max(float_cell_v, raised_float[1] if raised_float else float_cell_v)
        if not v < absorption_cell_v:
            raise ValueError(
                f"charge.float_cell_v (={v:.4g} V, raised or as set) must be below"
                f" limits.cvl_cell_v (={absorption_cell_v:.4g} V)"
            )
        self.config = config
        self.cells = cells
        self.absorption_v = cells * absorption_cell_v
        self.absorption_cell_v = absorption_cell_v
        self.float_cell_v = float_cell_v
        self.tail_a = config.tail_current_c * capacity_ah
        self.capacity_ah = capacity_ah
        self.balancing_start_pct = balancing_start_pct
        self.balancing_off_top = balancing_off_top
        self._phase = ChargePhase.BULK
        self._reason = "start"
        self._since_s: float | None = None
        self._last_full_s: float | None = None
        self._request = ""
        self._quiet_since_s: float | None = None  # tapered and no cell balancing since then
        self._taper_since_s: float | None = None  # at the top with the current tapered since
        self._leaving_since_s: float | None = None  # discharging from the top since then
        self._anchored = False  # this absorption has tapered at the top for tail_hold_s
        self._bled = False  # a cell has bled during this absorption
        self._soc_below_rebulk = False
        self._low_s: float | None = None  # last time the SoC was below full_charge_below_soc_pct
        self._balancing_unfinished = False  # the last absorption ended before balancing did
        self._at_once = False  # the pending request is due at once (unfinished balancing)
        self._told_apart_s: float | None = None  # cells last known apart to the start threshold
        self._bled_s: float | None = None  # a cell last bled then (or the first step)
        self._sigma_low_s: float | None = None  # worst sigma last below full_charge_sigma_pct
        self._for_sigma = False  # the pending request is for the SoC uncertainty (it may lapse)
        self.window = ChargeWindow()
        self.float_level = FloatLevel(config, float_cell_v, raised_float)
        self._timing = FullChargeTiming(config, capacity_ah, self.window)

    # --- persistence --------------------------------------------------------------------------

    def export_state(self, now_s: float) -> dict[str, float | str | bool | None]:
        """What survives a restart: the last full anchor's age, the request, the day's end."""
        return {
            "last_full_age_s": saved.age_s(self._last_full_s, now_s),
            "full_charge_request": self._request,
            "charge_end_in_s": self.window.export_state(now_s),
            "energy_in_use_age_s": saved.age_s(self._low_s, now_s),
            "balancing_unfinished": self._balancing_unfinished,
            "full_charge_at_once": self._at_once,
            "lift_slope_a_per_h": self.window.lift_slope_a_per_h(),
            "cells_told_apart_age_s": saved.age_s(self._told_apart_s, now_s),
            "sigma_low_age_s": saved.age_s(self._sigma_low_s, now_s),
            "full_charge_for_sigma": self._for_sigma,
            "float_raise_age_s": saved.age_s(self.float_level.deep_s, now_s),
        }

    def restore(self, state: Mapping[str, object], now_s: float, off_s: float = 0.0) -> list[str]:
        """Load what ``export_state`` wrote, aged by ``off_s`` (s off since); notes to log."""
        notes: list[str] = []
        since = saved.restored_since(state, notes, now_s, off_s)
        self._last_full_s = since("last_full_age_s", self._last_full_s)
        self._told_apart_s = since("cells_told_apart_age_s", self._told_apart_s)
        self._sigma_low_s = saved.restored_sigma_low_s(state, now_s, notes)
        self._low_s = since("energy_in_use_age_s", self._low_s)
        self.float_level.deep_s = since("float_raise_age_s", self.float_level.deep_s)
        request = state.get("full_charge_request")
        if isinstance(request, str):
            self._request = request[:200]
        if (to_end_s := saved.finite_number(state.get("charge_end_in_s"))) is not None:
            self.window.restore(to_end_s, now_s, off_s)
        slope = saved.restored_lift_slope(state, self.config, self.capacity_ah, notes)
        if slope is not None:
            self.window.restore_lift_slope(slope)
        self._balancing_unfinished = state.get("balancing_unfinished") is True
        self._for_sigma = bool(self._request) and state.get("full_charge_for_sigma") is True
        at_once = state.get("full_charge_at_once") is True and not self.balancing_off_top
        self._at_once = bool(self._request) and at_once  # (a config since may run it off the top)
        return notes

    # --- the step -----------------------------------------------------------------------------

    def step(
        self,
        snapshot: PackSnapshot,
        soc: SocReport | None,
        balancing: BalancingPlan | None,
        now_s: float,
    ) -> ChargeState:
        """Advance the phase to ``now_s`` and say what CVL should be.

        Args:
            snapshot: the pack as of ``now_s``. Without a complete data set (current, every cell)
                the phase holds: the limits are 0 A then anyway.
            soc: the estimate (pack SoC, per-cell sigma); ``None``: no SoC-based transition, no
                sigma trigger, and bulk without a full charge due charges to the float voltage.
            balancing: the balancing plan in force (the last step's); ``None``: not balancing.
            now_s: monotonic seconds (injected).
        """
        if self._since_s is None:
            self._since_s = now_s
        if self.config.strategy is ChargeStrategy.TOP:
            return self._state(ChargePhase.ABSORPTION, self.absorption_v, None, now_s)
        if soc is not None:
            self.window.step(soc.soc_pct, now_s)
        self.float_level.step(None if soc is None else soc.soc_pct, now_s)
        if (lapsed := self.float_level.lapsed(now_s)) and self._phase is ChargePhase.FLOAT:
            self._reason = lapsed  # (the CVL falls: a float voltage the user can trace)
        if self._bled_s is None or (balancing is not None and any(balancing.bleed)):
            self._bled_s = now_s  # (the start counts: a restart is no hour without a bleed)
        self._update_request(soc, now_s)
        wait_s = self._timing.wait_s(self._request, self._at_once, soc, now_s)
        due = wait_s == 0.0
        current, cell_v = snapshot.current_a, snapshot.cell_voltage_v
        if current is not None and cell_v and None not in cell_v and math.isfinite(current):
            before = self._phase
            self._advance(current, cell_v, soc, balancing, due, now_s)  # type: ignore[arg-type]
            self._timing.measure(before, self._phase, self._request, current, due, soc, now_s)
        phase = self._phase
        if phase is ChargePhase.FLOAT or (phase is ChargePhase.BULK and not due and soc is None):
            cvl_v = self.cells * self.float_level.level(now_s)[1]
        else:
            cvl_v = self.absorption_v
        return self._state(phase, cvl_v, wait_s, now_s)

    def _state(
        self, phase: ChargePhase, cvl_v: float, wait_s: float | None, now_s: float
    ) -> ChargeState:
        assert self._since_s is not None
        return ChargeState(
            phase=phase,
            reason=self._reason,
            since_s=self._since_s,
            cvl_v=cvl_v,
            full_charge_requested=bool(self._request),
            full_charge_reason=self._request,
            grid_charge_requested=bool(self._request)
            and self.config.full_charge_from_grid
            and self._soc_below_rebulk,
            last_full_age_s=None if self._last_full_s is None else now_s - self._last_full_s,
            full_charge_due_in_s=wait_s,
        )

    def _update_request(self, soc: SocReport | None, now_s: float) -> None:
        """Raise the full-charge request when it pays; a sigma one may lapse (``sigma_held``)."""
        cfg = self.config
        low = soc is not None and soc.soc_pct < cfg.full_charge_below_soc_pct
        if soc is not None:
            self._soc_below_rebulk = soc.soc_pct < cfg.rebulk_soc_pct
            if low:
                self._low_s = now_s
            rel = [c.soc_rel_sigma_pct for c in soc.cells]
            if rel and all(math.isfinite(x) and x <= self.balancing_start_pct for x in rel):
                self._told_apart_s = now_s
            if soc.cells and max(c.soc_sigma_pct for c in soc.cells) < cfg.full_charge_sigma_pct:
                self._sigma_low_s = now_s
        lapsed = self._for_sigma and not sigma_held(cfg, self._sigma_low_s, now_s)
        if lapsed and self._phase is not ChargePhase.ABSORPTION:
            self._request, self._for_sigma = "", False  # anchored before the top: sigma_held
        if self._request:
            return
        self._request, at_once, self._for_sigma = full_charge_request(
            cfg,
            soc,
            now_s,
            low=low,
            last_full_s=self._last_full_s,
            low_s=self._low_s,
            balancing_unfinished=self._balancing_unfinished,
            balancing_start_pct=self.balancing_start_pct,
            told_apart_s=self._told_apart_s,
            sigma_low_s=self._sigma_low_s,
            bled_s=self._bled_s,
        )
        if at_once and not self.balancing_off_top:
            self._at_once = True

    def _go(self, phase: ChargePhase, reason: str, now_s: float) -> None:
        self._phase = phase
        self._reason = reason
        self._since_s = now_s
        self.float_level.begin()  # the recharge rule counts the SoC's fall within a float
        self._quiet_since_s = None
        self._taper_since_s = None
        self._leaving_since_s = None
        self._anchored = False
        self._bled = False

    @staticmethod
    def _held(since_s: float | None, on: bool, now_s: float) -> float | None:
        """The start of a condition that holds now (``None`` when it does not)."""
        if not on:
            return None
        return now_s if since_s is None else since_s

    def _advance(
        self,
        current_a: float,
        cell_v: tuple[float, ...],
        soc: SocReport | None,
        balancing: BalancingPlan | None,
        due: bool,
        now_s: float,
    ) -> None:
        cfg = self.config
        margin = cfg.top_margin_cell_v
        pack_v = math.fsum(cell_v)
        vmax = max(cell_v)
        top = (
            vmax >= self.absorption_cell_v - margin
            or pack_v >= self.absorption_v - self.cells * margin
        )
        # Tapered: charging at most at the tail current (or resting, or discharging).
        balancing_now = balancing is not None and any(balancing.bleed)
        tapered = current_a <= self.tail_a
        self._quiet_since_s = self._held(self._quiet_since_s, tapered and not balancing_now, now_s)
        quiet_s = 0.0 if self._quiet_since_s is None else now_s - self._quiet_since_s
        soc_low = soc is not None and soc.soc_pct < cfg.rebulk_soc_pct
        float_soc, float_cell_v = self.float_level.level(now_s)  # the float in force (% / V)
        phase = self._phase
        if phase is ChargePhase.BULK:
            if due:
                if top and current_a > 0.0:
                    self._go(
                        ChargePhase.ABSORPTION,
                        f"top reached (highest cell {vmax:.3f} V) for a full charge:"
                        f" {self._request}",
                        now_s,
                    )
            elif soc is not None:
                if soc.soc_pct >= float_soc and not soc_low:
                    reason = self.float_level.reached(soc.soc_pct, now_s)
                    self._go(ChargePhase.FLOAT, reason, now_s)
                elif top and tapered:
                    self._go(ChargePhase.FLOAT, f"top reached (highest cell {vmax:.3f} V)", now_s)
            elif pack_v >= self.cells * (float_cell_v - margin) and tapered:
                self._go(ChargePhase.FLOAT, f"float voltage reached ({pack_v:.2f} V)", now_s)
        elif phase is ChargePhase.ABSORPTION:
            self._absorb(current_a, quiet_s, soc, balancing_now, now_s)
        elif due:
            self._go(ChargePhase.BULK, f"full charge due: {self._request}", now_s)
        elif self.float_level.fell_below(cfg.rebulk_soc_pct):
            assert soc is not None
            reason = f"SoC {soc.soc_pct:.1f} % below re-bulk {cfg.rebulk_soc_pct:g} %"
            self._go(ChargePhase.BULK, reason, now_s)
        elif recharge := self.float_level.recharge(None if soc is None else soc.soc_pct, now_s):
            self._go(ChargePhase.BULK, recharge, now_s)

    def _absorb(
        self, current_a: float, quiet_s: float, soc: SocReport | None, bleeding: bool, now_s: float
    ) -> None:
        """Absorption: ends absorbed, at its time limit, or when the loads take the pack down;
        cut short with a cell bled and one still above the start threshold (``imbalance_left``),
        balancing is unfinished (the module's docstring)."""
        cfg = self.config
        soc_low = self.float_level.fell_below(cfg.rebulk_soc_pct)  # not when it began below
        self._bled = self._bled or bleeding
        tail = self.tail_a
        self._taper_since_s = self._held(self._taper_since_s, -tail <= current_a <= tail, now_s)
        if self._taper_since_s is not None and now_s - self._taper_since_s >= cfg.tail_hold_s:
            self._anchored = True
        self._leaving_since_s = self._held(self._leaving_since_s, current_a < -tail, now_s)
        leaving = (
            self._leaving_since_s is not None and now_s - self._leaving_since_s >= cfg.tail_hold_s
        )
        elapsed = 0.0 if self._since_s is None else now_s - self._since_s
        absorbed = quiet_s >= cfg.tail_hold_s and current_a >= -tail
        cut_short = elapsed >= cfg.absorption_max_s or leaving or soc_low
        if absorbed:
            self._balancing_unfinished = False
        elif cut_short:
            self._balancing_unfinished = self._bled and imbalance_left(
                soc, self.balancing_start_pct
            )
        if absorbed:
            self._full_done(f"absorbed: no cell balancing, current {current_a:.2f} A", now_s)
        elif elapsed >= cfg.absorption_max_s:
            self._full_done(f"absorption time limit ({cfg.absorption_max_s:g} s)", now_s)
        elif (leaving or soc_low) and self._anchored:
            self._full_done(
                f"left the top after the current tapered (discharging {current_a:.2f} A)", now_s
            )
        elif leaving or soc_low:
            self._go(
                ChargePhase.BULK,
                f"left the top before the current tapered (discharging {current_a:.2f} A)",
                now_s,
            )

    def _full_done(self, reason: str, now_s: float) -> None:
        self._last_full_s = now_s
        self._request = ""
        self._at_once = False
        self._go(ChargePhase.FLOAT, reason, now_s)
