"""The float level in force: raised towards the 95 % line while the pack's nights use the charge
the float holds back. Pure and clock-injected.

The float keeps the pack off the top (time at high SoC ages the cells), and the charge between
the float SoC and the top is what it costs: a sunny day that ends floating leaves the pack that
much emptier for the evening. That costs delivered energy only when the pack then runs down to
empty before the next charge (a grey day after a sunny one: ``bench/charge_phases.py`` traces the
household LFP pack's whole shortfall against ``top`` to those days, docs/PERFORMANCE.md "Charge
phases"). So the float follows how deep the nights go:

- the pack SoC (estimate) has come *within the float's gap of empty*, below ``100 -
  float_soc_pct``: had the pack been charged to the top, the charge above the float would have
  been delivered; for ``float_raise_days`` after that the float is *raised*;
- raised, the float SoC (where bulk ends without a full charge due) and the float voltage move
  to the highest SoC the float voltage still tells apart from the 95 % line
  (``raised_float_soc_pct``: its OCV at least ``FLOAT_GUARD_V`` below the OCV at
  ``HIGH_SOC_PCT``). The float voltage holds the pack where the OCV equals it, so the pack stays
  below 95 % however long it floats, and no hour above it is added: only the float's gap
  narrows. On the flat LFP plateau end that is about 94.2 % (93 by default); on NMC's steep
  curve it is about 94.9 %, below NMC's default 95, so NMC never rises.

A pack whose nights stay well above empty (the light profile) keeps the lower float: the charge
above it would not be used. The guard is the cell voltage's resolution (1 mV): a float voltage
closer to the OCV at 95 % than that cannot be told from it. The float voltage pins the SoC only
as well as the OCV table fits the cells: on the LFP plateau's end a table 1 mV too high lets the
raised float reach the 95 % line (the built-in table's slope there is about 1.2 mV per point).
Without an estimate nothing is noted: the float stays as it is.

The float in force is also a level the pack is *kept at*: when a load takes the floating pack
``float_recharge_pct`` below the float SoC (estimate), ``recharge`` sends it back to bulk, which
charges it to the float SoC at the full charge rate while there is PV. On the flat LFP plateau
the float voltage alone gives that charge back at a trickle (its CV current is the voltage gap,
a millivolt or two per cell for points of charge, over the pack's resistance), and a load pulse
in the afternoon left the pack points below its float at the evening.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.charge_config import ChargeConfig
from gateway.core.chemistry import Chemistry

__all__ = [
    "FLOAT_GUARD_V",
    "HIGH_SOC_PCT",
    "FloatInForce",
    "FloatLevel",
    "float_in_force",
    "raised_float",
    "raised_float_soc_pct",
]

HIGH_SOC_PCT = 95.0  # the line time at high SoC is measured against (issue 18)
FLOAT_GUARD_V = 0.001  # a raised float's OCV stays this far below the OCV at HIGH_SOC_PCT
DAY_S = 86400.0


def raised_float_soc_pct(chemistry: Chemistry) -> float:
    """The raised float SoC (%): the SoC whose OCV is ``FLOAT_GUARD_V`` below the OCV at
    ``HIGH_SOC_PCT``, by ``chemistry``'s OCV table in force (a user table included), at most
    ``HIGH_SOC_PCT``."""
    return min(HIGH_SOC_PCT, chemistry.ocv_soc(chemistry.ocv_voltage(HIGH_SOC_PCT) - FLOAT_GUARD_V))


def _held(
    config: ChargeConfig, chemistry: Chemistry, soc_pct: float, absorption_cell_v: float
) -> tuple[float, float]:
    """The SoC (%) a float derived from ``soc_pct`` holds and its voltage per cell: the OCV at
    ``soc_pct``, or, clamped below ``absorption_cell_v`` (``resolve_float_cell_v``), the
    clamped voltage and the SoC whose OCV it is."""
    ocv_v = chemistry.ocv_voltage(soc_pct)
    cell_v = config.resolve_float_cell_v(ocv_v, absorption_cell_v)
    return (chemistry.ocv_soc(cell_v) if cell_v < ocv_v else soc_pct), cell_v


def raised_float(
    config: ChargeConfig, chemistry: Chemistry, absorption_cell_v: float
) -> tuple[float, float] | None:
    """The raised float for ``ChargePhases``: its SoC (%, ``raised_float_soc_pct``) and voltage
    per cell (the OCV there, kept 50 mV below ``absorption_cell_v`` as the configured float is:
    ``ChargeConfig.resolve_float_cell_v``; clamped, the SoC is the one that voltage holds);
    ``None`` when the float is never raised: a float voltage set by the user,
    ``float_raise_days`` 0, or a raised SoC not above the float SoC in force (``config``
    resolved for the chemistry: ``ChargeConfig.for_chemistry``, and by ``float_in_force``)."""
    if config.float_cell_v is not None or config.float_raise_days <= 0.0:
        return None
    soc_pct, cell_v = _held(config, chemistry, raised_float_soc_pct(chemistry), absorption_cell_v)
    if not soc_pct > config.float_soc:
        return None
    return soc_pct, cell_v


@dataclass(frozen=True, slots=True)
class FloatInForce:
    """The float ``ChargePhases`` runs with (``float_in_force``)."""

    config: ChargeConfig
    """The ``charge`` section with ``float_soc_pct`` the SoC the float voltage holds."""
    cell_v: float
    """The float voltage per cell (V)."""
    raised: tuple[float, float] | None
    """The raised float's SoC (%) and voltage per cell (``raised_float``)."""
    clamped: str
    """Why the float SoC in force differs from the one set (the float voltage was clamped
    below the absorption voltage), else ``""``."""


