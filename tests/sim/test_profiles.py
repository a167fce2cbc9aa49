"""The home-storage current profile: deterministic, pure in time, scaled to capacity."""

from __future__ import annotations

import pytest

from gateway.sim.profiles import ConstantProfile, HomeStorageProfile

H = 3600.0


def test_same_seed_same_profile_in_any_order() -> None:
    times = [k * 97.0 for k in range(3 * 24 * 37)]  # three days, odd step
    a = HomeStorageProfile(capacity_ah=100.0, seed=4)
    b = HomeStorageProfile(capacity_ah=100.0, seed=4)
    forward = [a(t) for t in times]
    backward = [b(t) for t in reversed(times)][::-1]
    assert forward == backward
    other = HomeStorageProfile(capacity_ah=100.0, seed=5)
    assert [other(t) for t in times] != forward


def test_shape_of_a_day() -> None:
    p = HomeStorageProfile(capacity_ah=200.0, seed=1, pulses_per_day=0)
    night = [p(h * H) for h in (0.0, 1.5, 3.0, 5.9, 23.5)]
    assert night == [0.0] * 5  # rest at night
    assert p(7.0 * H) == pytest.approx(-0.05 * 200.0)  # morning load
    noon = [p(h * H) for h in (11.0, 12.0, 12.5, 13.0, 14.0)]
    assert max(noon) > 0.05 * 200.0  # PV charging
    assert all(i <= 0.25 * 200.0 for i in noon)
    assert p(20.0 * H) == pytest.approx(-0.08 * 200.0)  # evening discharge


def test_scaled_to_capacity_and_start_hour() -> None:
    small = HomeStorageProfile(capacity_ah=50.0, seed=3)
    big = HomeStorageProfile(capacity_ah=150.0, seed=3)
    for t in range(0, 86400, 600):
        assert big(t) == pytest.approx(3.0 * small(t))
    shifted = HomeStorageProfile(capacity_ah=50.0, seed=3, start_hour=6.0)
    assert shifted(0.0) == small(6.0 * H)


def test_pulses_discharge_briefly() -> None:
    calm = HomeStorageProfile(capacity_ah=100.0, seed=2, pulses_per_day=0)
    busy = HomeStorageProfile(capacity_ah=100.0, seed=2, pulses_per_day=12)
    diffs = [busy(t) - calm(t) for t in range(0, 86400, 10)]
    assert min(diffs) < -10.0  # at least one pulse of > 0.1 C
    assert max(diffs) <= 1e-9  # pulses only discharge
    share = sum(1 for d in diffs if d < 0) / len(diffs)
    assert 0.0 < share < 0.2  # short, not all day


def test_bad_arguments_and_constant() -> None:
    with pytest.raises(ValueError, match="capacity_ah"):
        HomeStorageProfile(capacity_ah=0.0)
    with pytest.raises(ValueError, match="PV window"):
        HomeStorageProfile(capacity_ah=1.0, pv_start_hour=18.0, pv_end_hour=8.0)
    assert ConstantProfile(-3.5)(1234.0) == -3.5
