"""A user's OCV table, in the form they have it: parsed, checked and described back. Pure.

Users supply their own OCV-vs-SoC table as CSV through the settings (``soc.ocv_table``): SoC
in % or as a fraction, OCV in V or mV, with or without a header, optionally a third column
``docv_dt_mv_per_k``. ``parse_ocv_table`` checks it and says what it detected (the caller reads
the file; ``gateway.state_store.read_ocv_table``), and ``Chemistry.with_ocv``
(:mod:`gateway.core.chemistry`) puts it in place. The built-in tables are read by the same
parser. Every error names the file and line.
"""

from __future__ import annotations

import csv
import enum
import itertools
import math
import re
from dataclasses import dataclass

from gateway.core.ocv import OcvTable

__all__ = [
    "MAX_ROWS",
    "MIN_RISE_V",
    "OcvTableFormat",
    "SocUnit",
    "UnitSource",
    "VoltageUnit",
    "parse_ocv_csv",
    "parse_ocv_table",
]


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
                f"header {self.delimiter.join(self.header)!r}: SoC in column {self.soc_column + 1} "
                f"({self.header[self.soc_column]!r}), OCV in column {self.ocv_column + 1} "
                f"({self.header[self.ocv_column]!r})"
            )
        else:
            head = "no header: SoC in column 1, OCV in column 2"
        order = ", rows from full to empty (reversed)" if self.descending else ""
        delim = {",": "comma", ";": "semicolon", "\t": "tab"}[self.delimiter]
        lo, hi = table.soc_pct[0], table.soc_pct[-1]
        # OcvTable clamps at its ends: outside them a voltage cannot say more than the end SoC.
        partial = (
            " only (not 0..100 %: SoC from a voltage stays within it)"
            if lo > 0.0 or hi < 100.0
            else ""
        )
        return (
            f"{head}; SoC as a {self.soc_unit.value} (from the {self.soc_unit_from.value}), "
            f"OCV in {self.voltage_unit.value} (from the {self.voltage_unit_from.value}); "
            f"{delim}-separated, {self.rows} rows{order}; "
            f"{lo:g}..{hi:g} %{partial} -> {table.ocv_v[0]:.3f}..{table.ocv_v[-1]:.3f} V"
        )


MAX_ROWS = 10_000
"""Most data rows a table may have (real tables have 10..2000): a bound on memory and time."""
MIN_RISE_V = 0.005
"""Least OCV rise from the first row to the last. The built-in LFP table (Prada2013) rises 6.3 mV
over its flattest 20 % of SoC (47..67 %), 140 mV from 10 to 90 %: a real table over 20 % of
SoC or more rises more than this; a flatter one cannot tell SoC from voltage."""

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
    * At most ``MAX_ROWS`` data rows; the OCV must rise by ``MIN_RISE_V`` or more from the first
      row to the last (flat stretches inside are fine).

    Row numbers in errors are line numbers of ``text``.

    Returns:
        The table (SoC in %, OCV in V) and what was detected (``OcvTableFormat.describe``).

    Raises:
        ValueError: whose message starts with ``source:row:`` and says what is wrong.
    """
    delim, rows = _rows(text, source)
    head_no, head = rows[0]
    cols = _Columns()
    if not all(_is_number(c) for c in head):
        cols = _header(head, head_no, source)
        rows = rows[1:]
    data = _numbers(rows, len(head), cols, delim, source)
    soc_unit, soc_from = _soc_unit(data, cols, head_no, source)
    v_unit, v_from = _voltage_unit(data, cols, head_no, source)
    descending = len(data) >= 2 and all(b[1] < a[1] for a, b in itertools.pairwise(data))
    if descending:
        data.reverse()
    try:
        table = _table(
            data,
            100.0 if soc_unit is SocUnit.FRACTION else 1.0,
            0.001 if v_unit is VoltageUnit.MILLIVOLT else 1.0,
            cols.coef >= 0,
            source,
        )
    except ValueError as e:
        if not cols.names and _looks_swapped(data):
            first = data[0]
            raise ValueError(
                f"{source}:{first[0]}: the columns look swapped: without a header SoC is the "
                f"first column and OCV the second, but the first holds voltages (first row "
                f"{first[1]:g},{first[2]:g}); swap them or add a header naming them, e.g. "
                f"'ocv_v,soc_pct'"
            ) from e
        raise
    _check_rise(table, source)
    fmt = OcvTableFormat(
        header=cols.names,
        soc_column=cols.soc,
        ocv_column=cols.ocv,
        soc_unit=soc_unit,
        soc_unit_from=soc_from,
        voltage_unit=v_unit,
        voltage_unit_from=v_from,
        delimiter=delim,
        rows=len(data),
        descending=descending,
    )
    return table, fmt


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where the columns are and what the header says of their units (``None``: nothing)."""

    soc: int = 0
    ocv: int = 1
    coef: int = -1  # the temperature coefficient's column; -1: none
    soc_unit: SocUnit | None = None
    voltage_unit: VoltageUnit | None = None
    names: tuple[str, ...] = ()  # the header as written; empty without one


