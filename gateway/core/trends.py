"""Trends over days: least-squares slopes with their standard errors, medians, forecasts. Pure.

Slopes are ordinary least squares with the textbook standard error
``sqrt(SSR / (n - 2) / Sxx)`` (e.g. Montgomery & Runger, *Applied Statistics and Probability for
Engineers*, ch. 11). Non-finite values (a day without an estimate) are skipped, never zero.
``gateway.core.health`` builds the cell health report on them; ``gateway.core.daily`` uses the
median.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Slope", "days_to", "fit_slope", "median", "negated", "scaled"]


@dataclass(frozen=True, slots=True)
class Slope:
    """A least-squares slope per day, its standard error and the days of data behind it."""

    per_day: float
    sigma: float
    days: int

    @property
    def z(self) -> float:
        """Slope over its standard error (``inf`` for an exact fit with a slope)."""
        if self.sigma > 0.0:
            return self.per_day / self.sigma
        return math.copysign(math.inf, self.per_day) if self.per_day else 0.0


def fit_slope(xs: Sequence[float], ys: Sequence[float]) -> Slope | None:
    """Ordinary least-squares slope of ``ys`` over ``xs``, skipping non-finite ``ys``.

    Returns ``None`` with fewer than three points or no spread in ``xs``.
    """
    pts = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True) if math.isfinite(y)]
    n = len(pts)
    if n < 3:
        return None
    mx = math.fsum(x for x, _ in pts) / n
    my = math.fsum(y for _, y in pts) / n
    sxx = math.fsum((x - mx) ** 2 for x, _ in pts)
    if sxx <= 0.0:
        return None
    sxy = math.fsum((x - mx) * (y - my) for x, y in pts)
    b = sxy / sxx
    a = my - b * mx
    ssr = math.fsum((y - a - b * x) ** 2 for x, y in pts)
    return Slope(b, math.sqrt(ssr / (n - 2) / sxx), n)


def median(xs: Sequence[float]) -> float:
    """The median of the finite values of ``xs``; NaN when there is none."""
    s = sorted(x for x in xs if math.isfinite(x))
    if not s:
        return math.nan
    m = len(s) // 2
    return s[m] if len(s) % 2 else 0.5 * (s[m - 1] + s[m])


def negated(s: Slope | None) -> Slope | None:
    """``s`` with the sign of its slope flipped (``None`` stays ``None``)."""
    return None if s is None else Slope(-s.per_day, s.sigma, s.days)


def scaled(s: Slope | None, f: float) -> Slope | None:
    """``s`` with slope and standard error times ``f``; ``None`` when ``f`` is not finite."""
    return None if s is None or not math.isfinite(f) else Slope(s.per_day * f, s.sigma * f, s.days)


def days_to(now: float, slope: Slope | None, limit: float, *, falling: bool) -> float | None:
    """Days until ``now`` reaches ``limit`` at ``slope``: a lower limit when ``falling``, an
    upper one otherwise. 0 when already there; ``None`` when not moving towards it."""
    if slope is None or not math.isfinite(now):
        return None
    if (now <= limit) if falling else (now >= limit):
        return 0.0
    if (slope.per_day < 0.0) if falling else (slope.per_day > 0.0):
        return (limit - now) / slope.per_day
    return None
