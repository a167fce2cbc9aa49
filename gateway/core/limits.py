"""Charge/discharge current limits and the voltage window, each from named terms. Pure.

CCL and DCL are the minimum of their terms: configured maximum, cell-voltage taper, temperature
table, SoC taper, imbalance term (CCL), protection, staleness, inverter capability and user cap.
CVL is the minimum of the configured maximum and a dynamic term that pulls it down when one cell
runs high; DVL, a lower bound, is the *maximum* (the most restrictive) of the configured minimum
and a dynamic term that lifts it when one cell runs low. The winning term and every term's value
are returned, so users can see why they are limited (``docs/LIMITS.md``).

Cuts apply in the same step. Increases wait ``ramp_hold_s`` after the last cut, then ramp at
``ramp_a_per_s``. The hold restarts only for a drop beyond ``ramp_deadband_pct`` of the maximum
(or a slide of twice that since the hold last started) or while a fault term holds the limit at
0 A, so measurement noise near a taper knee cannot ratchet the limit down. Every 0 A cause (stale
data, a protection cut, a lost controller heartbeat, a SetOp disconnect) is a fault term: the
current comes back through the hold and the ramp, never in one step.

Fail-safe: while any required input is missing or older than its timeout, CCL = DCL = 0 A in
that same step, with the input named (``stale:cell_voltage[6]``; cells and sensors are
numbered from 1 in reasons).

Settings and tables: :mod:`gateway.core.limits_config`; the ramp and the picking of a winner:
:mod:`gateway.core.limits_ramp`. Each term carries its kind (``LimitTerm.kind``), so the
gateway's mode follows from the winner without parsing its name.
"""

from __future__ import annotations

import math

from gateway.core.cells import cell_sum_v, extremes
from gateway.core.freshness import TimeoutsConfig, stale_inputs
from gateway.core.limits_config import LIMITS_DEFAULTS, LimitsConfig, LimitTables
from gateway.core.limits_ramp import Ramp, pick_max, pick_min
from gateway.core.model import (
    AlarmReport,
    Limit,
    Limits,
    LimitTerm,
    PackSnapshot,
    Severity,
    SocReport,
    StaleKind,
    TermKind,
)
from gateway.core.pack import PackConfig, cell_temps
from gateway.core.protection import ALARMS

__all__ = ["LIMITS_DEFAULTS", "LimitTables", "LimitsCalculator", "LimitsConfig"]

# The timeouts section's defaults, for callers that configure none (frozen, so sharing is safe).
_DEFAULT_TIMEOUTS = TimeoutsConfig()

# The fail-safe term of each kind of stale input.
_STALE_TERM = {
    StaleKind.MISSING: TermKind.MISSING,
    StaleKind.STALE: TermKind.STALE,
    StaleKind.IMPLAUSIBLE: TermKind.IMPLAUSIBLE,
}


