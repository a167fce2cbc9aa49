"""Cell chemistries: open-circuit voltage against state of charge, and nominal cell parameters.

The built-in tables ship as package data in ``gateway/data/ocv/`` and are generated from PyBaMM
by ``scripts/gen_ocv.py``: ``<name>.csv`` (OCV against SoC), ``<name>_params.csv`` (voltage
window and a first-order circuit fitted to a pulse) and ``<name>_r_temp.csv`` (how resistance
scales with temperature). They are read once, on first use, from the installed package (constant
data, not configuration). Users may supply their own OCV table as CSV through the settings, in
the form they have it (SoC in % or as a fraction, OCV in V or mV, with or without a header;
optionally a third column ``docv_dt_mv_per_k``); ``parse_ocv_table`` checks it and says what it
detected (the caller reads the file) and ``Chemistry.with_ocv`` puts it in place.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import enum
import functools
import itertools
import math
import re
from dataclasses import dataclass
from importlib import resources

from gateway.core.tables import interp

__all__ = [
    "CHEMISTRIES",
    "Chemistry",
    "OcvTable",
    "OcvTableFormat",
    "SocUnit",
    "UnitSource",
    "VoltageUnit",
    "get_chemistry",
    "parse_ocv_csv",
    "parse_ocv_table",
]

CHEMISTRIES: tuple[str, ...] = ("lfp", "nmc")
"""Names of the built-in chemistries."""

_REF_TEMP_C = 25.0

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
        # tables.interp inlined (the estimator calls this per cell per step).
        xs, ys = self.soc_pct, self.ocv_v
        if soc_pct <= xs[0]:
            v = ys[0]
        elif soc_pct >= xs[-1]:
            v = ys[-1]
        else:
            i = bisect.bisect_right(xs, soc_pct)
            x0, y0 = xs[i - 1], ys[i - 1]
            v = y0 + (ys[i] - y0) * (soc_pct - x0) / (xs[i] - x0)
        if self.docv_dt_mv_per_k and temp_c != _REF_TEMP_C:
            v += interp(soc_pct, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
        return v

    def soc(self, ocv_v: float, temp_c: float = _REF_TEMP_C) -> float:
        """SoC at ``ocv_v`` (clamped) and ``temp_c``; on a flat stretch, the middle of it."""
        if self.docv_dt_mv_per_k and temp_c != _REF_TEMP_C:
            s = self._soc_25(ocv_v)
            # Refer the voltage to 25 degC with the coefficient where we landed; twice is plenty
            # (the coefficient is a few tenths of a mV/K and changes slowly).
            for _ in range(2):
                dv = interp(s, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
                s = self._soc_25(ocv_v - dv)
            return s
        return self._soc_25(ocv_v)

    def _soc_25(self, ocv_v: float) -> float:
        xs, ys = self.ocv_v, self.soc_pct
        if ocv_v <= xs[0]:
            return ys[0]
        if ocv_v >= xs[-1]:
            return ys[-1]
        lo = bisect.bisect_left(xs, ocv_v)
        if xs[lo] == ocv_v:  # exactly on one or more table points
            hi = bisect.bisect_right(xs, ocv_v, lo)
            return (ys[lo] + ys[hi - 1]) / 2
        x0, y0 = xs[lo - 1], ys[lo - 1]
        return y0 + (ys[lo] - y0) * (ocv_v - x0) / (xs[lo] - x0)

    def slope(self, soc_pct: float) -> float:
        """dOCV/dSoC in volts per percent at ``soc_pct``."""
        xs, ys = self.soc_pct, self.ocv_v
        i = bisect.bisect_right(xs, soc_pct)
        if i < 1:
            i = 1
        elif i > len(xs) - 1:
            i = len(xs) - 1
        return (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])


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


class SocUnit(enum.Enum):
    """How a user OCV table gives the SoC."""

    PERCENT = "percent"
    FRACTION = "fraction"


class VoltageUnit(enum.Enum):
    """How a user OCV table gives the OCV."""

    VOLT = "V"
    MILLIVOLT = "mV"


class UnitSource(enum.Enum):
    """Where a unit of a user OCV table was read from."""

    HEADER = "header"
    VALUES = "values"


@dataclass(frozen=True, slots=True)
class OcvTableFormat:
    """What ``parse_ocv_table`` made of a user's file (said back by ``check-config``)."""

    header: tuple[str, ...]
    """The header's column names as written; empty when the file has none."""
    soc_column: int
    ocv_column: int
    soc_unit: SocUnit
    soc_unit_from: UnitSource
    voltage_unit: VoltageUnit
    voltage_unit_from: UnitSource
    delimiter: str
    rows: int
    descending: bool
    """The rows ran from full to empty (they were reversed)."""

    def describe(self, table: OcvTable) -> str:
        """One line for a person: columns, units and where each was read from, the range."""
        if self.header:
            head = (
                f"header {','.join(self.header)!r}: SoC in column {self.soc_column + 1} "
                f"({self.header[self.soc_column]!r}), OCV in column {self.ocv_column + 1} "
                f"({self.header[self.ocv_column]!r})"
            )
        else:
            head = "no header: SoC in column 1, OCV in column 2"
        order = ", rows from full to empty (reversed)" if self.descending else ""
        delim = {",": "comma", ";": "semicolon", "\t": "tab"}[self.delimiter]
        return (
            f"{head}; SoC as a {self.soc_unit.value} (from the {self.soc_unit_from.value}), "
            f"OCV in {self.voltage_unit.value} (from the {self.voltage_unit_from.value}); "
            f"{delim}-separated, {self.rows} rows{order}; "
            f"{table.soc_pct[0]:g}..{table.soc_pct[-1]:g} % -> "
            f"{table.ocv_v[0]:.3f}..{table.ocv_v[-1]:.3f} V"
        )


