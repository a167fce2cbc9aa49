"""The time of day at which the pack's daily charge ends, learned from scripted SoC days."""

from __future__ import annotations

import math

import pytest

from gateway.core.charge_window import DAY_S, ChargeWindow

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
    for bad in (None, "x", float("nan"), True):
        fresh = ChargeWindow()
        fresh.restore(bad, 0.0)
        assert fresh.seconds_to_end(0.0) is None


def test_the_lift_rate_is_the_median_of_the_recent_lifts() -> None:
    w = ChargeWindow()
    assert w.lift_rate_a() is None
    w.record_lift(10.0, 3600.0)  # 10 Ah in an hour: 10 A
    assert w.lift_rate_a() == pytest.approx(10.0)
    w.record_lift(3.0, 3600.0)  # a cloudy afternoon
    w.record_lift(6.0, 1800.0)  # 12 A
    assert w.lift_rate_a() == pytest.approx(10.0)  # the median, not the mean
    for bad in ((0.0, 3600.0), (-1.0, 3600.0), (5.0, 0.0), (math.nan, 3600.0), (5.0, math.inf)):
        w.record_lift(*bad)
    assert w.lift_rate_a() == pytest.approx(10.0)
    for _ in range(7):  # only the last seven count
        w.record_lift(2.0, 3600.0)
    assert w.lift_rate_a() == pytest.approx(2.0)


@pytest.mark.parametrize("bad", [None, "7", True, math.nan, -1.0, 0.0])
def test_a_bad_saved_lift_rate_is_ignored(bad: object) -> None:
    w = ChargeWindow()
    w.restore_lift_rate(bad)
    assert w.lift_rate_a() is None
    w.restore_lift_rate(8.5)
    assert w.lift_rate_a() == pytest.approx(8.5)
