"""Cell chemistries: open-circuit voltage against state of charge, and nominal cell parameters.

The built-in tables ship as package data in ``gateway/data/ocv/`` and are generated from PyBaMM
by ``scripts/gen_ocv.py``: ``<name>.csv`` (OCV against SoC), ``<name>_params.csv`` (voltage
window and a first-order circuit fitted to a pulse) and ``<name>_r_temp.csv`` (how resistance
scales with temperature). They are read once, on first use, from the installed package (constant
data, not configuration). Users may supply their own OCV table as CSV through the settings, in
the form they have it (SoC in % or as a fraction, OCV in V or mV, with or without a header;
optionally a third column ``docv_dt_mv_per_k``); ``gateway.core.ocv_file.parse_ocv_table`` checks
it and says what it detected (the caller reads the file) and ``Chemistry.with_ocv`` puts it in
place.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from importlib import resources

from gateway.core.ocv import REF_TEMP_C as _REF_TEMP_C
from gateway.core.ocv import OcvTable
from gateway.core.ocv_file import parse_ocv_csv
from gateway.core.tables import interp

__all__ = [
    "CHEMISTRIES",
    "Chemistry",
    "OcvTable",
    "get_chemistry",
]

CHEMISTRIES: tuple[str, ...] = ("lfp", "nmc")
"""Names of the built-in chemistries."""


_HYSTERESIS_MV = {"lfp": 10.0, "nmc": 3.0}
"""Typical half-hysteresis per chemistry (mV); see ``Chemistry.hysteresis_mv``."""

_SLOW_RC = {"lfp": (0.0, 1200.0), "nmc": (0.0, 1200.0)}
"""Slow RC branch per chemistry: (R2 in mOhm * Ah, tau2 in s); R2 = 0: none. The slow branch's
current (tau2) also marks the slow transients the online identification learns from. Fitted to
the Chen2020 tuning day (SPMe voltage less the OCV at the true SoC, with R0, R1 at the
generated tau1 and an offset), nmc would have R2 = 28 mOhm * Ah at tau2 = 1200 s; that helped
Chen2020 and the cells derived from it and made held-out cells worse, so it is not shipped
(docs/PERFORMANCE.md, "State of charge: cross-validation"). LFP (Prada2013): a slow pair did
not fit its day better (7.7 against 7.7 mV rms)."""


@dataclass(frozen=True, slots=True)
class Chemistry:
    """A chemistry's OCV curve and nominal cell parameters.

    Resistances are given per capacity (mOhm * Ah) at 25 degC so that they scale to any cell:
    a 100 Ah cell of the same build has a hundredth of a 1 Ah cell's resistance.
    """

    name: str
    ocv: OcvTable
    nominal_v: float
    max_v: float  # end-of-charge voltage
    min_v: float  # end-of-discharge voltage
    r0_mohm_ah: float  # ohmic resistance times capacity (mOhm * Ah): r0 = r0_mohm_ah / capacity
    r1_mohm_ah: float  # RC branch resistance times capacity
    tau1_s: float  # RC branch time constant
    entropic_mv_per_k: float = 0.0  # temperature coefficient of OCV near mid SoC
    r_temp: tuple[tuple[float, float], ...] = ((_REF_TEMP_C, 1.0),)
    """Resistance factor against temperature: ``(temp_c, factor)`` rows, 1.0 at 25 degC."""
    source: str = ""
    """Where the tables come from (parameter set and generator), for reports."""
    hysteresis_mv: float = 0.0
    """Half the OCV hysteresis between the charge and discharge branches (mV): a rested voltage
    is the OCV only to within it. Typical values, not from the generated tables (PyBaMM's
    single-branch OCV has none): LFP 10..30 mV on the plateau, NMC a few mV."""
    r2_mohm_ah: float = 0.0
    """Slow RC branch (solid diffusion over long loads) resistance times capacity; 0: none."""
    tau2_s: float = 1200.0
    """Slow RC branch time constant (s)."""

    def r0_ohm(self, capacity_ah: float, temp_c: float = _REF_TEMP_C) -> float:
        """Ohmic resistance of a cell of ``capacity_ah`` at ``temp_c``."""
        return self.r0_mohm_ah / capacity_ah / 1000.0 * self.r_temp_factor(temp_c)

    def r1_ohm(self, capacity_ah: float) -> float:
        """RC branch resistance of a cell of ``capacity_ah``."""
        return self.r1_mohm_ah / capacity_ah / 1000.0

    def r2_ohm(self, capacity_ah: float) -> float:
        """Slow RC branch resistance of a cell of ``capacity_ah``."""
        return self.r2_mohm_ah / capacity_ah / 1000.0

    def r_temp_factor(self, temp_c: float) -> float:
        """Resistance at ``temp_c`` over resistance at 25 degC (clamped to the table's range)."""
        rows = self.r_temp
        if len(rows) == 1:
            return rows[0][1]
        ts = tuple(t for t, _ in rows)
        fs = tuple(f for _, f in rows)
        return interp(temp_c, ts, fs)

    def ocv_voltage(self, soc_pct: float, temp_c: float = _REF_TEMP_C) -> float:
        """OCV at ``soc_pct`` and ``temp_c``."""
        ocv = self.ocv
        v = ocv.voltage(soc_pct, temp_c)
        if self.entropic_mv_per_k and not ocv.docv_dt_mv_per_k:
            v += self.entropic_mv_per_k * (temp_c - _REF_TEMP_C) / 1e3
        return v

    def ocv_soc(self, ocv_v: float, temp_c: float = _REF_TEMP_C) -> float:
        """SoC whose OCV at ``temp_c`` is ``ocv_v``."""
        ocv = self.ocv
        if ocv.docv_dt_mv_per_k:
            return ocv.soc(ocv_v, temp_c)
        if self.entropic_mv_per_k:
            ocv_v -= self.entropic_mv_per_k * (temp_c - _REF_TEMP_C) / 1e3
        # OcvTable.soc at 25 degC (no temperature coefficient in the table) is _soc_25.
        return ocv._soc_25(ocv_v)

    def with_ocv(self, table: OcvTable) -> Chemistry:
        """This chemistry with a user's OCV table in place of the built-in one."""
        return dataclasses.replace(self, ocv=table, source=f"{self.source}; user OCV table")


def _read(name: str) -> str:
    return resources.files("gateway").joinpath("data", "ocv", name).read_text(encoding="utf-8")


def _parse_key_values(text: str, source: str) -> dict[str, str]:
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if not rows or rows[0] != ["key", "value"]:
        raise ValueError(f"{source}:1: header must be 'key,value'")
    return {r[0]: r[1] for r in rows[1:] if len(r) == 2}


def _parse_r_temp(text: str, source: str) -> tuple[tuple[float, float], ...]:
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if not rows or rows[0] != ["temp_c", "factor"]:
        raise ValueError(f"{source}:1: header must be 'temp_c,factor'")
    out = tuple((float(t), float(f)) for t, f in rows[1:])
    if len(out) < 1 or any(b[0] <= a[0] for a, b in itertools.pairwise(out)):
        raise ValueError(f"{source}: temp_c must increase")
    return out


@functools.cache
def get_chemistry(name: str) -> Chemistry:
    """The built-in chemistry ``name`` (``lfp`` or ``nmc``), from the shipped tables."""
    if name not in CHEMISTRIES:
        raise ValueError(f"chemistry (={name!r}) must be one of {sorted(CHEMISTRIES)}")
    ocv_name, params_name, r_name = f"{name}.csv", f"{name}_params.csv", f"{name}_r_temp.csv"
    ocv = parse_ocv_csv(_read(ocv_name), ocv_name)
    params = _parse_key_values(_read(params_name), params_name)
    return Chemistry(
        name=name,
        ocv=ocv,
        nominal_v=float(params["nominal_v"]),
        max_v=float(params["max_v"]),
        min_v=float(params["min_v"]),
        r0_mohm_ah=float(params["r0_mohm_ah"]),
        r1_mohm_ah=float(params["r1_mohm_ah"]),
        tau1_s=float(params["tau1_s"]),
        r_temp=_parse_r_temp(_read(r_name), r_name),
        source=params.get("source", ""),
        hysteresis_mv=_HYSTERESIS_MV[name],
        r2_mohm_ah=_SLOW_RC[name][0],
        tau2_s=_SLOW_RC[name][1],
    )
