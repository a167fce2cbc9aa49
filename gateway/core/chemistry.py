"""Cell chemistries: open-circuit voltage against state of charge, and nominal cell parameters.

The tables here are the built-in defaults. ``scripts/gen_ocv.py`` regenerates them from PyBaMM;
users may supply their own table as CSV (``soc_pct,ocv_v`` rows) through the settings;
``parse_ocv_csv`` checks it (the caller reads the file).
"""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass

__all__ = ["CHEMISTRIES", "Chemistry", "OcvTable", "get_chemistry", "parse_ocv_csv"]


@dataclass(frozen=True, slots=True)
class OcvTable:
    """Piecewise-linear OCV curve; ``soc_pct`` strictly increasing, ``ocv_v`` non-decreasing."""

    soc_pct: tuple[float, ...]
    ocv_v: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.soc_pct) != len(self.ocv_v) or len(self.soc_pct) < 2:
            raise ValueError("an OCV table needs at least two rows of equal length")
        if any(b <= a for a, b in zip(self.soc_pct, self.soc_pct[1:], strict=False)):
            raise ValueError("soc_pct must be strictly increasing")
        if any(b < a for a, b in zip(self.ocv_v, self.ocv_v[1:], strict=False)):
            raise ValueError("ocv_v must not decrease as soc_pct increases")

    def voltage(self, soc_pct: float) -> float:
        """OCV at ``soc_pct`` (clamped to the table)."""
        return _interp(soc_pct, self.soc_pct, self.ocv_v)

    def soc(self, ocv_v: float) -> float:
        """SoC at ``ocv_v`` (clamped); on a flat stretch, the middle of it."""
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
    """A chemistry's OCV curve and nominal cell parameters (for a 100 Ah reference cell)."""

    name: str
    ocv: OcvTable
    nominal_v: float
    max_v: float  # end-of-charge voltage
    min_v: float  # end-of-discharge voltage
    r0_mohm_ah: float  # ohmic resistance times capacity (mOhm * Ah): r0 = r0_mohm_ah / capacity
    r1_mohm_ah: float  # RC branch resistance times capacity
    tau1_s: float  # RC branch time constant
    entropic_mv_per_k: float = 0.0  # temperature coefficient of OCV near mid SoC

    def r0_ohm(self, capacity_ah: float) -> float:
        """Ohmic resistance of a cell of ``capacity_ah``."""
        return self.r0_mohm_ah / capacity_ah / 1000.0

    def r1_ohm(self, capacity_ah: float) -> float:
        """RC branch resistance of a cell of ``capacity_ah``."""
        return self.r1_mohm_ah / capacity_ah / 1000.0


_LFP = Chemistry(
    name="lfp",
    ocv=OcvTable(
        soc_pct=(0, 2, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 100),
        ocv_v=(
            2.500,
            2.900,
            3.100,
            3.200,
            3.230,
            3.250,
            3.270,
            3.285,
            3.290,
            3.295,
            3.300,
            3.320,
            3.330,
            3.340,
            3.400,
            3.450,
        ),
    ),
    nominal_v=3.2,
    max_v=3.65,
    min_v=2.5,
    r0_mohm_ah=50.0,
    r1_mohm_ah=30.0,
    tau1_s=60.0,
)

_NMC = Chemistry(
    name="nmc",
    ocv=OcvTable(
        soc_pct=(0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100),
        ocv_v=(3.00, 3.35, 3.45, 3.55, 3.62, 3.67, 3.72, 3.80, 3.88, 3.97, 4.07, 4.18),
    ),
    nominal_v=3.65,
    max_v=4.2,
    min_v=3.0,
    r0_mohm_ah=80.0,
    r1_mohm_ah=40.0,
    tau1_s=40.0,
)

CHEMISTRIES: dict[str, Chemistry] = {"lfp": _LFP, "nmc": _NMC}


def get_chemistry(name: str) -> Chemistry:
    """The built-in chemistry ``name`` (``lfp`` or ``nmc``)."""
    try:
        return CHEMISTRIES[name]
    except KeyError:
        raise ValueError(f"chemistry (={name!r}) must be one of {sorted(CHEMISTRIES)}") from None


def parse_ocv_csv(text: str, source: str) -> OcvTable:
    """Parse a user OCV table: a header ``soc_pct,ocv_v`` and one row per point.

    Raises:
        ValueError: whose message starts with ``source:row:`` and says what is wrong.
    """
    rows = list(csv.reader(text.splitlines()))
    if not rows or [c.strip() for c in rows[0]] != ["soc_pct", "ocv_v"]:
        raise ValueError(f"{source}:1: header must be 'soc_pct,ocv_v'")
    socs: list[float] = []
    volts: list[float] = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise ValueError(f"{source}:{lineno}: expected 2 columns, got {len(row)}")
        try:
            soc, volt = float(row[0]), float(row[1])
        except ValueError:
            raise ValueError(f"{source}:{lineno}: not a number: {','.join(row)!r}") from None
        if not 0.0 <= soc <= 100.0:
            raise ValueError(f"{source}:{lineno}: soc_pct (={soc}) must be within 0..100")
        if not 0.5 <= volt <= 5.5:
            raise ValueError(f"{source}:{lineno}: ocv_v (={volt}) must be within 0.5..5.5 V")
        if socs and soc <= socs[-1]:
            raise ValueError(f"{source}:{lineno}: soc_pct must increase (={soc} after {socs[-1]})")
        if volts and volt < volts[-1]:
            raise ValueError(
                f"{source}:{lineno}: ocv_v must not decrease (={volt} after {volts[-1]})"
            )
        socs.append(soc)
        volts.append(volt)
    if len(socs) < 2:
        raise ValueError(f"{source}: an OCV table needs at least two rows")
    return OcvTable(tuple(socs), tuple(volts))
