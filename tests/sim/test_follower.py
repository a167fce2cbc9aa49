"""What the simulated inverters follow: the PV/load profile and the limit follower (pure)."""

from __future__ import annotations

import pytest

from gateway.sim.follower import LimitFollower, PvLoadProfile

NOON_S = 7 * 3600.0  # 13:00 (the profile starts at 06:00), the middle of the PV day
NIGHT_S = 14 * 3600.0  # 20:00, PV down and the evening load on


def test_profile_is_pv_by_day_and_load_at_night() -> None:
    p = PvLoadProfile(pv_peak_w=4000.0, base_load_w=400.0)
    assert p.pv_w(NOON_S) == pytest.approx(4000.0)
    assert p.pv_w(NIGHT_S) == 0.0
    assert p.surplus_w(NOON_S) > 0
    assert p.surplus_w(NIGHT_S) < 0
    fast = PvLoadProfile(day_s=600.0)
    assert fast.pv_w(NOON_S * 600.0 / 86400.0) == pytest.approx(p.pv_w(NOON_S))


def test_no_limit_known_means_no_current() -> None:
    f = LimitFollower(None, 51.2, lambda _t: 30.0)
    assert f.current_a(0.0) == 0.0
    f.charge_limit_a = 10.0
    assert f.current_a(0.0) == 0.0  # both limits must be known


def test_current_stays_within_the_limits_both_ways() -> None:
    f = LimitFollower(None, 51.2, lambda t: 30.0 if t < 1.0 else -30.0)
    f.charge_limit_a, f.discharge_limit_a = 10.0, 20.0
    assert f.current_a(0.0) == 10.0
    assert f.current_a(2.0) == -20.0


def test_profile_power_is_turned_into_current_at_the_known_voltage() -> None:
    profile = PvLoadProfile(pv_peak_w=4000.0, base_load_w=400.0)
    f = LimitFollower(profile, 50.0, None)
    assert f.wanted_a(NOON_S) == pytest.approx(profile.surplus_w(NOON_S) / 50.0)  # nominal
    f.voltage_v = 40.0
    assert f.wanted_a(NOON_S) == pytest.approx(profile.surplus_w(NOON_S) / 40.0)
