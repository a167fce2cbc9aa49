"""Cell chemistries: open-circuit voltage against state of charge, and nominal cell parameters.

The built-in tables ship as package data in ``gateway/data/ocv/`` and are generated from PyBaMM
by ``scripts/gen_ocv.py``: ``<name>.csv`` (OCV against SoC), ``<name>_params.csv`` (voltage
window and a first-order circuit fitted to a pulse) and ``<name>_r_temp.csv`` (how resistance
scales with temperature). They are read once, on first use, from the installed package (constant
data, not configuration). Users may supply their own OCV table as CSV (``soc_pct,ocv_v`` rows,
optionally a third column ``docv_dt_mv_per_k``) through the settings; ``parse_ocv_csv`` checks it
(the caller reads the file) and ``Chemistry.with_ocv`` puts it in place.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import functools
import itertools
from dataclasses import dataclass
from importlib import resources

__all__ = [
    "CHEMISTRIES",
    "Chemistry",
    "OcvTable",
    "get_chemistry",
    "parse_ocv_csv",
]

CHEMISTRIES: tuple[str, ...] = ("lfp", "nmc")
"""Names of the built-in chemistries."""

_REF_TEMP_C = 25.0

_HYSTERESIS_MV = {"lfp": 10.0, "nmc": 3.0}
"""Typical half-hysteresis per chemistry (mV); see ``Chemistry.hysteresis_mv``."""


@dataclass(frozen=True, slots=True)
class OcvTable:
    """Piecewise-linear OCV curve; ``soc_pct`` strictly increasing, ``ocv_v`` non-decreasing.

    ``docv_dt_mv_per_k`` (optional, one value per row) is the OCV's temperature coefficient:
    ``OCV(soc, T) = OCV(soc) + dOCV/dT(soc) * (T - 25 degC)``.
    """

    soc_pct: tuple[float, ...]
    ocv_v: tuple[float, ...]
    docv_dt_mv_per_k: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.soc_pct) != len(self.ocv_v) or len(self.soc_pct) < 2:
            raise ValueError("an OCV table needs at least two rows of equal length")
        if any(b <= a for a, b in zip(self.soc_pct, self.soc_pct[1:], strict=False)):
            raise ValueError("soc_pct must be strictly increasing")
        if any(b < a for a, b in zip(self.ocv_v, self.ocv_v[1:], strict=False)):
            raise ValueError("ocv_v must not decrease as soc_pct increases")
        if self.docv_dt_mv_per_k and len(self.docv_dt_mv_per_k) != len(self.soc_pct):
            raise ValueError("docv_dt_mv_per_k needs one value per row")

    def voltage(self, soc_pct: float, temp_c: float = _REF_TEMP_C) -> float:
        """OCV at ``soc_pct`` (clamped to the table) and ``temp_c``."""
        v = _interp(soc_pct, self.soc_pct, self.ocv_v)
        if self.docv_dt_mv_per_k and temp_c != _REF_TEMP_C:
            v += _interp(soc_pct, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
        return v

    def soc(self, ocv_v: float, temp_c: float = _REF_TEMP_C) -> float:
        """SoC at ``ocv_v`` (clamped) and ``temp_c``; on a flat stretch, the middle of it."""
        s = self._soc_25(ocv_v)
        if self.docv_dt_mv_per_k and temp_c != _REF_TEMP_C:
            # Refer the voltage to 25 degC with the coefficient where we landed; twice is plenty
            # (the coefficient is a few tenths of a mV/K and changes slowly).
            for _ in range(2):
                dv = _interp(s, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
                s = self._soc_25(ocv_v - dv)
        return s

    def _soc_25(self, ocv_v: float) -> float:
        xs, ys = self.ocv_v, self.soc_pct
        if ocv_v <= xs[0]:
            return ys[0]
        if ocv_v >= xs[-1]:
            return ys[-1]
        lo = bisect.bisect_left(xs, ocv_v)
        hi = bisect.bisect_right(xs, ocv_v)
        if lo != hi:  # exactly on one or more table points
            return (ys[lo] + ys[hi - 1]) / 2
        x0, x1, y0, y1 = xs[lo - 1], xs[lo], ys[lo - 1], ys[lo]
        return y0 + (y1 - y0) * (ocv_v - x0) / (x1 - x0)

    def slope(self, soc_pct: float) -> float:
        """dOCV/dSoC in volts per percent at ``soc_pct``."""
        xs, ys = self.soc_pct, self.ocv_v
        i = min(max(bisect.bisect_right(xs, soc_pct), 1), len(xs) - 1)
        return (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])


def _interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


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

    def r0_ohm(self, capacity_ah: float, temp_c: float = _REF_TEMP_C) -> float:
        """Ohmic resistance of a cell of ``capacity_ah`` at ``temp_c``."""
        return self.r0_mohm_ah / capacity_ah / 1000.0 * self.r_temp_factor(temp_c)

    def r1_ohm(self, capacity_ah: float) -> float:
        """RC branch resistance of a cell of ``capacity_ah``."""
        return self.r1_mohm_ah / capacity_ah / 1000.0

    def r_temp_factor(self, temp_c: float) -> float:
        """Resistance at ``temp_c`` over resistance at 25 degC (clamped to the table's range)."""
        rows = self.r_temp
        if len(rows) == 1:
            return rows[0][1]
        ts = tuple(t for t, _ in rows)
        fs = tuple(f for _, f in rows)
        return _interp(temp_c, ts, fs)

    def ocv_voltage(self, soc_pct: float, temp_c: float = _REF_TEMP_C) -> float:
        """OCV at ``soc_pct`` and ``temp_c``."""
        v = self.ocv.voltage(soc_pct, temp_c)
        if self.entropic_mv_per_k and not self.ocv.docv_dt_mv_per_k:
            v += self.entropic_mv_per_k * (temp_c - _REF_TEMP_C) / 1e3
        return v

    def ocv_soc(self, ocv_v: float, temp_c: float = _REF_TEMP_C) -> float:
        """SoC whose OCV at ``temp_c`` is ``ocv_v``."""
        if self.entropic_mv_per_k and not self.ocv.docv_dt_mv_per_k:
            ocv_v -= self.entropic_mv_per_k * (temp_c - _REF_TEMP_C) / 1e3
        return self.ocv.soc(ocv_v, temp_c)

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
    )