def float_in_force(
    config: ChargeConfig,
    chemistry: Chemistry,
    absorption_cell_v: float,
    dvl_cell_v: float | None = None,
    uv_levels: tuple[tuple[str, float], ...] = (),
) -> FloatInForce:
    """The float in force for ``config`` (resolved for the pack's chemistry:
    ``ChargeConfig.for_chemistry``) by ``chemistry``'s OCV table in force.

    Unset, the float voltage is the OCV at ``float_soc_pct``; when that is within 50 mV of
    ``absorption_cell_v`` (a user table, a low CVL), the voltage is clamped there and holds the
    pack at a lower SoC: that SoC becomes the float SoC of every rule (bulk's end, re-bulk,
    recharge, the raised float), so no rule waits for a SoC the float voltage cannot hold. A set
    ``float_cell_v`` whose OCV SoC is below ``float_soc_pct`` is taken the same way. A
    ``rebulk_soc_pct`` left at its default moves down with the float SoC, keeping its gap.

    Raises:
        ValueError: a threshold is not below the clamped float SoC (``check_float_soc``), or
            the derived float voltage is not above ``dvl_cell_v`` (``limits.dvl_cell_v`` in
            force, when given) and each of ``uv_levels`` (``(key, V per cell)``: the
            under-voltage levels in force); a set one ``Settings`` checks.
    """
    if config.float_cell_v is not None:  # set: it holds what the table says it holds
        cell_v = config.float_cell_v
        held = chemistry.ocv_soc(cell_v)
        soc_pct = held if held < config.float_soc else config.float_soc
        why = f"charge.float_cell_v {cell_v:.4g} V holds {soc_pct:.4g} % by the OCV table"
        fix = "a higher charge.float_cell_v"
    else:
        soc_pct, cell_v = _held(config, chemistry, config.float_soc, absorption_cell_v)
        floors = (() if dvl_cell_v is None else (("limits.dvl_cell_v", dvl_cell_v),)) + uv_levels
        for key, floor_v in floors:
            if cell_v <= floor_v:
                raise ValueError(
                    f"charge.float_cell_v (unset: {cell_v:.4g} V, by charge.float_soc_pct"
                    f" {config.float_soc:g} %, the OCV table in force, soc.ocv_table, and"
                    f" limits.cvl_cell_v) must be above {key} (={floor_v:g}): the pack must float"
                    " above the discharge limit and the under-voltage levels"
                )
        why = (
            f"its OCV {chemistry.ocv_voltage(config.float_soc):.4g} V is not 50 mV below"
            f" limits.cvl_cell_v {absorption_cell_v:g} V, and the float voltage there,"
            f" {cell_v:.4g} V, holds {soc_pct:.4g} % by the OCV table"
        )
        fix = "a higher limits.cvl_cell_v"
    clamped = ""
    if soc_pct < config.float_soc:
        clamped = f"clamped from {config.float_soc:g} %: {why}"
        update: dict[str, float] = {"float_soc_pct": soc_pct}
        if "rebulk_soc_pct" not in config.model_fields_set:  # a default follows the float
            update["rebulk_soc_pct"] = max(
                0.0, soc_pct - (config.float_soc - config.rebulk_soc_pct)
            )
            clamped += f"; charge.rebulk_soc_pct follows it to {update['rebulk_soc_pct']:.4g} %"
        config = config.model_copy(update=update)
        config.check_float_soc(why=f", {clamped}: set charge.rebulk_soc_pct below it, or {fix}")
    return FloatInForce(config, cell_v, raised_float(config, chemistry, absorption_cell_v), clamped)


