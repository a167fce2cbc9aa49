"""The ``charge`` section: the charge strategy, float voltage and the full-charge triggers.

Read by ``gateway.core.phases`` (``ChargePhases``); the phases and triggers are described
there.
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import Field

from gateway.core.config import Section

__all__ = ["FLOAT_SOC_DEFAULTS", "ChargeConfig", "ChargeStrategy"]

_FLOAT_MARGIN_V = 0.05  # a derived float voltage stays this far below the absorption voltage
FLOAT_SOC_DEFAULTS: dict[str, float] = {"lfp": 93.0, "nmc": 95.0}
"""The default ``float_soc_pct`` per chemistry (``ChargeConfig.for_chemistry``)."""
_FLOAT_SOC_FALLBACK = min(FLOAT_SOC_DEFAULTS.values())  # not resolved for a chemistry


class ChargeStrategy(StrEnum):
    """How CVL is chosen."""

    ADAPTIVE = "adaptive"  # bulk / absorption / float, full charge on demand
    TOP = "top"  # CVL always at the absorption voltage (what the peers do)


class ChargeConfig(Section):
    """Charge phases: absorption, float and when a full charge is worth it."""

    strategy: ChargeStrategy = ChargeStrategy.ADAPTIVE
    """``adaptive`` (bulk, absorption, float; full charge on demand) or ``top`` (CVL always at
    the absorption voltage ``limits.cvl_cell_v``)."""
    float_cell_v: float | None = Field(
        default=None, gt=0, le=5, json_schema_extra={"example_needs": "float_raise_days = 0"}
    )
    """Float voltage per cell (``None``: the chemistry's OCV at ``float_soc_pct``, from the OCV
    table in force, a user table included, and at least 50 mV below the absorption voltage;
    LFP about 3.315 V, NMC about 4.125 V). Clamped there (a user table), it holds the pack at a
    lower SoC: that SoC, by the table, is then the float SoC of every rule (bulk's end,
    re-bulk, recharge, the raised float), and ``check-config --defaults`` says so
    (``gateway.core.charge_float.float_in_force``). Set, it must be above
    ``limits.dvl_cell_v`` and the cell under-voltage warning and alarm levels: the float is a
    CVL, and below DVL it lowered DVL with it before session 11."""
    float_soc_pct: float | None = Field(default=None, ge=50, le=99)
    """The SoC whose OCV is the default float voltage, and at which bulk ends without a full
    charge due (``None``: the chemistry's, ``FLOAT_SOC_DEFAULTS``: LFP 93, NMC 95). The float
    keeps the pack off the top, and every point below it is charge a grey day after a sunny
    one misses. NMC floats closer to the 95 % line than LFP: its steep OCV pins the float
    voltage's SoC and its estimate is known to about a point there, while an LFP float sits on
    the plateau's end, where the voltage tells the SoC apart from 95 % by 2 mV and the estimate
    is known to 2 to 4 points. NMC 95 was chosen on the tuning seeds of
    ``bench/charge_phases.py`` (household: 0.981 to 0.983 of ``top``'s energy at 93, 0.988 to
    0.989 at 95, time above 95 % still cut by about 90 %); 90 for both before session 5, 93 for
    both before session 6."""
    float_raise_days: float = Field(default=14.0, ge=0, le=365)
    """After the pack SoC came within the float's gap of empty (below ``100 - float_soc_pct``:
    charged to the top, the pack would have delivered the charge above the float), the float
    rises for this many days to the highest SoC whose OCV is 1 mV below the OCV at 95 % (LFP
    about 94.2 %; NMC about 94.9 %, below its default, so it never rises): the pack stays below
    95 % and stores more for a grey day after a sunny one (``gateway.core.charge_float``;
    0: never; not with ``float_cell_v`` set: setting both, this above 0, is said at start). 14, the
    full-charge interval: a raised float
    adds no time above 95 %, so there is little reason to drop it soon (7 lapsed before a grey
    day on two of the tuning seeds of ``bench/charge_phases.py``, session 8)."""
    rebulk_soc_pct: float = Field(default=85.0, ge=0, le=99)
    """Float returns to bulk when the pack SoC falls below this (below the float SoC), and so
    does an absorption the loads take the pack down in: the SoC must have been at or above it in
    that phase (an estimate below it when the top was reached, lagging, is not a fall: taken as
    one, the phase flapped every step)."""
    float_recharge_pct: float = Field(default=1.0, ge=0, le=50)
    """Float also returns to bulk when the pack SoC falls this many points below the float SoC
    in force (a load took charge out of the floating pack), and bulk charges it back to the
    float SoC at the full charge rate while there is PV (``gateway.core.charge_float``; 0:
    never, only below ``rebulk_soc_pct``; with the float SoC minus this below
    ``rebulk_soc_pct``, re-bulk acts first, said at start). The SoC must also have fallen this
    far within the float: a float begun below its SoC (the top reached first, or an estimate
    behind) does not go back to bulk at once, and flap (session 11). On the flat LFP plateau the
    float voltage alone gives that charge back at a trickle: 0.3 to 0.4 A for the rest of the
    afternoon after a 6 Ah load pulse in ``bench/charge_phases.py`` (session 10), so the pack
    entered the evening up to 3.5 points below its float, charge a grey day after a sunny one
    missed."""
    top_margin_cell_v: float = Field(default=0.01, ge=0, le=0.2)
    """A phase's voltage counts as reached within this of it, per cell (absorption: by the
    highest cell or the pack voltage; float: by the pack voltage)."""
    tail_current_c: float = Field(default=0.02, ge=0, le=1)
    """Absorption (and bulk towards float) ends once the charge current is below this C-rate ..."""
    tail_hold_s: float = Field(default=120.0, ge=0, le=3600)
    """... for this long, with no cell balancing over that time."""
    absorption_max_s: float = Field(default=4 * 3600.0, gt=0, le=24 * 3600.0)
    """Absorption never lasts longer than this (at least ``tail_hold_s``, else it could never
    end on the tapered current)."""
    full_charge_sigma_pct: float = Field(default=2.5, gt=0, le=50)
    """Request a full charge when the worst cell's SoC sigma has been at or above this (percent
    points) for ``full_charge_sigma_hold_s``."""
    full_charge_sigma_hold_s: float = Field(default=86400.0, ge=0, le=7 * 86400.0)
    """... this long (a day: the sigma's load part comes with the day's charge and goes by the
    next morning, and a top removes it for less than a day; 0: at once, as before session 6).
    A request raised for it lapses when the sigma is below the threshold again before the top
    (the estimate was anchored at a knee instead); with 0 it stays until a full charge."""
    full_charge_for_balancing: bool = True
    """Request a full charge when the cells' relative SoC sigma exceeds the balancing start
    threshold (the planner cannot tell the cells apart without a top), and when the last
    absorption ended with a cell bleeding and one still above that threshold by the estimate
    (balancing unfinished; due at once)."""
    full_charge_max_interval_days: float = Field(default=14.0, gt=0, le=365)
    """Request a full charge when the last one is this many days ago (or none is on record; at
    least ``full_charge_min_interval_days``)."""
    full_charge_below_soc_pct: float = Field(default=0.0, ge=0, le=100)
    """Request a full charge once the pack SoC falls below this: the stored energy is being
    used, so the next charge goes to the top (0, the default: never; the pack then stores up to
    the float SoC on days without another reason for a full charge, which costs some delivered
    energy on a pack that runs empty at night and saves most of its hours at the top; 20 was the
    default before). Below the float SoC: at or above it, a full charge would be requested every
    day (``strategy = "top"`` holds the pack at the top)."""
    full_charge_below_soc_days: float = Field(default=2.0, ge=0, le=365)
    """After the SoC was below ``full_charge_below_soc_pct``, a full charge is requested every
    day for this long: the pack's energy is being used, so a day that floats would export PV a
    later day misses (0: only the charge right after it)."""
    full_charge_min_interval_days: float = Field(default=2.0, ge=0, le=365)
    """The sigma and balancing triggers wait this long after a full charge (an estimate that
    stays uncertain must not hold the pack at the top every day). Unfinished balancing that has
    stalled off the top (no cell bleeding) waits only a day, or this when shorter: an imbalance
    measured at the last top is a need the next top serves, and waiting the whole interval left
    a shallow-cycling LFP pack's spread, and its lagging cells' unanchored sigma, for days
    (``gateway.core.charge_request``; session 6, the whole interval before)."""
    full_charge_lead_s: float = Field(default=7200.0, ge=0, le=12 * 3600.0)
    """A requested full charge becomes due this long before the time of day at which the pack's
    daily charge usually ends (learned from the SoC), so that the pack reaches the top just
    before the loads take it down; until then it charges to the float level. Once a full
    charge timed this way has been measured, its lift slope and ``full_charge_end_margin_s``
    decide instead (0: due at once; due at once too while no daily charge end has been seen,
    and with ``full_charge_from_grid``)."""
    full_charge_end_margin_s: float = Field(default=1800.0, ge=0, le=12 * 3600.0)
    """Once the afternoon's lift slope is known (learned from the last full charges that waited
    for their time: the charge current they took in falls about in proportion to the time left
    before the day's end, ``k`` A per hour before it), a waiting full charge becomes due when
    the charge from the float SoC (or the SoC, when higher) to the top, at that slope, would
    bring the pack to the top this long before its daily charge usually ends (room for a cloud
    and for the absorption); until the first such charge is measured, ``full_charge_lead_s``
    before the end."""
    full_charge_from_grid: bool = False
    """A requested full charge may draw from the grid (else it waits for PV): the battery CAN
    force-charge request and SunSpec ``ChaGriSet = GRID`` while below ``rebulk_soc_pct``."""

    def resolve_float_cell_v(self, ocv_at_float_soc_v: float, absorption_cell_v: float) -> float:
        """The float voltage per cell in force: ``float_cell_v`` when set, else the OCV at
        ``float_soc_pct`` (given), kept 50 mV below the absorption voltage (a user OCV table need
        not agree with the limits' voltages)."""
        if self.float_cell_v is not None:
            return self.float_cell_v
        return min(ocv_at_float_soc_v, absorption_cell_v - _FLOAT_MARGIN_V)

    @property
    def float_soc(self) -> float:
        """The float SoC in force (%): ``float_soc_pct``, or, unset and not resolved for a
        chemistry (``for_chemistry``), the lowest chemistry default."""
        return _FLOAT_SOC_FALLBACK if self.float_soc_pct is None else self.float_soc_pct

    def for_chemistry(self, chemistry: str) -> ChargeConfig:
        """This section with ``float_soc_pct`` set to ``chemistry``'s default when unset."""
        if self.float_soc_pct is not None:
            return self
        default = FLOAT_SOC_DEFAULTS.get(chemistry, _FLOAT_SOC_FALLBACK)
        return self.model_copy(update={"float_soc_pct": default})

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type (each error names the keys)."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name} (={value}) must be finite")
        if self.float_soc_pct is not None:  # unset: ``Settings`` checks the chemistry's
            self.check_float_soc()

    def check_float_above(self, chemistry: str, *floors: tuple[str, float, bool]) -> None:
        """Refuse a set ``float_cell_v`` at or below any of ``floors``, each ``(key, V per cell,
        unset: the chemistry's default)``: ``limits.dvl_cell_v`` and the under-voltage levels.
        The float voltage is a CVL: below DVL it once pulled DVL down with it (the limits now
        keep DVL at its setting: ``gateway.core.limits``), and a float there would hold the pack
        at or below the discharge limit.

        Raises:
            ValueError: naming both keys.
        """
        float_v = self.float_cell_v
        for key, floor_v, unset in floors:
            if float_v is not None and float_v <= floor_v:
                default = f", unset: {chemistry}'s default" if unset else ""
                raise ValueError(
                    f"charge.float_cell_v (={float_v:g}) must be above {key} (={floor_v:g}"
                    f"{default}): the float voltage is a charge voltage, and the pack must"
                    " float above the discharge limit and the under-voltage levels"
                )

    def check_float_soc(self, chemistry: str | None = None, why: str = "") -> None:
        """Refuse a ``rebulk_soc_pct`` at or above the float SoC in force (``chemistry``: the
        pack's, when ``float_soc_pct`` is unset and was resolved for it; ``why``: how the float
        SoC in force came about, when not as set, and what to change).

        Raises:
            ValueError: naming the keys.
        """
        unset = "" if chemistry is None else f", unset: {chemistry}'s default"
        fl = f"charge.float_soc_pct (={self.float_soc:.4g}{unset}{why})"
        if self.rebulk_soc_pct >= self.float_soc:
            raise ValueError(f"charge.rebulk_soc_pct (={self.rebulk_soc_pct:g}) must be below {fl}")

    def notices(self) -> tuple[str, ...]:
        """Settings that load but have no effect or an unusual one, each naming its keys (said
        at start and by ``check-config``; refusing them would stop a daemon that ran with them
        before): a minimum full-charge interval above the maximum, a ``full_charge_below_soc_pct``
        at or above the float SoC (a full charge every day), a recharge band that re-bulk always
        beats, an absorption that cannot end on the taper, a float raise with a set float
        voltage. Call on the section resolved for the chemistry (``for_chemistry``)."""
        out: list[str] = []
        lo, hi = self.full_charge_min_interval_days, self.full_charge_max_interval_days
        if lo > hi:
            out.append(
                f"charge.full_charge_min_interval_days (={lo:g}) is above"
                f" charge.full_charge_max_interval_days (={hi:g}): the interval asks for a full"
                " charge before the other triggers may"
            )
        below, fl = self.full_charge_below_soc_pct, self.float_soc
        if below > 0.0 and below >= fl:
            out.append(
                f"charge.full_charge_below_soc_pct (={below:g}) is not below charge.float_soc_pct"
                f' (={fl:.4g}): a full charge every day (strategy = "top" holds the top)'
            )
        band = self.float_recharge_pct
        if band > 0.0 and fl - band < self.rebulk_soc_pct:
            out.append(
                f"charge.float_soc_pct (={fl:.4g}) minus charge.float_recharge_pct (={band:g}) is"
                f" below charge.rebulk_soc_pct (={self.rebulk_soc_pct:g}): re-bulk acts first"
            )
        if self.absorption_max_s < self.tail_hold_s:
            out.append(
                f"charge.absorption_max_s (={self.absorption_max_s:g}) is below"
                f" charge.tail_hold_s (={self.tail_hold_s:g}): absorption ends at its time limit"
            )
        raise_set = "float_raise_days" in self.model_fields_set and self.float_raise_days > 0.0
        if self.float_cell_v is not None and raise_set:
            out.append(
                f"charge.float_raise_days (={self.float_raise_days:g}) has no effect with"
                f" charge.float_cell_v (={self.float_cell_v:g}) set: a set float is never raised"
            )
        return tuple(out)
