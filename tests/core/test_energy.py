"""Energy counters: trapezoidal integration of pack power, split at zero, never decreasing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.energy import EnergyCounter, pack_power_w
from gateway.core.model import PackSnapshot


def _snap(
    current_a: float | None,
    voltage_v: float | None,
    *,
    current_age_s: float = 0.0,
    voltage_age_s: float = 0.0,
    cells: tuple[float | None, ...] = (3.3, 3.3),
) -> PackSnapshot:
    return PackSnapshot(
        t_s=0.0,
        cell_voltage_v=cells,
        cell_voltage_age_s=tuple(0.0 for _ in cells),
        cell_temp_c=(),
        cell_temp_age_s=(),
        current_a=current_a,
        current_age_s=current_age_s if current_a is not None else None,
        pack_voltage_v=voltage_v,
        pack_voltage_age_s=voltage_age_s if voltage_v is not None else None,
        balancing_active=(),
        complete=True,
    )


def test_constant_charge_for_one_hour_is_power_times_time() -> None:
    c = EnergyCounter(max_gap_s=2.0)
    for k in range(3601):
        r = c.step(5000.0, float(k))
    assert r.charged_kwh == pytest.approx(5.0, rel=1e-12)
    assert r.discharged_kwh == 0.0


def test_a_sign_change_splits_the_interval_at_the_zero_crossing() -> None:
    c = EnergyCounter(max_gap_s=10.0)
    c.step(1000.0, 0.0)
    r = c.step(-3000.0, 4.0)  # zero at t = 1 s: +1000 W x 1 s / 2, -3000 W x 3 s / 2
    assert r.charged_kwh * 3.6e6 == pytest.approx(500.0)
    assert r.discharged_kwh * 3.6e6 == pytest.approx(4500.0)


def test_unknown_power_and_long_gaps_are_not_integrated() -> None:
    c = EnergyCounter(max_gap_s=2.0)
    c.step(1000.0, 0.0)
    c.step(None, 1.0)  # stale: the interval around it is unknown
    r = c.step(1000.0, 2.0)
    assert r.charged_kwh == 0.0
    r = c.step(1000.0, 10.0)  # 8 s gap > max_gap_s
    assert r.charged_kwh == 0.0
    r = c.step(1000.0, 11.0)
    assert r.charged_kwh * 3.6e6 == pytest.approx(1000.0)


@given(
    st.lists(
        st.tuples(
            st.floats(-2e5, 2e5) | st.none(),
            st.floats(0.001, 3.0),
        ),
        max_size=60,
    )
)
def test_counters_never_decrease_and_net_is_the_integral(
    steps: list[tuple[float | None, float]],
) -> None:
    c = EnergyCounter(max_gap_s=2.0)
    t = 0.0
    prev = (0.0, 0.0)
    net_j = 0.0
    last: tuple[float, float] | None = None
    for p, dt in steps:
        t += dt
        r = c.step(p, t)
        assert r.charged_kwh >= prev[0]
        assert r.discharged_kwh >= prev[1]
        prev = (r.charged_kwh, r.discharged_kwh)
        if p is not None and last is not None and t - last[0] <= 2.0:
            net_j += 0.5 * (p + last[1]) * (t - last[0])
        last = (t, p) if p is not None else None
    assert (prev[0] - prev[1]) * 3.6e6 == pytest.approx(net_j, abs=1e-6)


def test_restore_resumes_and_never_lowers_the_counters() -> None:
    a = EnergyCounter(max_gap_s=2.0)
    a.step(-3600.0, 0.0)
    a.step(-3600.0, 1.0)
    saved = a.export_state()
    b = EnergyCounter(max_gap_s=2.0)
    b.restore(saved)
    assert b.report == a.report
    b.restore({"version": 1, "charged_wh": 0.0, "discharged_wh": 0.0})
    assert b.report == a.report  # an older state never sends the counters back
    for bad in (
        {"version": 2, "charged_wh": 1, "discharged_wh": 1},
        {"version": 1, "charged_wh": -1.0, "discharged_wh": 0.0},
        {"version": 1, "charged_wh": math.inf, "discharged_wh": 0.0},
        {"version": 1, "charged_wh": "3", "discharged_wh": 0.0},
        [1, 2],
    ):
        with pytest.raises(ValueError, match="energy state"):
            b.restore(bad)
        assert b.report == a.report


def test_power_needs_fresh_current_and_voltage_with_the_cell_sum_as_fallback() -> None:
    assert pack_power_w(_snap(10.0, 50.0), 2.0, 5.0) == pytest.approx(500.0)
    assert pack_power_w(_snap(None, 50.0), 2.0, 5.0) is None
    assert pack_power_w(_snap(10.0, 50.0, current_age_s=3.0), 2.0, 5.0) is None
    # Pack voltage stale or missing: the sum of fresh, known cells.
    assert pack_power_w(_snap(10.0, 50.0, voltage_age_s=9.0), 2.0, 5.0) == pytest.approx(66.0)
    assert pack_power_w(_snap(10.0, None), 2.0, 5.0) == pytest.approx(66.0)
    assert pack_power_w(_snap(10.0, None, cells=(3.3, None)), 2.0, 5.0) is None