class FloatLevel:
    """Which float is in force: the configured one or the raised one (the module's docstring).

    Args:
        config: the ``charge`` section (``float_soc``, ``float_raise_days``).
        float_cell_v: the configured float voltage per cell.
        raised: the raised float's SoC (%) and voltage per cell, or ``None`` (never raised:
            ``raised_float`` decides).
    """

    def __init__(
        self, config: ChargeConfig, float_cell_v: float, raised: tuple[float, float] | None
    ) -> None:
        self.config = config
        self._base = (config.float_soc, float_cell_v)
        self._raised = raised
        self.deep_s: float | None = None
        """When the pack SoC was last within the float's gap of empty (``None``: not seen)."""
        self._was_raised = False  # at the last ``lapsed`` call
        self.peak_pct: float | None = None
        """The highest SoC estimate seen since the phase last changed (``begin``)."""
        self._soc_pct: float | None = None  # at the last ``step``

    def step(self, soc_pct: float | None, now_s: float) -> None:
        """Note the pack SoC estimate at ``now_s`` (monotonic s; ``None`` or not finite: no
        estimate, nothing noted)."""
        gap_pct = 100.0 - self.config.float_soc
        soc = self._soc_pct = soc_pct if soc_pct is not None and math.isfinite(soc_pct) else None
        if soc is not None:
            self.peak_pct = soc if self.peak_pct is None else max(self.peak_pct, soc)
            if soc < gap_pct:
                self.deep_s = now_s

    def fell_below(self, threshold_pct: float) -> bool:
        """Whether the SoC of the last ``step`` is below ``threshold_pct`` (%) after being at or
        above it in this phase (``peak_pct``): the loads took the pack down. An estimate that
        was below it when the phase began (the top reached while the estimate lags: a cold start
        on the LFP plateau, a table that does not fit the cells) has not fallen; taking it as a
        fall flapped the phase every step. ``recharge`` measures a fall from below."""
        soc, peak = self._soc_pct, self.peak_pct
        return soc is not None and soc < threshold_pct and (peak is None or peak >= threshold_pct)

    def begin(self) -> None:
        """A phase begins (``ChargePhases``): the SoC peak ``recharge`` measures the fall from
        starts at the SoC of the last ``step``."""
        self.peak_pct = self._soc_pct

    def raised(self, now_s: float) -> bool:
        """Whether the raised float is in force at ``now_s``."""
        days = self.config.float_raise_days
        return (
            self._raised is not None
            and self.deep_s is not None
            and now_s - self.deep_s < days * DAY_S
        )

    def level(self, now_s: float) -> tuple[float, float]:
        """The float in force: its SoC (%) and voltage per cell (V)."""
        if self.raised(now_s):
            assert self._raised is not None
            return self._raised
        return self._base

    def reached(self, soc_pct: float, now_s: float) -> str:
        """The reason bulk ends at the float in force, the pack SoC at ``soc_pct`` (%): a raised
        float says so, from what and why (a user reads 94.2 % where 93 is configured)."""
        base = self._base[0]
        if not self.raised(now_s):
            return f"float SoC reached ({soc_pct:.1f} % >= {base:g} %)"
        assert self._raised is not None
        assert self.deep_s is not None
        return (
            f"float SoC reached ({soc_pct:.1f} % >= {self._raised[0]:.1f} %, raised from"
            f" {base:g} %: SoC below {100.0 - base:g} % {(now_s - self.deep_s) / DAY_S:.1f}"
            " days ago)"
        )

    def recharge(self, soc_pct: float | None, now_s: float) -> str:
        """A reason for the floating pack to return to bulk when its SoC (%, estimate) is
        ``float_recharge_pct`` or more below the float SoC in force *and* below the highest SoC
        seen in this float (``peak_pct``): a load took charge out of the floating pack, else
        ``""`` (also without an estimate, or with ``float_recharge_pct`` 0). A float that began
        below its SoC (the top reached first, an estimate behind after absorption) waits for
        the SoC to fall that far in float, instead of going back to bulk at once."""
        band = self.config.float_recharge_pct
        if band <= 0.0 or soc_pct is None or not math.isfinite(soc_pct):
            return ""
        peak = soc_pct if self.peak_pct is None else max(self.peak_pct, soc_pct)
        level = self.level(now_s)[0]
        if not soc_pct <= min(level, peak) - band:
            return ""
        return f"SoC {soc_pct:.1f} % at least {band:g} % below the float {level:.1f} %: recharge"

    def lapsed(self, now_s: float) -> str:
        """A reason when the raised float has lapsed since the last call (the float voltage
        falls back to the configured one), else ``""``."""
        raised = self.raised(now_s)
        was, self._was_raised = self._was_raised, raised
        if not was or raised:
            return ""
        days, base = self.config.float_raise_days, self._base[0]
        return f"float back to {base:g} % (no SoC below {100.0 - base:g} % for {days:g} days)"
