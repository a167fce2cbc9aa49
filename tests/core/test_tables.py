"""core/tables.py: the one clamped piecewise-linear interpolator and ``Table``."""

from __future__ import annotations

import bisect
import math
import random

import pytest

from gateway.core.chemistry import CHEMISTRIES, get_chemistry
from gateway.core.tables import Table, interp


def _old_interp(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """``chemistry._interp`` as it was before it became ``tables.interp`` (verbatim)."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def _points(xs: tuple[float, ...], n: int, rng: random.Random) -> list[float]:
    """Random points over the range and past both ends, every knot, and just beside each."""
    lo, hi = xs[0], xs[-1]
    span = hi - lo
    pts = [rng.uniform(lo - 0.2 * span, hi + 0.2 * span) for _ in range(n)]
    for x in xs:
        pts += [x, math.nextafter(x, -math.inf), math.nextafter(x, math.inf)]
    return [*pts, lo - 1e6, hi + 1e6, -math.inf, math.inf]


def test_interp_is_exactly_the_old_chemistry_interpolator_over_the_shipped_tables() -> None:
    rng = random.Random(4)
    checked = 0
    for name in CHEMISTRIES:
        chem = get_chemistry(name)
        ocv = chem.ocv
        tables = [(ocv.soc_pct, ocv.ocv_v)]
        if ocv.docv_dt_mv_per_k:
            tables.append((ocv.soc_pct, ocv.docv_dt_mv_per_k))
        if len(chem.r_temp) > 1:
            tables.append((tuple(t for t, _ in chem.r_temp), tuple(f for _, f in chem.r_temp)))
        for xs, ys in tables:
            for x in _points(xs, 2000, rng):
                assert interp(x, xs, ys) == _old_interp(x, xs, ys), (name, x)
                checked += 1
    assert checked > 4000


def test_table_and_interp_agree_exactly_on_random_tables() -> None:
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(1, 12)
        xs = tuple(sorted({round(rng.uniform(-50, 150), 3) for _ in range(n)}))
        ys = tuple(rng.uniform(-5, 5) for _ in xs)
        table = Table(xs, ys)
        for x in _points(xs, 50, rng):
            assert table(x) == interp(x, xs, ys) == _old_interp(x, xs, ys)


def test_values_between_knots_are_linear_and_the_ends_clamp() -> None:
    t = Table.of([0, 10, 20], [100, 50, 50])
    assert t(-5) == 100.0  # clamped below
    assert t(0) == 100.0
    assert t(5) == pytest.approx(75.0)
    assert t(10) == 50.0
    assert t(15) == 50.0  # flat segment
    assert t(25) == 50.0  # clamped above
    assert Table.of([3], [7])(-1e9) == Table.of([3], [7])(1e9) == 7.0  # one knot: a constant


def test_a_table_interpolates_both_directions_of_slope() -> None:
    t = Table.of([0.0, 1.0, 3.0], [0.0, 2.0, -2.0])
    assert t(0.5) == pytest.approx(1.0)
    assert t(2.0) == pytest.approx(0.0)
    assert t(2.5) == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("xs", "ys", "match"),
    [
        ((0.0, 1.0), (1.0,), "as many x"),
        ((), (), "at least one knot"),
        ((0.0, math.nan), (1.0, 2.0), "finite"),
        ((0.0, 1.0), (1.0, math.inf), "finite"),
        ((0.0, 0.0), (1.0, 2.0), "strictly increasing"),
        ((1.0, 0.0), (1.0, 2.0), "strictly increasing"),
    ],
)
def test_bad_tables_are_refused_with_a_clear_error(
    xs: tuple[float, ...], ys: tuple[float, ...], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        Table(xs, ys)


def test_shifted_moves_the_knots_along_x_only() -> None:
    t = Table.of([0, 10], [1, 2])
    s = t.shifted(5.0)
    assert s.xs == (5.0, 15.0)
    assert s.ys == t.ys
    assert s(10.0) == t(5.0)
    assert t.rows() == [(0.0, 1.0), (10.0, 2.0)]
