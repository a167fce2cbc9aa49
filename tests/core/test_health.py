"""Health analytics over synthetic daily histories (pure, no event loop)."""

from __future__ import annotations

import math
import random

import pytest

from gateway.core.daily import CellDay, DayRecord, PackDay
from gateway.core.health import HealthCode, HealthConfig, Slope, analyse, fit_slope

N = 16
Q = 100.0


def history(
    days: int,
    *,
    leak_cell: int | None = None,
    leak_pct: float = 1.0,
    leak_via: str = "balancing",
    fade_cell: int | None = None,
    fade_pct: float = 0.06,
    growth_cell: int | None = None,
    growth_pct: float = 1.0,
    noise: float = 1.0,
    seed: int = 0,
    start_day: int = 739000,
    cell_count: int = N,
) -> list[DayRecord]:
    """Days of a pack aging by 0.02 %/day, with optional faulty cells and seeded noise.

    ``leak_via="balancing"``: the balancer keeps the leaky cell level (the others are bled its
    leak); ``"rest"``: nothing is balanced and the leak shows in the rest SoC offset.
    """
    rng = random.Random(seed)
    out = []
    for d in range(days):
        cells = []
        for k in range(cell_count):
            fade = fade_pct if k == fade_cell else 0.02
            cap = Q * (1.0 + 0.01 * (k - 8) / 8) * (1 - fade / 100 * d)
            cap += rng.gauss(0.0, 0.05 * noise)
            r0 = 0.7 * (1 + (growth_pct if k == growth_cell else 0.01) / 100 * d)
            r0 *= 1 + rng.gauss(0.0, 0.01 * noise)
            bled = 0.3 + rng.gauss(0.0, 0.05 * noise)
            dsoc = rng.gauss(0.0, 0.2 * noise)
            if leak_cell is not None:
                if leak_via == "balancing":
                    bled = bled if k == leak_cell else bled + leak_pct / 100 * Q
                elif k == leak_cell:
                    dsoc -= leak_pct * d
            cells.append(
                CellDay(
                    capacity_ah=cap,
                    capacity_sigma_ah=1.0,
                    r0_mohm=r0,
                    bled_ah=max(0.0, bled),
                    rest_dv_mv=dsoc * 2.0,
                    rest_dsoc_pct=dsoc,
                    v_min_v=3.0,
                    v_max_v=3.4,
                    t_min_c=20.0,
                    t_max_c=25.0,
                )
            )
        out.append(DayRecord(start_day + d, PackDay(cycles=0.8), tuple(cells)))
    return out


def codes(report_warnings: tuple[object, ...]) -> set[tuple[str, int]]:
    return {(w.code.value, w.cell) for w in report_warnings}  # type: ignore[attr-defined]


def test_fit_slope_exact_and_noisy() -> None:
    s = fit_slope([0, 1, 2, 3], [1.0, 3.0, 5.0, 7.0])
    assert s is not None
    assert s.per_day == pytest.approx(2.0)
    assert s.sigma == pytest.approx(0.0, abs=1e-12)
    assert s.days == 4
    # y = 0, 1, 0, 1 over x = 0..3: slope 0.2, SSR 0.8, Sxx 5 -> sigma sqrt(0.8/2/5).
    s = fit_slope([0, 1, 2, 3], [0.0, 1.0, 0.0, 1.0])
    assert s is not None
    assert s.per_day == pytest.approx(0.2)
    assert s.sigma == pytest.approx(math.sqrt(0.8 / 2 / 5))
    assert fit_slope([0, 1], [0.0, 1.0]) is None
    assert fit_slope([1, 1, 1], [0.0, 1.0, 2.0]) is None
    assert fit_slope([0, 1, 2, 3], [0.0, math.nan, 2.0, 3.0]) == Slope(1.0, 0.0, 3)


def test_healthy_pack_raises_nothing() -> None:
    for seed in range(5):
        rep = analyse(history(40, seed=seed), HealthConfig(), Q)
        assert rep.warnings == ()
        assert rep.days == 30  # window_days


def test_each_fault_is_flagged_on_its_cell_only() -> None:
    recs = history(30, leak_cell=3, fade_cell=7, growth_cell=11, seed=1)
    rep = analyse(recs, HealthConfig(), Q)
    assert codes(rep.warnings) == {
        ("cell_self_discharge", 3),
        ("cell_capacity_fade", 7),
        ("cell_resistance_growth", 11),
    }
    leak = rep.cells[3].self_discharge
    assert leak is not None
    assert leak.per_day == pytest.approx(1.0, rel=0.1)
    fade = rep.cells[7].capacity_fade
    assert fade is not None
    assert fade.per_day == pytest.approx(0.04, rel=0.25)  # 0.06 against the others' 0.02
    growth = rep.cells[11].resistance_growth
    assert growth is not None
    assert growth.per_day == pytest.approx(0.99, rel=0.15)
    assert set(rep.ranking[:3]) == {3, 7, 11}
    assert rep.cells[rep.ranking[0]].rank == 1
    w = next(w for w in rep.warnings if w.code is HealthCode.CELL_SELF_DISCHARGE)
    assert w.days == 30
    assert "cell 4" in w.message
    assert "30 days" in w.message