class LimitsCalculator:
    """Computes CCL, DCL, CVL and DVL once per step; keeps the ramp state between steps."""

    def __init__(
        self, config: LimitsConfig, pack: PackConfig, timeouts: TimeoutsConfig = _DEFAULT_TIMEOUTS
    ) -> None:
        """Resolve the tables for ``pack``.

        Args:
            config: tables, maxima and ramps (``limits`` section).
            pack: the pack they apply to.
            timeouts: input ages past which CCL = DCL = 0 A (``timeouts`` section; protection's
                ``stale_data`` must get the same one).

        Raises:
            ValueError: a table or voltage is inconsistent (the message names the keys).
        """
        self.config = config
        self.pack = pack
        self.tables = config.tables(pack)
        self.timeouts = timeouts
        self._timeouts = self.timeouts.input_timeouts(pack)
        n = pack.cells
        self.cvl_max_v = n * self.tables.cvl_cell_v
        self.dvl_min_v = n * self.tables.dvl_cell_v
        # Currents start at 0 A: nothing is allowed before the first complete data set, and the
        # first increase then waits for the hold like any other.
        band = config.ramp_deadband_pct / 100.0
        self._ccl = Ramp(config.ramp_a_per_s, config.ramp_hold_s, 0.0, band * config.max_charge_a)
        self._dcl = Ramp(
            config.ramp_a_per_s, config.ramp_hold_s, 0.0, band * config.max_discharge_a
        )
        v_rate = config.voltage_ramp_v_per_cell_s * n
        self._cvl = Ramp(v_rate, config.voltage_hold_s, None)
        # DVL relaxes downwards; the ramp works on its negative.
        self._dvl = Ramp(v_rate, config.voltage_hold_s, None)
        self._started = False
        self._last: Limits | None = None
        # Derating reads the cell sensors only (pack.board_sensors are the balancing board's).
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None

    @property
    def last(self) -> Limits | None:
        """The limits of the last step."""
        return self._last

    def step(
        self,
        snapshot: PackSnapshot,
        soc: SocReport | None,
        alarms: AlarmReport,
        now_s: float,
        *,
        inverter_max_charge_a: float | None = None,
        inverter_max_discharge_a: float | None = None,
        user_cap_charge_a: float | None = None,
        user_cap_discharge_a: float | None = None,
        cvl_phase: LimitTerm | None = None,
        link_hold: str | None = None,
        hold: str | None = None,
    ) -> Limits:
        """The limits for this step.

        Args:
            snapshot: the pack as of ``now_s``.
            soc: the SoC estimate; ``None``: no SoC term.
            alarms: this step's protection report; ALARM-level codes that cut a limit (see
                ``gateway.core.protection.ALARMS``) make its ``protection:<code>`` term 0 A.
            now_s: monotonic seconds (injected).
            inverter_max_charge_a: what the inverter can take (``None``: unknown, no term).
            inverter_max_discharge_a: what the inverter can draw.
            user_cap_charge_a: a user cap (MQTT/Modbus command); it can only lower the limit.
            user_cap_discharge_a: a user cap on discharge.
            cvl_phase: the charge phase's CVL term (``gateway.core.phases``: ``bulk``,
                ``absorption`` or ``float``); it wins a tie with ``max``.
            link_hold: why the inverter link publishes 0 A (``controller_heartbeat_lost``,
                ``setop_disconnect``); a fault term ``link:<reason>`` on both currents, so they
                come back through the hold and the ramp. ``None``: the link holds nothing.
            hold: an external hold (``"update"`` while BMS firmware is flashed): a term of that
                name holds CCL and DCL at 0 A, like a fault, until it is lifted.
        """
        if not self._started:
            self._started = True
            self._ccl.last_cut_s = now_s
            self._dcl.last_cut_s = now_s
        ccl_terms, dcl_terms = self._fault_terms(snapshot, alarms, link_hold, hold)
        ccl_faulted, dcl_faulted = bool(ccl_terms), bool(dcl_terms)
        cell_v = snapshot.cell_voltage_v
        ext = extremes(cell_v)
        vmin, vmax = (ext[0], ext[2]) if ext is not None else (None, None)
        self._derating_terms(snapshot, soc, vmin, vmax, ccl_terms, dcl_terms)
        inverter, user = TermKind.INVERTER, TermKind.USER_CAP
        for terms, name, cap, kind in (
            (ccl_terms, "inverter", inverter_max_charge_a, inverter),
            (dcl_terms, "inverter", inverter_max_discharge_a, inverter),
            (ccl_terms, "user_cap", user_cap_charge_a, user),
            (dcl_terms, "user_cap", user_cap_discharge_a, user),
        ):
            if cap is not None:
                terms.append(LimitTerm(name, max(0.0, cap), kind))
        # A fault (stale data, a protection cut) restarts the hold even when the limit was
        # already 0 A, so the current comes back only after the fault has been gone for a while.
        ccl = self._current_limit(self._ccl, ccl_terms, now_s, ccl_faulted)
        dcl = self._current_limit(self._dcl, dcl_terms, now_s, dcl_faulted)
        cvl, dvl = self._voltage_window(cell_v, vmax, vmin, now_s, cvl_phase)
        self._last = Limits(ccl_a=ccl, dcl_a=dcl, cvl_v=cvl, dvl_v=dvl)
        return self._last

    def _fault_terms(
        self,
        snapshot: PackSnapshot,
        alarms: AlarmReport,
        link_hold: str | None,
        hold: str | None,
    ) -> tuple[list[LimitTerm], list[LimitTerm]]:
        """The 0 A terms of CCL and DCL: stale, missing or implausible inputs (also "no
        complete data set yet"), protection cuts, the link's hold and an external hold."""
        ccl_terms: list[LimitTerm] = []
        dcl_terms: list[LimitTerm] = []

        def both(term: LimitTerm) -> None:
            ccl_terms.append(term)
            dcl_terms.append(term)

        stale = stale_inputs(snapshot, self._timeouts)
        for s in stale:
            both(LimitTerm(s.name, 0.0, _STALE_TERM[s.kind]))
        if not stale and (not snapshot.complete or snapshot.cell_count != self.pack.cells):
            both(LimitTerm("incomplete", 0.0, TermKind.INCOMPLETE))
        # Protection: alarms whose catalogue entry cuts a limit.
        vmax_now = snapshot.max_cell_v
        near_top = vmax_now is not None and vmax_now >= self.tables.imbalance_start_cell_v
        for alarm in alarms.active:
            if alarm.severity < Severity.ALARM:
                continue
            spec = ALARMS.get(alarm.code)
            if spec is None:
                continue
            term = LimitTerm(f"protection:{alarm.code}", 0.0, TermKind.PROTECTION)
            if spec.cuts_charge and (near_top or not spec.charge_cut_near_top_only):
                ccl_terms.append(term)
            if spec.cuts_discharge:
                dcl_terms.append(term)
        if link_hold is not None:
            both(LimitTerm(f"link:{link_hold}", 0.0, TermKind.LINK))
        # An external hold (a BMS firmware update): 0 A with its own reason.
        if hold is not None:
            both(LimitTerm(hold, 0.0, TermKind.HOLD))
        return ccl_terms, dcl_terms

    def _derating_terms(
        self,
        snapshot: PackSnapshot,
        soc: SocReport | None,
        vmin: float | None,
        vmax: float | None,
        ccl_terms: list[LimitTerm],
        dcl_terms: list[LimitTerm],
    ) -> None:
        """Append the configured maxima and the tables over the cell voltages (``vmin``,
        ``vmax``), the temperatures and the SoC to the terms of CCL and DCL."""
        tab = self.tables
        max_c, max_d = self.config.max_charge_a, self.config.max_discharge_a
        ccl_terms.append(LimitTerm("max", max_c, TermKind.CONFIGURED))
        dcl_terms.append(LimitTerm("max", max_d, TermKind.CONFIGURED))
        if vmin is not None and vmax is not None:
            ccl_terms.append(LimitTerm("cell_voltage", max_c * tab.charge_cell(vmax)))
            dcl_terms.append(LimitTerm("cell_voltage", max_d * tab.discharge_cell(vmin)))
            if vmax >= tab.imbalance_start_cell_v:
                ccl_terms.append(LimitTerm("imbalance", max_c * tab.imbalance(vmax - vmin)))
        # Temperature: the tables are unimodal, so their minimum over all sensors is at the
        # coldest or the hottest sensor.
        ext = extremes(cell_temps(snapshot.cell_temp_c, self._cell_sensors))
        if ext is not None:
            tmin, _, tmax, _ = ext
            fc = min(tab.charge_temp(tmin), tab.charge_temp(tmax))
            fd = min(tab.discharge_temp(tmin), tab.discharge_temp(tmax))
            ccl_terms.append(LimitTerm("temperature", max_c * fc))
            dcl_terms.append(LimitTerm("temperature", max_d * fd))
        if soc is not None:
            ccl_terms.append(LimitTerm("soc", max_c * tab.charge_soc(soc.soc_pct)))
            dcl_terms.append(LimitTerm("soc", max_d * tab.discharge_soc(soc.soc_pct)))

    @staticmethod
    def _current_limit(ramp: Ramp, terms: list[LimitTerm], now_s: float, faulted: bool) -> Limit:
        best = pick_min(terms)
        value = ramp.step(best.value, now_s, rearm=faulted)
        if value < best.value:
            terms.append(LimitTerm("ramp", value, TermKind.RAMP))
            return Limit(value, "ramp", tuple(terms), TermKind.RAMP)
        return Limit(value, best.name, tuple(terms), best.kind)

    def _voltage_window(
        self,
        cell_v: tuple[float | None, ...],
        vmax: float | None,
        vmin: float | None,
        now_s: float,
        cvl_phase: LimitTerm | None = None,
    ) -> tuple[Limit, Limit]:
        """CVL and DVL: their terms, ramps and winners; never an inverted window."""
        cvl_terms = [LimitTerm("max", self.cvl_max_v, TermKind.CONFIGURED)]
        if cvl_phase is not None:
            cvl_terms.insert(0, cvl_phase)
        dvl_terms = [LimitTerm("min", self.dvl_min_v, TermKind.CONFIGURED)]
        total = cell_sum_v(cell_v)
        if vmax is not None and vmin is not None and total is not None:
            # Dynamic CVL (the open-source driver's linear mode): when cells exceed the target,
            # ask for the pack voltage at which the high cells would be back at it, i.e. the sum
            # of the cells minus their excess. DVL mirrors it for cells below the DVL target.
            hi, lo = self.tables.cvl_cell_v, self.tables.dvl_cell_v
            if vmax > hi:
                excess = math.fsum(v - hi for v in cell_v if v is not None and v > hi)
                cvl_terms.append(LimitTerm("cell_high", max(self.dvl_min_v, total - excess)))
            if vmin < lo:
                deficit = math.fsum(lo - v for v in cell_v if v is not None and v < lo)
                dvl_terms.append(LimitTerm("cell_low", min(self.cvl_max_v, total + deficit)))
        best = pick_min(cvl_terms)
        cvl_v = self._cvl.step(best.value, now_s)
        if cvl_v < best.value:
            cvl_terms.append(LimitTerm("ramp", cvl_v, TermKind.RAMP))
            cvl = Limit(cvl_v, "ramp", tuple(cvl_terms), TermKind.RAMP)
        else:
            cvl = Limit(cvl_v, best.name, tuple(cvl_terms), best.kind)
        best = pick_max(dvl_terms)
        dvl_v = -self._dvl.step(-best.value, now_s)
        if dvl_v > best.value:
            dvl_terms.append(LimitTerm("ramp", dvl_v, TermKind.RAMP))
            dvl = Limit(dvl_v, "ramp", tuple(dvl_terms), TermKind.RAMP)
        else:
            dvl = Limit(dvl_v, best.name, tuple(dvl_terms), best.kind)
        # A DVL lifted above CVL (a low cell and a high one) is trimmed to CVL, never below its
        # own setting: a lower DVL lets the inverter discharge deeper. The limits' terms keep
        # CVL at or above that setting (``cell_high`` stops there); a phase CVL below it (a
        # float voltage the settings refuse) leaves the window inverted, DVL at its setting,
        # with a ``cvl_below_dvl`` term that says so.
        if dvl.value > cvl.value:
            trimmed = max(cvl.value, self.dvl_min_v)
            terms = dvl.terms
            if cvl.value < self.dvl_min_v:
                terms += (LimitTerm("cvl_below_dvl", cvl.value, cvl.winner_kind),)
            dvl = Limit(min(dvl.value, trimmed), dvl.winner, terms, dvl.winner_kind)
        return cvl, dvl