_Row = tuple[int, float, float, float]  # line number, SoC, OCV, dOCV/dT (as written)


def _rows(text: str, source: str) -> tuple[str, list[tuple[int, list[str]]]]:
    """The separator and the numbered rows of cells (comments and blank lines dropped; with
    ``;`` a decimal comma becomes a point)."""
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise ValueError(f"{source}:1: empty table; expected SoC and OCV columns ('soc_pct,ocv_v')")
    if len(numbered) > MAX_ROWS + 1:  # + 1: a header
        raise ValueError(
            f"{source}: {len(numbered)} lines: an OCV table may have at most {MAX_ROWS} rows "
            "and a header (real tables have 10..2000 rows)"
        )
    first = numbered[0][1]
    delim = ";" if ";" in first else ("\t" if "\t" in first else ",")
    rows = []
    for n, line in numbered:
        try:
            rows.append((n, [c.strip() for c in next(csv.reader([line], delimiter=delim))]))
        except csv.Error as e:  # a field over the csv module's limit (128 KiB), a stray quote
            raise ValueError(f"{source}:{n}: not a table row: {e}") from None
    if delim == ";":
        rows = [(n, [c.replace(",", ".") for c in r]) for n, r in rows]
    return delim, rows


def _header(head: list[str], head_no: int, source: str) -> _Columns:
    """The columns a header names, and the units its names say."""
    low = [c.lower() for c in head]
    coef_i = [k for k, c in enumerate(low) if c == _TEMP_COEF_COLUMN]
    socs_i = [k for k, c in enumerate(low) if k not in coef_i and _is_soc(c)]
    ocvs_i = [k for k, c in enumerate(low) if k not in coef_i and k not in socs_i and _is_ocv(c)]
    if len(socs_i) != 1 or len(ocvs_i) != 1 or len(head) != 2 + len(coef_i):
        raise ValueError(
            f"{source}:{head_no}: header {','.join(head)!r} must name one SoC column and one "
            f"OCV column (e.g. 'soc_pct,ocv_v' or 'SOC (%),OCV (mV)'), optionally "
            f"'{_TEMP_COEF_COLUMN}'"
        )
    soc_col, ocv_col = socs_i[0], ocvs_i[0]
    soc_unit: SocUnit | None = None
    v_unit: VoltageUnit | None = None
    if _PCT.search(low[soc_col]):
        soc_unit = SocUnit.PERCENT
    elif _FRAC.search(low[soc_col]):
        soc_unit = SocUnit.FRACTION
    if _MV.search(low[ocv_col]):
        v_unit = VoltageUnit.MILLIVOLT
    elif _V.search(low[ocv_col]):
        v_unit = VoltageUnit.VOLT
    coef_col = coef_i[0] if coef_i else -1
    return _Columns(soc_col, ocv_col, coef_col, soc_unit, v_unit, tuple(head))


