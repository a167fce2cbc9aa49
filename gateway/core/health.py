"""Cell health trends from the daily history: fade, resistance growth, self-discharge. Pure.

Input is a run of ``DayRecord`` (``gateway.core.daily``) as the history store keeps them; output
a ``HealthReport``: per cell the trends as least-squares slopes with their standard errors, a
weak-cell ranking, forecasts, and the warnings whose evidence passes the ``[health]`` thresholds.

Every trend is taken *against the median cell* of the same day. In a series string one current
flows through every cell, so what the estimator gets wrong for all of them alike (current-sensor
offset and gain, the weather, the day's profile) cancels, and what is left is the cell's own.

* Capacity fade: slope of ``100 * (Q_k - median Q) / Q_nom`` over days, negated (%/day of the
  nominal capacity faster than the median cell).
* Resistance growth: slope of ``100 * (R0_k / median R0 - 1)`` (%/day).
* Self-discharge: charge balance of the cell against the median. A cell's charge changes by the
  string current, minus what its bleed resistor takes (``b``), plus what an active balancer
  brings (``m``), minus its leak ``L``; against the median cell the string current cancels::

      d(q_k - q_med)/dt = -(b_k - b_med) + (m_k - m_med) - (L_k - L_med)

  so the cumulative balancing effort minus the charge offset seen at the daily rest,
  ``Y_k(d) = sum_{d' <= d} [-(b_k - b_med) + (m_k - m_med)] - (q_k - q_med)(d)``, grows with
  slope ``L_k - L_med`` (Ah/day, reported in % of the cell's capacity per day). A leaking cell
  that the balancer keeps level shows in the balancing term (the others are bled, it is not);
  one it does not keep level shows in the charge offset. The drift of the cell's rest voltage
  against the median is reported beside it as independent evidence.

Slopes are ordinary least squares with the textbook standard error
``sqrt(SSR / (n - 2) / Sxx)`` (``gateway.core.trends``, where ``Slope`` and ``fit_slope`` live;
re-exported here). Day-to-day values of a filtered estimate are correlated, so that error is
optimistic; a warning therefore needs both a slope beyond a threshold *and* ``min_z`` standard
errors, over at least ``min_days`` days (``ageing_min_days`` for fade and resistance growth).

The ``[health]`` settings are ``HealthConfig`` (``gateway.core.health_config``, re-exported here).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.core.daily import DayRecord
from gateway.core.health_config import HealthConfig
from gateway.core.model import Alarm, Severity
from gateway.core.trends import Slope, days_to, fit_slope, median, negated, scaled

__all__ = [
    "CellHealth",
    "HealthCode",
    "HealthConfig",
    "HealthReport",
    "HealthWarning",
    "Slope",
    "analyse",
    "fit_slope",
    "warnings_as_alarms",
]

_NAN = math.nan


class HealthCode(StrEnum):
    """Trend warning codes (published like protection warnings, never cutting limits)."""

    CELL_SELF_DISCHARGE = "cell_self_discharge"
    CELL_CAPACITY_FADE = "cell_capacity_fade"
    CELL_RESISTANCE_GROWTH = "cell_resistance_growth"


@dataclass(frozen=True, slots=True)
class CellHealth:
    """Trends of one cell (``None``: too few days).

    Attributes:
        cell: 0-based index.
        capacity_ah: Latest capacity estimate.
        r0_mohm: Latest R0 estimate.
        capacity_fade: Capacity lost per day beyond the median cell, % of nominal.
        capacity_trend: The cell's own capacity change, % of nominal per day (negative: fade).
        resistance_growth: R0 growth against the median cell, % per day.
        self_discharge: Leak beyond the median cell, % of the cell's capacity per day.
        rest_drift: Rest voltage against the median cell, mV per day.
        days_to_capacity_limit: Days until ``capacity_limit_pct`` at the current trend
            (``None``: not fading, or unknown).
        weakness: Ranking score: the sum of each trend over its warning threshold (when
            positive) and the capacity deficit against the median in units of 5 %.
        rank: 1 = weakest cell.
    """

    cell: int
    capacity_ah: float
    r0_mohm: float
    capacity_fade: Slope | None
    capacity_trend: Slope | None
    resistance_growth: Slope | None
    self_discharge: Slope | None
    rest_drift: Slope | None
    days_to_capacity_limit: float | None
    weakness: float
    rank: int


@dataclass(frozen=True, slots=True)
class HealthWarning:
    """One trend warning with its evidence.

    Attributes:
        code: which trend.
        cell: 0-based cell index.
        value: the trend's value (%/day, see ``CellHealth``).
        sigma: its standard error.
        days: days of data behind it.
        message: one line for people.
    """

    code: HealthCode
    cell: int
    value: float
    sigma: float
    days: int
    message: str


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What the history says about the pack.

    Attributes:
        first_day / last_day: day numbers of the window analysed (``None``: no history).
        days: days with data in the window.
        cells: per-cell trends, in cell order.
        ranking: cell indices, weakest first.
        warnings: trend warnings (at most one per code and cell).
        soc_spread_pct: SoC spread at the latest rest (max - min cell).
        spread_trend: its slope, % per day.
        days_to_spread_limit: days until ``spread_limit_pct`` at that trend.
        days_to_capacity_limit: the soonest cell's days until ``capacity_limit_pct``.
    """

    first_day: int | None
    last_day: int | None
    days: int
    cells: tuple[CellHealth, ...]
    ranking: tuple[int, ...]
    warnings: tuple[HealthWarning, ...]
    soc_spread_pct: float | None
    spread_trend: Slope | None
    days_to_spread_limit: float | None
    days_to_capacity_limit: float | None


