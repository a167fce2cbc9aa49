"""The time of day at which the pack's daily charge ends, learned from scripted SoC days."""

from __future__ import annotations

import math

import pytest

from gateway.core.charge_config import ChargeConfig
from gateway.core.charge_window import DAY_S, ChargeWindow
from gateway.core.phases_state import restored_lift_slope

HOUR_S = 3600.0
STEP_S = 600.0


def _soc_of_day(hour: float, *, end_h: float = 17.0, pulse_h: float | None = None) -> float:
    """A PV day: 30 % until 08:00, up to 90 % by 13:00, held until ``end_h``, down by 23:00."""
    if hour < 8.0:
        soc = 30.0
    elif hour < 13.0:
        soc = 30.0 + 60.0 * (hour - 8.0) / 5.0
    elif hour < end_h:
        soc = 90.0
    else:
        soc = max(30.0, 90.0 - 60.0 * (hour - end_h) / (23.0 - end_h))
    if pulse_h is not None and pulse_h <= hour < pulse_h + 0.5:
        soc -= 8.0  # a heavy load for half an hour, PV refills it
    return soc


def _feed(w: ChargeWindow, days: int, t0_s: float = 0.0, **day: float | None) -> float:
    t = t0_s
    for _ in range(round(days * DAY_S / STEP_S)):
        w.step(_soc_of_day((t % DAY_S) / HOUR_S, **day), t)  # type: ignore[arg-type]
        t += STEP_S
    return t


def test_the_end_of_the_daily_charge_is_learned_after_one_day() -> None:
    w = ChargeWindow()
    assert w.seconds_to_end(0.0) is None
    t = _feed(w, 1)
    # The last step at the high (90 %, within the hold band) is 17:00; the drop follows.
    assert w.seconds_to_end(t + 10 * HOUR_S) == pytest.approx(7 * HOUR_S)
    # After the end has passed, the next one is tomorrow's.
    assert w.seconds_to_end(t + 18 * HOUR_S) == pytest.approx(23 * HOUR_S)


def test_a_load_pulse_at_noon_does_not_move_the_end() -> None:
    w = ChargeWindow()
    t = _feed(w, 3, pulse_h=11.0)  # the pulse drops 8 points while charging at 11:00
    assert w.seconds_to_end(t + 12 * HOUR_S) == pytest.approx(5 * HOUR_S)


def test_the_median_of_recent_days_ignores_an_odd_day() -> None:
    w = ChargeWindow()
    t = _feed(w, 3)
    t = _feed(w, 1, t, end_h=14.0)  # a cloudy afternoon: the pack falls from 14:00
    t = _feed(w, 2, t)
    assert w.seconds_to_end(t + 12 * HOUR_S) == pytest.approx(5 * HOUR_S)


def test_the_median_works_across_midnight() -> None:
    w = ChargeWindow()
    for end_s in (23.5 * HOUR_S, DAY_S + 0.2 * HOUR_S + DAY_S, 3 * DAY_S + 23.8 * HOUR_S):
        # A rise, the high at end_s, and a drop.
        w.step(20.0, end_s - 6 * HOUR_S)
        w.step(80.0, end_s)
        w.step(70.0, end_s + HOUR_S)
    now = 10 * DAY_S + 12 * HOUR_S
    assert w.seconds_to_end(now) == pytest.approx(11.8 * HOUR_S)


def test_a_pack_that_barely_cycles_learns_nothing() -> None:
    w = ChargeWindow()
    t = 0.0
    for _ in range(3 * 144):  # a 4-point daily swing
        hour = (t % DAY_S) / HOUR_S
        w.step(85.0 + 2.0 * math.sin(2 * math.pi * hour / 24.0), t)
        t += STEP_S
    assert w.seconds_to_end(t) is None


def test_a_non_finite_soc_is_ignored() -> None:
    w = ChargeWindow()
    t = _feed(w, 1)
    w.step(float("nan"), t)
    w.step(float("inf"), t + 1.0)
    assert w.seconds_to_end(t + 10 * HOUR_S) == pytest.approx(7 * HOUR_S)


def test_the_expected_end_survives_a_restart() -> None:
    w = ChargeWindow()
    t = _feed(w, 2)
    saved = w.export_state(t + 10 * HOUR_S)  # 10:00: the end is 7 h away
    assert saved == pytest.approx(7 * HOUR_S)
    again = ChargeWindow()
    again.restore(saved, 500.0)  # a new process: monotonic time starts elsewhere
    assert again.seconds_to_end(500.0 + 3 * HOUR_S) == pytest.approx(4 * HOUR_S)


def test_the_lift_slope_is_the_lower_quartile_of_the_recent_lifts() -> None:
    w = ChargeWindow()
    assert w.lift_slope_a_per_h() is None
    assert w.lift_lead_s(10.0, 1800.0) is None
    # 10 Ah from 2 h to 1 h before the end: 2 x 10 / (4 - 1) A per hour before the end.
    w.record_lift(10.0, 2 * 3600.0, 3600.0)
    assert w.lift_slope_a_per_h() == pytest.approx(20.0 / 3.0)
    w.record_lift(3.0, 2 * 3600.0, 0.0)  # a cloudy afternoon: 1.5 A/h
    w.record_lift(12.0, 2 * 3600.0, -600.0)  # past the expected end counts as at it: 6 A/h
    # The lower quartile of 1.5, 6 and 6.67 (interpolated): most afternoons reach the top.
    assert w.lift_slope_a_per_h() == pytest.approx(3.75)
    for bad in (
        (0.0, 7200.0, 3600.0),
        (-1.0, 7200.0, 3600.0),
        (5.0, 3600.0, 3600.0),
        (5.0, 0.0, -60.0),
        (math.nan, 7200.0, 0.0),
        (5.0, math.inf, 0.0),
        (5.0, 7200.0, math.nan),
    ):
        w.record_lift(*bad)
    assert w.lift_slope_a_per_h() == pytest.approx(3.75)
    for _ in range(7):  # only the last seven count
        w.record_lift(2.0, 3600.0, 0.0)
    assert w.lift_slope_a_per_h() == pytest.approx(4.0)


def test_a_lift_takes_longer_the_closer_to_the_end_it_must_stop() -> None:
    w = ChargeWindow()
    w.record_lift(8.0, 2 * 3600.0, 0.0)  # 4 A per hour before the end
    # 8 Ah to the end: 2 h; to stop 30 min before it: sqrt(2 x 8 / 4 + 0.25) h.
    assert w.lift_lead_s(8.0, 0.0) == pytest.approx(7200.0)
    assert w.lift_lead_s(8.0, 1800.0) == pytest.approx(math.sqrt(4.25) * 3600.0)
    # Half the charge does not take half the time: the current is higher further from the end.
    assert w.lift_lead_s(4.0, 0.0) == pytest.approx(math.sqrt(2.0) * 3600.0)


@pytest.mark.parametrize("bad", [None, "7", True, math.nan, -1.0, 0.0])
def test_a_bad_saved_lift_slope_is_ignored(bad: object) -> None:
    # Checked where the state is read (``phases_state``); the window takes a checked slope.
    notes: list[str] = []
    assert restored_lift_slope({"lift_slope_a_per_h": bad}, ChargeConfig(), 100.0, notes) is None
    assert len(notes) == (0 if bad is None else 1)
    slope = restored_lift_slope({"lift_slope_a_per_h": 8.5}, ChargeConfig(), 100.0, notes)
    assert slope == pytest.approx(8.5)
    w = ChargeWindow()
    w.restore_lift_slope(8.5)
    assert w.lift_slope_a_per_h() == pytest.approx(8.5)
