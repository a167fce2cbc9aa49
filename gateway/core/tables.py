"""Piecewise-linear lookup tables that users can read (limit tapers, temperature derating).

A table is a list of knots ``(x, y)`` with strictly increasing ``x``; between knots the value is
interpolated linearly, outside them it is clamped to the end values. That is the form the leading
open-source Victron driver documents its tapers in, so users can compare settings one to one.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Table", "interp"]


def interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """The clamped piecewise-linear value at ``x`` of the knots ``(xs[i], ys[i])``.

    ``xs`` strictly increasing and as long as ``ys`` (not checked here: ``Table`` checks its own;
    callers with other tables check theirs). Below ``xs[0]`` it is ``ys[0]``, above ``xs[-1]``
    ``ys[-1]``; on a knot, that knot's ``y``. The one interpolator of the core (``Table`` and the
    chemistry tables use it).
    """
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1 = xs[i - 1], xs[i]
    y0, y1 = ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


@dataclass(frozen=True, slots=True)
class Table:
    """A clamped piecewise-linear function ``y(x)``; ``xs`` strictly increasing."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.xs) != len(self.ys):
            raise ValueError(
                f"table needs as many x (={len(self.xs)}) as y (={len(self.ys)}) values"
            )
        if not self.xs:
            raise ValueError("table needs at least one knot")
        if not all(math.isfinite(v) for v in (*self.xs, *self.ys)):
            raise ValueError("table values must be finite")
        if any(b <= a for a, b in zip(self.xs, self.xs[1:], strict=False)):
            raise ValueError(f"table x values {self.xs} must be strictly increasing")

    @classmethod
    def of(cls, xs: Sequence[float], ys: Sequence[float]) -> Table:
        """Build a table from any two sequences."""
        return cls(tuple(float(x) for x in xs), tuple(float(y) for y in ys))

    def __call__(self, x: float) -> float:
        """The value at ``x`` (clamped to the end knots)."""
        return interp(x, self.xs, self.ys)

    def shifted(self, dx: float) -> Table:
        """The same table with every knot moved by ``dx`` along x."""
        return Table(tuple(x + dx for x in self.xs), self.ys)

    def rows(self) -> list[tuple[float, float]]:
        """The knots as ``(x, y)`` pairs (for documentation and reports)."""
        return list(zip(self.xs, self.ys, strict=True))