def analyse(
    history: Sequence[DayRecord],
    config: HealthConfig,
    capacity_ah: float,
    *,
    first_day: int | None = None,
) -> HealthReport:
    """Trends, ranking, forecasts and warnings over the last ``window_days`` of ``history``.

    Args:
        history: daily records of one pack in any order; days with another cell count than the
            latest are skipped.
        config: the ``[health]`` settings.
        capacity_ah: nominal cell capacity (the scale of capacity fade).
        first_day: the first day ever recorded (the history may be a window of a longer one);
            capacity and R0 of the ``settle_days`` from it are left out of the trends. Default:
            the earliest day in ``history``.

    Raises:
        ValueError: ``capacity_ah`` is not positive.
    """
    if not capacity_ah > 0:
        raise ValueError(f"capacity_ah (={capacity_ah}) must be positive")
    if not history:
        return HealthReport(None, None, 0, (), (), (), None, None, None, None)
    recs = sorted(history, key=lambda r: r.day)
    n = len(recs[-1].cells)
    last = recs[-1].day
    start = recs[0].day if first_day is None else first_day
    recs = [r for r in recs if len(r.cells) == n and r.day > last - config.window_days]
    days = [float(r.day) for r in recs]
    series = _Series(
        recs,
        n,
        capacity_ah,
        settled_from=start + config.settle_days,
        cap_max_sigma_pct=config.capacity_max_sigma_pct,
    )
    cells = [_cell(k, series, days, config, capacity_ah) for k in range(n)]
    order = sorted(range(n), key=lambda k: (-cells[k].weakness, k))
    rank = {k: i + 1 for i, k in enumerate(order)}
    cells = [_with_rank(c, rank[c.cell]) for c in cells]
    warnings = [w for c in cells for w in _warnings(c, config)]
    spread = [_spread(r) for r in recs]
    spread_trend = fit_slope(days, spread)
    latest_spread = next((s for s in reversed(spread) if math.isfinite(s)), None)
    to_spread = (
        days_to(latest_spread, spread_trend, config.spread_limit_pct, falling=False)
        if latest_spread is not None
        else None
    )
    to_cap = [c.days_to_capacity_limit for c in cells if c.days_to_capacity_limit is not None]
    return HealthReport(
        first_day=recs[0].day,
        last_day=last,
        days=len(recs),
        cells=tuple(cells),
        ranking=tuple(order),
        warnings=tuple(warnings),
        soc_spread_pct=latest_spread,
        spread_trend=spread_trend,
        days_to_spread_limit=to_spread,
        days_to_capacity_limit=min(to_cap) if to_cap else None,
    )


class _Series:
    """Per-day, per-cell values against the median cell, built once for all cells."""

    def __init__(
        self,
        recs: Sequence[DayRecord],
        n: int,
        q_nom: float,
        settled_from: int,
        cap_max_sigma_pct: float,
    ) -> None:
        self.cap_rel: list[list[float]] = []
        self.cap_abs: list[list[float]] = []
        self.r0_rel: list[list[float]] = []
        self.leak_y: list[list[float]] = []
        self.rest_dv: list[list[float]] = []
        cum = [0.0] * n
        for r in recs:
            if r.day < settled_from:
                self.cap_rel.append([_NAN] * n)
                self.cap_abs.append([_NAN] * n)
                self.r0_rel.append([_NAN] * n)
            else:
                max_sigma = cap_max_sigma_pct / 100.0 * q_nom
                caps = [
                    c.capacity_ah if c.capacity_sigma_ah <= max_sigma else _NAN for c in r.cells
                ]
                # Against the median of the cells known well enough, when that is most of them.
                known = sum(1 for q in caps if math.isfinite(q))
                med_cap = median(caps) if 2 * known > n else _NAN
                self.cap_rel.append([100.0 * (q - med_cap) / q_nom for q in caps])
                self.cap_abs.append([100.0 * q / q_nom for q in caps])
                r0 = [c.r0_mohm for c in r.cells]
                med_r0 = median(r0)
                self.r0_rel.append([100.0 * (x / med_r0 - 1.0) if med_r0 > 0 else _NAN for x in r0])
            bled = [c.bled_ah for c in r.cells]
            moved = [c.moved_ah for c in r.cells]
            mb, mm = median(bled), median(moved)
            cum = [s - (b - mb) + (m - mm) for s, b, m in zip(cum, bled, moved, strict=True)]
            q_rel = [
                c.rest_dsoc_pct / 100.0 * (c.capacity_ah if math.isfinite(c.capacity_ah) else q_nom)
                for c in r.cells
            ]
            self.leak_y.append([s - q for s, q in zip(cum, q_rel, strict=True)])
            self.rest_dv.append([c.rest_dv_mv for c in r.cells])
        self.latest_cap = [
            next((row[k] for row in reversed(self.cap_abs) if math.isfinite(row[k])), _NAN)
            for k in range(n)
        ]
        self.latest_cap_rel = [
            next((row[k] for row in reversed(self.cap_rel) if math.isfinite(row[k])), _NAN)
            for k in range(n)
        ]
        self.latest = recs[-1] if recs else None


