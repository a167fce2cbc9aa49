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
"""

from __future__ import annotations

import math

from pydantic import Field

from gateway.core.config import Section
from gateway.core.freshness import TimeoutsConfig, extremes, stale_inputs
from gateway.core.model import (
    AlarmReport,
    Limit,
    Limits,
    LimitTerm,
    PackSnapshot,
    Severity,
    SocReport,
)
from gateway.core.pack import PackConfig, cell_temps
from gateway.core.protection import ALARMS
from gateway.core.tables import Table

__all__ = ["LIMITS_DEFAULTS", "LimitTables", "LimitsCalculator", "LimitsConfig"]

_Pair = tuple[tuple[float, ...], tuple[float, ...]]

# Chemistry defaults. LFP: the tables users of the leading open-source Victron driver know.
# NMC: each LFP knot moved to the same SoC on the NMC OCV curve (derivation in docs/LIMITS.md).
LIMITS_DEFAULTS: dict[str, dict[str, _Pair | float]] = {
    "lfp": {
        "charge_cell": ((3.375, 3.400, 3.425, 3.450, 3.500), (1.0, 0.25, 0.05, 0.005, 0.0)),
        "discharge_cell": ((2.80, 2.90, 3.00, 3.10, 3.19), (0.0, 0.005, 0.05, 0.25, 1.0)),
        "charge_temp": (
            (0.0, 2.0, 5.0, 10.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "discharge_temp": (
            (-10.0, -8.0, -5.0, 0.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "imbalance_start_cell_v": 3.40,
        "cvl_cell_v": 3.45,
        "dvl_cell_v": 2.90,
    },
    "nmc": {
        "charge_cell": ((4.14, 4.16, 4.17, 4.18, 4.20), (1.0, 0.25, 0.05, 0.005, 0.0)),
        "discharge_cell": ((3.10, 3.14, 3.25, 3.35, 3.44), (0.0, 0.005, 0.05, 0.25, 1.0)),
        "charge_temp": (
            (0.0, 2.0, 5.0, 10.0, 35.0, 40.0, 45.0, 50.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "discharge_temp": (
            (-20.0, -18.0, -15.0, -10.0, 40.0, 45.0, 50.0, 55.0),
            (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
        ),
        "imbalance_start_cell_v": 4.10,
        "cvl_cell_v": 4.18,
        "dvl_cell_v": 3.20,
    },
}
_COMMON: dict[str, _Pair] = {
    "charge_soc": ((95.0, 100.0), (1.0, 0.3)),
    "discharge_soc": ((0.0, 2.0, 5.0), (0.05, 0.25, 1.0)),
    "imbalance": ((0.02, 0.05, 0.10, 0.20), (1.0, 0.5, 0.2, 0.1)),
}


# The timeouts section's defaults, for callers that configure none (frozen, so sharing is safe).
_DEFAULT_TIMEOUTS = TimeoutsConfig()


class LimitsConfig(Section):
    """Limit tables, maxima and ramps. Unset tables take chemistry defaults.

    The fail-safe's input timeouts are the ``timeouts`` section (:class:`TimeoutsConfig`).

    A table is two lists of equal length: knots (strictly increasing) and fractions of the
    configured maximum (0..1), linear in between and clamped outside.
    """

    max_charge_a: float = 100.0
    """Configured maximum charge current."""
    max_discharge_a: float = 100.0
    """Configured maximum discharge current."""
    charge_cell_v: tuple[float, ...] | None = None
    """Charge taper knots by highest cell voltage (LFP 3.375, 3.400, 3.425, 3.450, 3.500 V)."""
    charge_cell_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (LFP 1, 0.25, 0.05, 0.005, 0)."""
    discharge_cell_v: tuple[float, ...] | None = None
    """Discharge taper knots by lowest cell voltage (LFP 2.80, 2.90, 3.00, 3.10, 3.19 V)."""
    discharge_cell_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (LFP 0, 0.005, 0.05, 0.25, 1)."""
    charge_temp_c: tuple[float, ...] | None = None
    """Charge derating knots by cell temperature (LFP 0, 2, 5, 10, 40, 45, 50, 55 degC)."""
    charge_temp_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (0, 0.25, 0.5, 1, 1, 0.5, 0.25, 0)."""
    discharge_temp_c: tuple[float, ...] | None = None
    """Discharge derating knots (LFP -10, -8, -5, 0, 40, 45, 50, 55 degC)."""
    discharge_temp_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (0, 0.25, 0.5, 1, 1, 0.5, 0.25, 0)."""
    charge_soc_pct: tuple[float, ...] | None = None
    """Charge taper knots by pack SoC (95, 100 %)."""
    charge_soc_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (1, 0.3)."""
    discharge_soc_pct: tuple[float, ...] | None = None
    """Discharge taper knots by pack SoC (0, 2, 5 %)."""
    discharge_soc_fraction: tuple[float, ...] | None = None
    """Discharge fraction at those knots (0.05, 0.25, 1)."""
    imbalance_start_cell_v: float | None = None
    """The imbalance term applies once the highest cell reaches this (LFP 3.40 V, NMC 4.10 V)."""
    imbalance_spread_v: tuple[float, ...] | None = None
    """Imbalance knots: highest minus lowest cell (0.02, 0.05, 0.10, 0.20 V)."""
    imbalance_fraction: tuple[float, ...] | None = None
    """Charge fraction at those knots (1, 0.5, 0.2, 0.1)."""
    cvl_cell_v: float | None = None
    """Charge voltage per cell: CVL = cells x this, and the dynamic CVL target for the highest
    cell (LFP 3.45 V, NMC 4.18 V)."""
    dvl_cell_v: float | None = None
    """Discharge voltage per cell: DVL = cells x this, and the dynamic DVL target for the
    lowest cell (LFP 2.90 V, NMC 3.20 V)."""
    ramp_hold_s: float = 30.0
    """After a cut, CCL/DCL stay down this long before they may increase."""
    ramp_a_per_s: float = 5.0
    """CCL/DCL increase at most this fast after the hold."""
    ramp_deadband_pct: float = Field(default=5.0, ge=0, le=100)
    """A drop restarts the hold only when it exceeds this percentage of the configured maximum
    (or the limit has slid twice that since the hold last started); smaller drops still apply at
    once, but the limit may rise again without waiting. 0: every drop restarts the hold."""
    voltage_hold_s: float = 10.0
    """After CVL is pulled down (or DVL lifted), wait this long before relaxing it."""
    voltage_ramp_v_per_cell_s: float = 0.01
    """CVL rises (DVL falls) at most this fast per series cell after the hold."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, float) and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} (={value}) must be finite and not negative")
            # Upper bounds: an hour for a time, 100 kA for a current (beyond: not a pack).
            is_time = name.endswith("_s") and "_per_" not in name  # not a rate (A/s, V/s)
            top = 3600.0 if is_time else 100_000.0 if name.endswith("_a") else None
            if isinstance(value, float) and top is not None and value > top:
                raise ValueError(f"{name} (={value}) must be at most {top:g}")
        for knots, fractions in (
            ("charge_cell_v", "charge_cell_fraction"),
            ("discharge_cell_v", "discharge_cell_fraction"),
            ("charge_temp_c", "charge_temp_fraction"),
            ("discharge_temp_c", "discharge_temp_fraction"),
            ("charge_soc_pct", "charge_soc_fraction"),
            ("discharge_soc_pct", "discharge_soc_fraction"),
            ("imbalance_spread_v", "imbalance_fraction"),
        ):
            xs, ys = getattr(self, knots), getattr(self, fractions)
            if (xs is None) != (ys is None):
                raise ValueError(f"{knots} and {fractions} must be set together")
            if xs is None:
                continue
            if any(not 0.0 <= y <= 1.0 for y in ys):
                raise ValueError(f"{fractions} (={ys}) must be fractions within 0..1")
            try:
                Table.of(xs, ys)
            except ValueError as e:
                raise ValueError(f"{knots}/{fractions}: {e}") from None

    def tables(self, pack: PackConfig) -> LimitTables:
        """The tables in force for ``pack``: own values where set, else chemistry defaults."""
        chem = LIMITS_DEFAULTS[pack.chemistry]

        def table(key: str, xs: tuple[float, ...] | None, ys: tuple[float, ...] | None) -> Table:
            if xs is not None and ys is not None:
                return Table.of(xs, ys)
            pair = chem.get(key) or _COMMON[key]
            assert isinstance(pair, tuple)
            return Table.of(*pair)

        def number(key: str, own: float | None) -> float:
            if own is not None:
                return own
            value = chem[key]
            assert isinstance(value, float)
            return value

        return LimitTables(
            charge_cell=table("charge_cell", self.charge_cell_v, self.charge_cell_fraction),
            discharge_cell=table(
                "discharge_cell", self.discharge_cell_v, self.discharge_cell_fraction
            ),
            charge_temp=table("charge_temp", self.charge_temp_c, self.charge_temp_fraction),
            discharge_temp=table(
                "discharge_temp", self.discharge_temp_c, self.discharge_temp_fraction
            ),
            charge_soc=table("charge_soc", self.charge_soc_pct, self.charge_soc_fraction),
            discharge_soc=table(
                "discharge_soc", self.discharge_soc_pct, self.discharge_soc_fraction
            ),
            imbalance=table("imbalance", self.imbalance_spread_v, self.imbalance_fraction),
            imbalance_start_cell_v=number("imbalance_start_cell_v", self.imbalance_start_cell_v),
            cvl_cell_v=number("cvl_cell_v", self.cvl_cell_v),
            dvl_cell_v=number("dvl_cell_v", self.dvl_cell_v),
        )


class LimitTables:
    """The resolved tables and per-cell voltages of one pack (read-only after construction)."""

    __slots__ = (
        "charge_cell",
        "charge_soc",
        "charge_temp",
        "cvl_cell_v",
        "discharge_cell",
        "discharge_soc",
        "discharge_temp",
        "dvl_cell_v",
        "imbalance",
        "imbalance_start_cell_v",
    )

    def __init__(
        self,
        *,
        charge_cell: Table,
        discharge_cell: Table,
        charge_temp: Table,
        discharge_temp: Table,
        charge_soc: Table,
        discharge_soc: Table,
        imbalance: Table,
        imbalance_start_cell_v: float,
        cvl_cell_v: float,
        dvl_cell_v: float,
    ) -> None:
        if not dvl_cell_v < cvl_cell_v:
            raise ValueError(
                f"limits.dvl_cell_v (={dvl_cell_v}) must be below limits.cvl_cell_v (={cvl_cell_v})"
            )
        self.charge_cell = charge_cell
        self.discharge_cell = discharge_cell
        self.charge_temp = charge_temp
        self.discharge_temp = discharge_temp
        self.charge_soc = charge_soc
        self.discharge_soc = discharge_soc
        self.imbalance = imbalance
        self.imbalance_start_cell_v = imbalance_start_cell_v
        self.cvl_cell_v = cvl_cell_v
        self.dvl_cell_v = dvl_cell_v


class _Ramp:
    """Cuts at once; increases wait ``hold_s`` after the last cut, then rise at ``rate_per_s``.

    A cut restarts the hold only for a drop of more than ``deadband`` below the current value,
    a fall of more than twice it below ``peak`` (the highest value since the hold last started:
    a slow slide counts too), or on ``rearm``. Noise smaller than that still cuts at once but no
    longer ratchets the limit down by restarting the hold on every dip.
    """

    __slots__ = ("deadband", "hold_s", "last_cut_s", "last_s", "peak", "rate_per_s", "value")

    def __init__(
        self, rate_per_s: float, hold_s: float, start: float | None, deadband: float = 0.0
    ) -> None:
        self.rate_per_s = rate_per_s
        self.hold_s = hold_s
        self.deadband = deadband
        self.value = start
        self.peak = -math.inf if start is None else start
        self.last_cut_s = -math.inf
        self.last_s = -math.inf

    def _restart_hold(self, now_s: float, value: float) -> None:
        self.last_cut_s = now_s
        self.peak = value

    def step(self, target: float, now_s: float, rearm: bool = False) -> float:
        """Advance to ``now_s``; ``rearm`` restarts the hold (a fault term holds the limit)."""
        dt = now_s - self.last_s if self.last_s != -math.inf else 0.0
        self.last_s = now_s
        value = self.value
        if value is None:
            # The very first step starts from the target (or from the start value, if given).
            self.value = target
            self._restart_hold(now_s, target)
            return target
        if rearm:
            self._restart_hold(now_s, min(target, value))
        if target <= value:
            band = self.deadband
            if value - target > band or self.peak - target > 2.0 * band:
                self._restart_hold(now_s, target)
            self.value = target
            return target
        if now_s - self.last_cut_s < self.hold_s or dt <= 0.0:
            return value
        value = min(target, value + self.rate_per_s * dt)
        self.value = value
        self.peak = max(self.peak, value)
        return value


def _pick_min(terms: list[LimitTerm]) -> LimitTerm:
    best = terms[0]
    for t in terms[1:]:
        if t.value < best.value:
            best = t
    return best


def _pick_max(terms: list[LimitTerm]) -> LimitTerm:
    best = terms[0]
    for t in terms[1:]:
        if t.value > best.value:
            best = t
    return best


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
        self._ccl = _Ramp(config.ramp_a_per_s, config.ramp_hold_s, 0.0, band * config.max_charge_a)
        self._dcl = _Ramp(
            config.ramp_a_per_s, config.ramp_hold_s, 0.0, band * config.max_discharge_a
        )
        v_rate = config.voltage_ramp_v_per_cell_s * n
        self._cvl = _Ramp(v_rate, config.voltage_hold_s, None)
        # DVL relaxes downwards; the ramp works on its negative.
        self._dvl = _Ramp(v_rate, config.voltage_hold_s, None)
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
        cfg = self.config
        tab = self.tables
        ccl_terms: list[LimitTerm] = []
        dcl_terms: list[LimitTerm] = []

        # --- fail-safe: missing or stale inputs (also covers "no complete data set yet").
        stale = stale_inputs(snapshot, self._timeouts)
        for s in stale:
            term = LimitTerm(s.name, 0.0)
            ccl_terms.append(term)
            dcl_terms.append(term)
        if not stale and (not snapshot.complete or snapshot.cell_count != self.pack.cells):
            term = LimitTerm("incomplete", 0.0)
            ccl_terms.append(term)
            dcl_terms.append(term)

        # --- protection: alarms whose catalogue entry cuts a limit.
        vmax_now = snapshot.max_cell_v
        near_top = vmax_now is not None and vmax_now >= tab.imbalance_start_cell_v
        for alarm in alarms.active:
            if alarm.severity < Severity.ALARM:
                continue
            spec = ALARMS.get(alarm.code)
            if spec is None:
                continue
            term = LimitTerm(f"protection:{alarm.code}", 0.0)
            if spec.cuts_charge and (near_top or not spec.charge_cut_near_top_only):
                ccl_terms.append(term)
            if spec.cuts_discharge:
                dcl_terms.append(term)

        if link_hold is not None:
            term = LimitTerm(f"link:{link_hold}", 0.0)
            ccl_terms.append(term)
            dcl_terms.append(term)

        # --- an external hold (a BMS firmware update): 0 A with its own reason.
        if hold is not None:
            term = LimitTerm(hold, 0.0)
            ccl_terms.append(term)
            dcl_terms.append(term)

        ccl_faulted, dcl_faulted = bool(ccl_terms), bool(dcl_terms)
        max_c, max_d = cfg.max_charge_a, cfg.max_discharge_a
        ccl_terms.append(LimitTerm("max", max_c))
        dcl_terms.append(LimitTerm("max", max_d))

        # --- cell voltages (one pass each for the extremes).
        cell_v = snapshot.cell_voltage_v
        ext = extremes(cell_v)
        vmax = vmin = None
        if ext is not None:
            vmin, _, vmax, _ = ext
            ccl_terms.append(LimitTerm("cell_voltage", max_c * tab.charge_cell(vmax)))
            dcl_terms.append(LimitTerm("cell_voltage", max_d * tab.discharge_cell(vmin)))
            if vmax >= tab.imbalance_start_cell_v:
                ccl_terms.append(LimitTerm("imbalance", max_c * tab.imbalance(vmax - vmin)))

        # --- temperature: the tables are unimodal, so their minimum over all sensors is at the
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
        if inverter_max_charge_a is not None:
            ccl_terms.append(LimitTerm("inverter", max(0.0, inverter_max_charge_a)))
        if inverter_max_discharge_a is not None:
            dcl_terms.append(LimitTerm("inverter", max(0.0, inverter_max_discharge_a)))
        if user_cap_charge_a is not None:
            ccl_terms.append(LimitTerm("user_cap", max(0.0, user_cap_charge_a)))
        if user_cap_discharge_a is not None:
            dcl_terms.append(LimitTerm("user_cap", max(0.0, user_cap_discharge_a)))

        # A fault (stale data, a protection cut) restarts the hold even when the limit was
        # already 0 A, so the current comes back only after the fault has been gone for a while.
        ccl = self._current_limit(self._ccl, ccl_terms, now_s, ccl_faulted)
        dcl = self._current_limit(self._dcl, dcl_terms, now_s, dcl_faulted)
        cvl, dvl = self._voltage_window(cell_v, vmax, vmin, now_s, cvl_phase)
        self._last = Limits(ccl_a=ccl, dcl_a=dcl, cvl_v=cvl, dvl_v=dvl)
        return self._last

    @staticmethod
    def _current_limit(ramp: _Ramp, terms: list[LimitTerm], now_s: float, faulted: bool) -> Limit:
        best = _pick_min(terms)
        value = ramp.step(best.value, now_s, rearm=faulted)
        if value < best.value:
            terms.append(LimitTerm("ramp", value))
            return Limit(value, "ramp", tuple(terms))
        return Limit(value, best.name, tuple(terms))

    def _voltage_window(
        self,
        cell_v: tuple[float | None, ...],
        vmax: float | None,
        vmin: float | None,
        now_s: float,
        cvl_phase: LimitTerm | None = None,
    ) -> tuple[Limit, Limit]:
        tab = self.tables
        cvl_terms = [LimitTerm("max", self.cvl_max_v)]
        if cvl_phase is not None:
            cvl_terms.insert(0, cvl_phase)
        dvl_terms = [LimitTerm("min", self.dvl_min_v)]
        if vmax is not None and vmin is not None and None not in cell_v:
            # Dynamic CVL (the open-source driver's linear mode): when cells exceed the target,
            # ask for the pack voltage at which the high cells would be back at it, i.e. the sum
            # of the cells minus their excess. DVL mirrors it for cells below the DVL target.
            hi, lo = tab.cvl_cell_v, tab.dvl_cell_v
            if vmax > hi:
                total = math.fsum(cell_v)  # type: ignore[arg-type]
                excess = math.fsum(v - hi for v in cell_v if v is not None and v > hi)
                cvl_terms.append(LimitTerm("cell_high", max(self.dvl_min_v, total - excess)))
            if vmin < lo:
                total = math.fsum(cell_v)  # type: ignore[arg-type]
                deficit = math.fsum(lo - v for v in cell_v if v is not None and v < lo)
                dvl_terms.append(LimitTerm("cell_low", min(self.cvl_max_v, total + deficit)))
        best = _pick_min(cvl_terms)
        cvl_v = self._cvl.step(best.value, now_s)
        if cvl_v < best.value:
            cvl_terms.append(LimitTerm("ramp", cvl_v))
            cvl = Limit(cvl_v, "ramp", tuple(cvl_terms))
        else:
            cvl = Limit(cvl_v, best.name, tuple(cvl_terms))
        best = _pick_max(dvl_terms)
        dvl_v = -self._dvl.step(-best.value, now_s)
        if dvl_v > best.value:
            dvl_terms.append(LimitTerm("ramp", dvl_v))
            dvl = Limit(dvl_v, "ramp", tuple(dvl_terms))
        else:
            dvl = Limit(dvl_v, best.name, tuple(dvl_terms))
        # Never an inverted window, whatever the cells do.
        if dvl.value > cvl.value:
            dvl = Limit(cvl.value, dvl.winner, dvl.terms)
        return cvl, dvl