def _numbers(
    rows: list[tuple[int, list[str]]], ncol: int, cols: _Columns, delim: str, source: str
) -> list[_Row]:
    """Each data row as numbers: at least two rows, every SoC and OCV finite."""
    data: list[_Row] = []
    for lineno, row in rows:
        if len(row) != ncol:
            raise ValueError(f"{source}:{lineno}: expected {ncol} columns, got {len(row)}")
        try:
            vals = [float(c) for c in row]
        except ValueError:
            raise ValueError(f"{source}:{lineno}: not a number: {delim.join(row)!r}") from None
        coef = vals[cols.coef] if cols.coef >= 0 else 0.0
        data.append((lineno, vals[cols.soc], vals[cols.ocv], coef))
    if len(data) < 2:
        raise ValueError(f"{source}: an OCV table needs at least two rows")
    for lineno, soc_raw, v_raw, _ in data:
        if not math.isfinite(soc_raw):
            raise ValueError(f"{source}:{lineno}: soc_pct (={soc_raw}) must be within 0..100")
        if not math.isfinite(v_raw):
            raise ValueError(f"{source}:{lineno}: ocv_v (={v_raw}) must be within 0.5..5.5 V")
    return data


def _soc_unit(
    data: list[_Row], cols: _Columns, head_no: int, source: str
) -> tuple[SocUnit, UnitSource]:
    """The SoC unit: the header's, checked against the values, or from the values."""
    soc_max = max(abs(d[1]) for d in data)
    unit = cols.soc_unit
    if unit is None:
        return (SocUnit.FRACTION if soc_max <= 1.0 else SocUnit.PERCENT), UnitSource.VALUES
    name = cols.names[cols.soc]
    if unit is SocUnit.PERCENT and soc_max <= 1.0:
        raise ValueError(
            f"{source}:{head_no}: the SoC column {name!r} says percent but no value "
            f"exceeds 1 (a fraction? then say so in the header, e.g. 'soc_fraction')"
        )
    if unit is SocUnit.FRACTION and soc_max > 1.0:
        raise ValueError(
            f"{source}:{head_no}: the SoC column {name!r} says fraction but values "
            f"exceed 1 (up to {soc_max:g})"
        )
    return unit, UnitSource.HEADER


def _voltage_unit(
    data: list[_Row], cols: _Columns, head_no: int, source: str
) -> tuple[VoltageUnit, UnitSource]:
    """The OCV unit: the header's, checked against the values, or from the values."""
    v_max = max(abs(d[2]) for d in data)
    unit = cols.voltage_unit
    if unit is None:
        return (VoltageUnit.MILLIVOLT if v_max > 100.0 else VoltageUnit.VOLT), UnitSource.VALUES
    if (unit is VoltageUnit.MILLIVOLT) != (v_max > 100.0):
        raise ValueError(
            f"{source}:{head_no}: the OCV column {cols.names[cols.ocv]!r} says {unit.value} but"
            f" its values reach {v_max:g}"
        )
    return unit, UnitSource.HEADER


def _table(data: list[_Row], soc_f: float, v_f: float, has_coef: bool, source: str) -> OcvTable:
    """The table in % and V from rows ordered from empty to full, checked row by row."""
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
        if has_coef:
            if not -5.0 <= coef <= 5.0:
                raise ValueError(
                    f"{source}:{lineno}: {_TEMP_COEF_COLUMN} (={coef:g}) must be within -5..5"
                )
            coefs.append(coef)
        socs.append(soc)
        volts.append(volt)
    return OcvTable(tuple(socs), tuple(volts), tuple(coefs))


def _looks_swapped(data: list[_Row]) -> bool:
    """The rows read the other way round would be a table: voltages first, SoC second."""
    firsts = [d[1] for d in data]
    volts = all(0.5 <= x <= 5.5 for x in firsts) or all(500.0 <= x <= 5500.0 for x in firsts)
    # ... and the second column cannot be an OCV (below 0.5 V), so the plain reading failed on it.
    seconds = [d[2] for d in data]
    return volts and all(0.0 <= x <= 100.0 for x in seconds) and min(seconds) < 0.5


def _check_rise(table: OcvTable, source: str) -> None:
    """The OCV must rise by ``MIN_RISE_V`` over the table: a flat one says nothing of SoC."""
    rise = table.ocv_v[-1] - table.ocv_v[0]
    if rise < MIN_RISE_V:
        raise ValueError(
            f"{source}: the OCV rises only {1000 * rise:.0f} mV from {table.soc_pct[0]:g} % to "
            f"{table.soc_pct[-1]:g} % (at least {1000 * MIN_RISE_V:.0f} mV): a SoC cannot be "
            "read from so flat a table (even LFP's plateau rises more over 20 % of SoC)"
        )


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