def test_leak_seen_in_the_rest_offset_without_balancing() -> None:
    rep = analyse(history(10, leak_cell=5, leak_via="rest", seed=2), HealthConfig(), Q)
    leak = rep.cells[5].self_discharge
    assert leak is not None
    assert leak.per_day == pytest.approx(1.0, rel=0.1)
    assert ("cell_self_discharge", 5) in codes(rep.warnings)
    drift = rep.cells[5].rest_drift
    assert drift is not None
    assert drift.per_day == pytest.approx(-2.0, rel=0.1)  # the rest voltage falls with it


def test_too_few_days_and_thresholds() -> None:
    recs = history(3, leak_cell=3, seed=3)
    assert analyse(recs, HealthConfig(min_days=4), Q).warnings == ()
    recs = history(8, leak_cell=3, leak_pct=0.3, seed=3)
    assert analyse(recs, HealthConfig(self_discharge_pct_per_day=0.4), Q).warnings == ()
    rep = analyse(recs, HealthConfig(self_discharge_pct_per_day=0.2), Q)
    assert codes(rep.warnings) == {("cell_self_discharge", 3)}


def test_forecasts() -> None:
    recs = history(30, fade_cell=7, fade_pct=0.5, noise=0.0)
    cfg = HealthConfig(capacity_limit_pct=80.0)
    rep = analyse(recs, cfg, Q)
    cell = rep.cells[7]
    assert cell.capacity_trend is not None
    assert cell.capacity_trend.per_day < 0
    # Capacity now (in % of nominal) over the fade rate until 80 %.
    expected = (cell.capacity_ah - 80.0) / (-cell.capacity_trend.per_day)
    assert cell.days_to_capacity_limit == pytest.approx(expected, rel=1e-6)
    assert rep.days_to_capacity_limit == pytest.approx(expected, rel=1e-6)
    assert rep.soc_spread_pct == pytest.approx(0.0)


def test_empty_history_and_mixed_cell_counts() -> None:
    rep = analyse([], HealthConfig(), Q)
    assert rep.days == 0
    assert rep.cells == ()
    recs = history(10)
    short = DayRecord(recs[-1].day - 20, PackDay(), recs[0].cells[:4])
    rep = analyse([short, *recs], HealthConfig(), Q)
    assert rep.days == 10
    assert len(rep.cells) == N
    with pytest.raises(ValueError, match="capacity_ah"):
        analyse(recs, HealthConfig(), 0.0)


def test_forecast_edges() -> None:
    recs = history(20, noise=0.0)
    # Every cell fades 0.02 %/day; a limit above some cells' capacity is reached already.
    rep = analyse(recs, HealthConfig(capacity_limit_pct=99.9), Q)
    for c in rep.cells:
        assert c.days_to_capacity_limit is not None
        if c.capacity_ah <= 99.9:
            assert c.days_to_capacity_limit == 0.0
        else:
            assert c.days_to_capacity_limit == pytest.approx(
                (c.capacity_ah - 99.9) / 0.02, rel=0.02
            )
    assert rep.days_to_capacity_limit == 0.0
    # Capacities that rise (a cell recovering, an estimate settling) forecast nothing.
    rising = [
        DayRecord(r.day, r.pack, tuple(
            CellDay(capacity_ah=Q + 0.01 * i, r0_mohm=0.7, rest_dsoc_pct=0.0) for _ in r.cells
        ))
        for i, r in enumerate(recs)
    ]  # fmt: skip
    rep = analyse(rising, HealthConfig(), Q)
    assert all(c.days_to_capacity_limit is None for c in rep.cells)
    assert rep.days_to_spread_limit is None  # the spread stays at 0


def test_estimator_settling_at_the_start_is_not_growth() -> None:
    """After install every cell starts at the nominal R0 and capacity and learns its own over
    days; a cell that settles 15 % above the others must not read as resistance growth."""
    recs = history(24, noise=0.0)
    settled = []
    for i, r in enumerate(recs):
        cells = list(r.cells)
        c = cells[2]
        cells[2] = CellDay(
            **{
                **{f: getattr(c, f) for f in c.__slots__},
                "r0_mohm": c.r0_mohm * (1 + 0.03 * min(i, 5)),
            }
        )  # type: ignore[arg-type]
        settled.append(DayRecord(r.day, r.pack, tuple(cells)))
    assert analyse(settled, HealthConfig(), Q).warnings == ()
    rep = analyse(settled, HealthConfig(settle_days=0, ageing_min_days=18), Q)
    assert codes(rep.warnings) == {("cell_resistance_growth", 2)}
    # A window of a longer history: the settling days are out of it anyway.
    assert analyse(settled[10:], HealthConfig(), Q, first_day=settled[0].day).warnings == ()
