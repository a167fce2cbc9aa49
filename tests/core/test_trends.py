"""Least-squares trends, medians and forecasts (``gateway.core.trends``): pure, no clock."""

from __future__ import annotations

import math

import pytest

from gateway.core.trends import Slope, days_to, fit_slope, median, negated, scaled


def test_median_skips_non_finite_values_and_is_nan_without_any() -> None:
    assert median([3.0, math.nan, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, math.inf, 3.0, 2.0]) == 2.5  # even count: the mean of the middle two
    assert math.isnan(median([math.nan, -math.inf]))
    assert math.isnan(median([]))


def test_fit_slope_recovers_a_line_and_needs_three_points_with_spread() -> None:
    s = fit_slope([0, 1, 2, 3], [1.0, 3.0, math.nan, 7.0])
    assert s is not None
    assert s.per_day == pytest.approx(2.0)
    assert s.sigma == pytest.approx(0.0, abs=1e-12)
    assert s.days == 3  # the NaN day is skipped, not read as zero
    assert fit_slope([0, 1], [0.0, 1.0]) is None
    assert fit_slope([5, 5, 5], [0.0, 1.0, 2.0]) is None


def test_the_standard_error_is_the_textbook_one() -> None:
    # y = 0, 2, 1, 3 over x = 0..3: b = 0.8, SSR = 1.8, Sxx = 5 -> sigma = sqrt(1.8 / 2 / 5).
    s = fit_slope([0, 1, 2, 3], [0.0, 2.0, 1.0, 3.0])
    assert s is not None
    assert s.per_day == pytest.approx(0.8)
    assert s.sigma == pytest.approx(math.sqrt(0.18))
    assert s.z == pytest.approx(0.8 / math.sqrt(0.18))


def test_z_of_an_exact_fit() -> None:
    assert Slope(1.0, 0.0, 3).z == math.inf
    assert Slope(-1.0, 0.0, 3).z == -math.inf
    assert Slope(0.0, 0.0, 3).z == 0.0


def test_negated_and_scaled_keep_the_days_and_pass_none_through() -> None:
    s = Slope(2.0, 0.5, 7)
    assert negated(s) == Slope(-2.0, 0.5, 7)
    assert scaled(s, 10.0) == Slope(20.0, 5.0, 7)
    assert scaled(s, math.nan) is None
    assert negated(None) is None
    assert scaled(None, 2.0) is None


def test_days_to_a_limit() -> None:
    falling = Slope(-0.5, 0.1, 10)
    assert days_to(90.0, falling, 80.0, falling=True) == pytest.approx(20.0)
    assert days_to(79.0, falling, 80.0, falling=True) == 0.0  # already there
    assert days_to(90.0, Slope(0.5, 0.1, 10), 80.0, falling=True) is None  # moving away
    assert days_to(2.0, Slope(0.25, 0.1, 10), 10.0, falling=False) == pytest.approx(32.0)
    assert days_to(math.nan, falling, 80.0, falling=True) is None
    assert days_to(90.0, None, 80.0, falling=True) is None