def _cell(k: int, s: _Series, days: list[float], cfg: HealthConfig, q_nom: float) -> CellHealth:

    def col(rows: list[list[float]]) -> list[float]:
        return [row[k] for row in rows]

    fade = negated(fit_slope(days, col(s.cap_rel)))
    trend = fit_slope(days, col(s.cap_abs))
    growth = fit_slope(days, col(s.r0_rel))
    latest = s.latest
    assert latest is not None
    cap = latest.cells[k].capacity_ah
    leak_ah = fit_slope(days, col(s.leak_y))
    leak = scaled(leak_ah, 100.0 / (cap if math.isfinite(cap) and cap > 0 else q_nom))
    drift = fit_slope(days, col(s.rest_dv))
    to_limit = None
    if trend is not None:
        to_limit = days_to(s.latest_cap[k], trend, cfg.capacity_limit_pct, falling=True)
    weakness = 0.0
    for slope, threshold in (
        (fade, cfg.capacity_fade_pct_per_day),
        (growth, cfg.resistance_growth_pct_per_day),
        (leak, cfg.self_discharge_pct_per_day),
    ):
        if slope is not None and slope.per_day > 0.0:
            weakness += slope.per_day / threshold
    deficit = -s.latest_cap_rel[k]
    if math.isfinite(deficit) and deficit > 0.0:
        weakness += deficit / 5.0
    return CellHealth(
        cell=k,
        capacity_ah=cap,
        r0_mohm=latest.cells[k].r0_mohm,
        capacity_fade=fade,
        capacity_trend=trend,
        resistance_growth=growth,
        self_discharge=leak,
        rest_drift=drift,
        days_to_capacity_limit=to_limit,
        weakness=weakness,
        rank=0,
    )


def _with_rank(c: CellHealth, rank: int) -> CellHealth:
    return CellHealth(
        c.cell,
        c.capacity_ah,
        c.r0_mohm,
        c.capacity_fade,
        c.capacity_trend,
        c.resistance_growth,
        c.self_discharge,
        c.rest_drift,
        c.days_to_capacity_limit,
        c.weakness,
        rank,
    )


def _spread(r: DayRecord) -> float:
    xs = [c.rest_dsoc_pct for c in r.cells if math.isfinite(c.rest_dsoc_pct)]
    return max(xs) - min(xs) if len(xs) == len(r.cells) and xs else _NAN


def _warnings(c: CellHealth, cfg: HealthConfig) -> list[HealthWarning]:
    out: list[HealthWarning] = []
    checks = (
        (HealthCode.CELL_SELF_DISCHARGE, c.self_discharge, cfg.self_discharge_pct_per_day,
         "leaks {v:.2f} %/day more than the median cell"),
        (HealthCode.CELL_CAPACITY_FADE, c.capacity_fade, cfg.capacity_fade_pct_per_day,
         "loses {v:.3f} % of nominal capacity per day more than the median cell"),
        (HealthCode.CELL_RESISTANCE_GROWTH, c.resistance_growth,
         cfg.resistance_growth_pct_per_day, "R0 grows {v:.2f} %/day against the median cell"),
    )  # fmt: skip
    for code, slope, threshold, text in checks:
        min_days = cfg.min_days if code is HealthCode.CELL_SELF_DISCHARGE else cfg.ageing_min_days
        if slope is None or slope.days < min_days:
            continue
        if slope.per_day > threshold and slope.z >= cfg.min_z:
            msg = (
                f"cell {c.cell + 1}: "
                + text.format(v=slope.per_day)
                + f" (+-{slope.sigma:.3f}, {slope.days} days of data)"
            )
            if code is HealthCode.CELL_SELF_DISCHARGE and c.rest_drift is not None:
                msg += f"; rest voltage {c.rest_drift.per_day:+.2f} mV/day against the median"
            out.append(HealthWarning(code, c.cell, slope.per_day, slope.sigma, slope.days, msg))
    return out


def warnings_as_alarms(warnings: Sequence[HealthWarning], since_s: float) -> tuple[Alarm, ...]:
    """The warnings as ``Alarm`` entries (severity WARNING) for the alarm output.

    ``since_s`` is the control time they were raised at (monotonic seconds, injected).
    """
    return tuple(Alarm(w.code.value, Severity.WARNING, w.message, since_s) for w in warnings)