def parse_ocv_csv(text: str, source: str) -> OcvTable:
    """Parse an OCV table: a header ``soc_pct,ocv_v`` and one row per point.

    An optional third column ``docv_dt_mv_per_k`` gives the OCV's temperature coefficient. Lines
    starting with ``#`` are comments. Row numbers in errors are line numbers of ``text``.

    Raises:
        ValueError: whose message starts with ``source:row:`` and says what is wrong.
    """
    lines = text.splitlines()
    numbered = [
        (n, row)
        for n, row in enumerate(csv.reader(lines), start=1)
        if row and not row[0].lstrip().startswith("#") and any(c.strip() for c in row)
    ]
    if not numbered:
        raise ValueError(f"{source}:1: empty table; header must be 'soc_pct,ocv_v'")
    head_no, head = numbered[0]
    header = [c.strip() for c in head]
    if header not in (["soc_pct", "ocv_v"], ["soc_pct", "ocv_v", "docv_dt_mv_per_k"]):
        raise ValueError(f"{source}:{head_no}: header must be 'soc_pct,ocv_v'")
    ncol = len(header)
    socs: list[float] = []
    volts: list[float] = []
    coefs: list[float] = []
    for lineno, row in numbered[1:]:
        if len(row) != ncol:
            raise ValueError(f"{source}:{lineno}: expected {ncol} columns, got {len(row)}")
        try:
            vals = [float(c) for c in row]
        except ValueError:
            raise ValueError(f"{source}:{lineno}: not a number: {','.join(row)!r}") from None
        soc, volt = vals[0], vals[1]
        if not 0.0 <= soc <= 100.0:  # also rejects nan
            raise ValueError(f"{source}:{lineno}: soc_pct (={soc}) must be within 0..100")
        if not 0.5 <= volt <= 5.5:
            raise ValueError(f"{source}:{lineno}: ocv_v (={volt}) must be within 0.5..5.5 V")
        if socs and soc <= socs[-1]:
            raise ValueError(f"{source}:{lineno}: soc_pct must increase (={soc} after {socs[-1]})")
        if volts and volt < volts[-1]:
            raise ValueError(
                f"{source}:{lineno}: ocv_v must not decrease (={volt} after {volts[-1]})"
            )
        if ncol == 3:
            if not -5.0 <= vals[2] <= 5.0:
                raise ValueError(
                    f"{source}:{lineno}: docv_dt_mv_per_k (={vals[2]}) must be within -5..5"
                )
            coefs.append(vals[2])
        socs.append(soc)
        volts.append(volt)
    if len(socs) < 2:
        raise ValueError(f"{source}: an OCV table needs at least two rows")
    return OcvTable(tuple(socs), tuple(volts), tuple(coefs))