_TEMP_COEF_COLUMN = "docv_dt_mv_per_k"
_MV = re.compile(r"(^|[^a-z])mv($|[^a-z])")
_V = re.compile(r"(^|[\s_(\[/,])v($|[\s)\]])|(^|[^a-z])volts($|[^a-z])")
_PCT = re.compile(r"%|(^|[^a-z])(pct|percent)($|[^a-z])")
_FRAC = re.compile(r"(^|[^a-z])(frac|fraction)($|[^a-z])|0\s*(-|\.\.|to)\s*1\b")


def _is_soc(name: str) -> bool:
    return "soc" in name or "state of charge" in name or "state_of_charge" in name


def _is_ocv(name: str) -> bool:
    bare = re.split(r"[\s_(\[/]", name, maxsplit=1)[0]
    return "ocv" in name or "volt" in name or bare in {"v", "u", "mv", "emf", "e"}


def parse_ocv_csv(text: str, source: str) -> OcvTable:
    """Parse a user OCV table; see ``parse_ocv_table`` (this returns the table only)."""
    return parse_ocv_table(text, source)[0]


def parse_ocv_table(text: str, source: str) -> tuple[OcvTable, OcvTableFormat]:
    """Parse an OCV table as users have them: SoC and OCV columns, with or without a header.

    * Separator: comma, semicolon (then a decimal comma is accepted) or tab, from the first row.
    * Header: present when the first row is not all numbers. It names a SoC column (``soc``,
      ``state of charge``) and an OCV column (``ocv``, ``volt``, ``v``, ``u``), in any order,
      optionally a third ``docv_dt_mv_per_k`` (the OCV's temperature coefficient). Units come
      from the names where they say (``%``, ``pct``, ``percent``, ``fraction``, ``0-1``;
      ``mV``, ``V``, ``volts``), otherwise from the values (SoC: fraction when no value exceeds
      1; OCV: mV when a value exceeds 100). A header unit the values contradict is an error.
    * No header: SoC in the first column, OCV in the second, units from the values.
    * Rows from full to empty are reversed. Lines starting with ``#`` are comments.

    Row numbers in errors are line numbers of ``text``.

    Returns:
        The table (SoC in %, OCV in V) and what was detected (``OcvTableFormat.describe``).

    Raises:
        ValueError: whose message starts with ``source:row:`` and says what is wrong.
    """
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise ValueError(f"{source}:1: empty table; expected SoC and OCV columns ('soc_pct,ocv_v')")
    first = numbered[0][1]
    delim = ";" if ";" in first else ("\t" if "\t" in first else ",")
    rows = [
        (n, [c.strip() for c in next(csv.reader([line], delimiter=delim))]) for n, line in numbered
    ]
    if delim == ";":
        rows = [(n, [c.replace(",", ".") for c in r]) for n, r in rows]
    head_no, head = rows[0]
    has_header = not all(_is_number(c) for c in head)
    soc_col, ocv_col, coef_col = 0, 1, -1
    soc_unit: SocUnit | None = None
    v_unit: VoltageUnit | None = None
    names: tuple[str, ...] = ()
    if has_header:
        names = tuple(head)
        low = [c.lower() for c in head]
        coef_i = [k for k, c in enumerate(low) if c == _TEMP_COEF_COLUMN]
        socs_i = [k for k, c in enumerate(low) if k not in coef_i and _is_soc(c)]
        ocvs_i = [
            k for k, c in enumerate(low) if k not in coef_i and k not in socs_i and _is_ocv(c)
        ]
        if len(socs_i) != 1 or len(ocvs_i) != 1 or len(head) != 2 + len(coef_i):
            raise ValueError(
                f"{source}:{head_no}: header {','.join(head)!r} must name one SoC column and one "
                f"OCV column (e.g. 'soc_pct,ocv_v' or 'SOC (%),OCV (mV)'), optionally "
                f"'{_TEMP_COEF_COLUMN}'"
            )
        soc_col, ocv_col = socs_i[0], ocvs_i[0]
        coef_col = coef_i[0] if coef_i else -1
        if _PCT.search(low[soc_col]):
            soc_unit = SocUnit.PERCENT
        elif _FRAC.search(low[soc_col]):
            soc_unit = SocUnit.FRACTION
        if _MV.search(low[ocv_col]):
            v_unit = VoltageUnit.MILLIVOLT
        elif _V.search(low[ocv_col]):
            v_unit = VoltageUnit.VOLT
        rows = rows[1:]
    ncol = len(head)
    data: list[tuple[int, float, float, float]] = []
    for lineno, row in rows:
        if len(row) != ncol:
            raise ValueError(f"{source}:{lineno}: expected {ncol} columns, got {len(row)}")
        try:
            vals = [float(c) for c in row]
        except ValueError:
            raise ValueError(f"{source}:{lineno}: not a number: {delim.join(row)!r}") from None
        data.append(
            (lineno, vals[soc_col], vals[ocv_col], vals[coef_col] if coef_col >= 0 else 0.0)
        )
    if len(data) < 2:
        raise ValueError(f"{source}: an OCV table needs at least two rows")
    for lineno, soc_raw, v_raw, _ in data:
        if not math.isfinite(soc_raw):
            raise ValueError(f"{source}:{lineno}: soc_pct (={soc_raw}) must be within 0..100")
        if not math.isfinite(v_raw):
            raise ValueError(f"{source}:{lineno}: ocv_v (={v_raw}) must be within 0.5..5.5 V")
    soc_max = max(abs(d[1]) for d in data)
    v_max = max(abs(d[2]) for d in data)
    soc_from = v_from = UnitSource.HEADER
    if soc_unit is None:
        soc_from = UnitSource.VALUES
        soc_unit = SocUnit.FRACTION if soc_max <= 1.0 else SocUnit.PERCENT
    elif soc_unit is SocUnit.PERCENT and soc_max <= 1.0:
        raise ValueError(
            f"{source}:{head_no}: the SoC column {names[soc_col]!r} says percent but no value "
            f"exceeds 1 (a fraction? then say so in the header, e.g. 'soc_fraction')"
        )
    elif soc_unit is SocUnit.FRACTION and soc_max > 1.0:
        raise ValueError(
            f"{source}:{head_no}: the SoC column {names[soc_col]!r} says fraction but values "
            f"exceed 1 (up to {soc_max:g})"
        )
    if v_unit is None:
        v_from = UnitSource.VALUES
        v_unit = VoltageUnit.MILLIVOLT if v_max > 100.0 else VoltageUnit.VOLT
    elif (v_unit is VoltageUnit.MILLIVOLT) != (v_max > 100.0):
        raise ValueError(
            f"{source}:{head_no}: the OCV column {names[ocv_col]!r} says {v_unit.value} but its "
            f"values reach {v_max:g}"
        )
    soc_f = 100.0 if soc_unit is SocUnit.FRACTION else 1.0
    v_f = 0.001 if v_unit is VoltageUnit.MILLIVOLT else 1.0
    descending = len(data) >= 2 and all(b[1] < a[1] for a, b in itertools.pairwise(data))
    if descending:
        data.reverse()
    socs: list[float] = []
    volts: list[float] = []
    coefs: list[float] = []
    for lineno, soc_raw, v_raw, coef in data:
        soc, volt = soc_raw * soc_f, v_raw * v_f
        if not 0.0 <= soc <= 100.0:  # also rejects nan
            raise ValueError(f"{source}:{lineno}: soc_pct (={soc:g}) must be within 0..100")
        if not 0.5 <= volt <= 5.5:
            raise ValueError(f"{source}:{lineno}: ocv_v (={volt:g}) must be within 0.5..5.5 V")
        if socs and soc <= socs[-1]:
            raise ValueError(
                f"{source}:{lineno}: soc_pct must increase (={soc:g} after {socs[-1]:g})"
            )
        if volts and volt < volts[-1]:
            raise ValueError(
                f"{source}:{lineno}: ocv_v must not decrease (={volt:g} after {volts[-1]:g})"
            )
        if coef_col >= 0:
            if not -5.0 <= coef <= 5.0:
                raise ValueError(
                    f"{source}:{lineno}: {_TEMP_COEF_COLUMN} (={coef:g}) must be within -5..5"
                )
            coefs.append(coef)
        socs.append(soc)
        volts.append(volt)
    table = OcvTable(tuple(socs), tuple(volts), tuple(coefs))
    fmt = OcvTableFormat(
        header=names,
        soc_column=soc_col,
        ocv_column=ocv_col,
        soc_unit=soc_unit,
        soc_unit_from=soc_from,
        voltage_unit=v_unit,
        voltage_unit_from=v_from,
        delimiter=delim,
        rows=len(data),
        descending=descending,
    )
    return table, fmt


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
