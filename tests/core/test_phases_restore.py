"""Restoring the charge phases' saved state: implausible values are refused or limited, with a
note for the log (each test failed before ``ChargePhases.restore`` validated them)."""

from __future__ import annotations

from tests.core.test_phases import (
    DAY_S,
    HOUR_S,
    _learned,
    _machine,
    _soc,
    _step,
    _to_float_from_absorption,
)


def test_a_small_restored_lift_slope_does_not_stop_the_timing_for_good() -> None:
    # A state file says 0.01 A/h (hand-edited, another site, or a grey-day lift): a 10 Ah lift
    # then needs sqrt(2 x 10 / 0.01) = 44.7 h > 24 h, so every full charge is due at once,
    # never waits, is never measured (``measure`` needs ``_waited``), and the slope can never
    # be relearned: the timing is off for good, silently.
    m = _learned()
    m.restore({"lift_slope_a_per_h": 0.01}, 3 * DAY_S)
    dues = [_sunny_full_day(m, day) for day in (3, 5, 7, 9)]
    assert m.window.lift_slope_a_per_h() != 0.01, dues


def _sunny_full_day(m, day: int) -> float:
    t0 = day * DAY_S
    s = _step(m, t0 + 9 * HOUR_S, 3.30, 30.0, _soc(50.0, sigma_pct=3.0))
    assert s.full_charge_requested
    due = s.full_charge_due_in_s
    t, soc = t0 + 9 * HOUR_S, 50.0
    while soc < 99.5:
        t += 60.0
        soc += 0.5
        s = _step(m, t, 3.40, 30.0, _soc(min(soc, 99.0), sigma_pct=3.0))
    s = _step(m, t + 60.0, 3.445, 5.0, _soc(99.5))
    t = _to_float_from_absorption(m, t + 120.0)
    while t < t0 + 17 * HOUR_S:
        t = min(t + 600.0, t0 + 17 * HOUR_S)
        _step(m, t, 3.40, 0.0, _soc(99.5))
    for k in range(1, 37):
        hour = 17.0 + k / 6.0
        _step(m, t0 + hour * HOUR_S, 3.28, -20.0, _soc(max(30.0, 98.5 - 11 * (hour - 17))))
    return due


def test_a_restored_implausible_lift_slope_is_refused_or_clamped() -> None:
    for bad in (1e-6, 1e9):
        m = _learned()
        m.restore({"lift_slope_a_per_h": bad}, 3 * DAY_S)
        k = m.window.lift_slope_a_per_h()
        assert k is None or k != bad, f"{bad} A/h restored silently"


def test_the_old_lift_rate_key_is_migrated_or_noted() -> None:
    m = _learned()
    notes = m.restore({"lift_rate_a": 8.0}, 3 * DAY_S)  # None on main: no notes at all
    assert m.window.lift_slope_a_per_h() is not None or notes, "lift_rate_a dropped without a note"


def test_one_outlier_slope_dominates_the_lower_quartile_of_two() -> None:
    m = _learned()
    m.restore({"lift_slope_a_per_h": 1000.0}, 3 * DAY_S)
    m.window.record_lift(10.0, 2 * HOUR_S, 1 * HOUR_S)  # a real 6.67 A/h lift
    k = m.window.lift_slope_a_per_h()
    assert k is not None
    assert k < 50.0, k


def test_a_boolean_told_apart_age_is_refused() -> None:
    m = _machine()
    m.restore({"cells_told_apart_age_s": True}, 3 * DAY_S)
    assert m._told_apart_s is None  # True is taken as an age of 1 s


def test_a_restored_due_at_once_waits_when_balancing_now_runs_off_the_top() -> None:
    # Saved while balancing ran only at rest or near the top (unfinished balancing due at once);
    # restored with balancing in every state, the request waits for the PV day's end like the
    # others (as a new request would).
    saved = {"full_charge_request": "balancing unfinished", "full_charge_at_once": True}
    for off_top, expected in ((False, True), (True, False)):
        m = _machine(full_charge_lead_s=7200.0, balancing_off_top=off_top)
        m.restore(saved, 3 * DAY_S)
        assert m.export_state(3 * DAY_S)["full_charge_at_once"] is expected
