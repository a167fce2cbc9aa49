"""One backoff helper: bounds, growth, jitter, and the same draws as the formulas it replaced."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from gateway.backoff import Jitter, backoff_s


def test_full_jitter_spreads_below_the_growing_ceiling_and_the_cap() -> None:
    random.seed(1)
    for attempt in range(40):
        top = min(4.0, 1.5 ** min(10, attempt))
        delays = [backoff_s(attempt, 4.0) for _ in range(200)]
        assert all(0.0 <= d <= top for d in delays)
        assert max(delays) - min(delays) > top / 2  # jittered, not one value
    # At the cap the range is still spread: no delay sticks to the cap.
    assert sum(backoff_s(30, 2.0) == 2.0 for _ in range(500)) == 0


def test_clipped_jitter_piles_up_at_the_cap() -> None:
    random.seed(2)
    delays = [backoff_s(30, 2.0, jitter=Jitter.FULL_CLIPPED) for _ in range(500)]
    assert max(delays) == 2.0
    assert sum(d == 2.0 for d in delays) > 400  # uniform(0, 57.7) clipped at 2 s


def test_half_jitter_stays_in_the_upper_half_and_grows_from_the_base() -> None:
    random.seed(3)
    for attempt in range(40):
        top = min(30.0, 0.5 * 1.5 ** min(30, attempt))
        for _ in range(100):
            d = backoff_s(attempt, 30.0, base_s=0.5, max_exponent=30, jitter=Jitter.HALF)
            assert top / 2 <= d <= top
    assert backoff_s(0, 30.0, base_s=0.5, max_exponent=30, jitter=Jitter.HALF) <= 0.5


def test_the_exponent_bound_keeps_huge_attempts_finite() -> None:
    assert 0.0 <= backoff_s(10**6, 30.0) <= 30.0
    with pytest.raises(OverflowError):
        backoff_s(10**6, 30.0, max_exponent=None)


# The formulas each caller had before the helper, verbatim: the helper must draw the same floats.
OLD: dict[str, Callable[[int, float, float], float]] = {
    "supervisor": lambda a, cap, base: random.uniform(0.0, min(cap, 1.5 ** min(10, a))),
    "mqtt, web, history": lambda a, cap, base: min(cap, random.uniform(0.0, 1.5 ** min(10, a))),
    "sparkplug": lambda a, cap, base: min(cap, random.uniform(0, 1.5**a)),
    "can links": lambda a, cap, base: _half(min(cap, base * 1.5 ** min(a, 30))),
}


def _half(cap: float) -> float:
    return random.uniform(cap / 2, cap)


NEW: dict[str, Callable[[int, float, float], float]] = {
    "supervisor": lambda a, cap, base: backoff_s(a, cap, jitter=Jitter.FULL),
    "mqtt, web, history": lambda a, cap, base: backoff_s(a, cap, jitter=Jitter.FULL_CLIPPED),
    "sparkplug": lambda a, cap, base: backoff_s(
        a, cap, max_exponent=None, jitter=Jitter.FULL_CLIPPED
    ),
    "can links": lambda a, cap, base: backoff_s(
        a, cap, base_s=base, max_exponent=30, jitter=Jitter.HALF
    ),
}


@pytest.mark.parametrize("caller", sorted(OLD))
def test_the_helper_draws_exactly_what_each_old_formula_drew(caller: str) -> None:
    cases = [
        (a, cap, base)
        for a in range(45)
        for cap in (0.01, 2.0, 30.0, 300.0, 600.0)
        for base in (0.1, 0.5, 1.0)
    ]
    random.seed(17)
    old = [OLD[caller](*c) for c in cases]
    random.seed(17)
    new = [NEW[caller](*c) for c in cases]
    assert new == old
