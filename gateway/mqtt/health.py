"""The ``health`` topic payload: cell health trends, ranking, forecasts, warnings. Pure: no I/O.

Per-cell values are arrays in cell order (index 0 = cell 1), as in the ``cells`` payload; a
trend not known yet (too few days) is ``null``. Rates are per day; see
``gateway.core.health.CellHealth`` for their exact meaning. docs/MQTT.md is the reference.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict

from gateway.core.health import HealthReport, Slope
from gateway.mqtt.payloads.common import rounded as _r

__all__ = ["HealthPayload", "HealthWarningItem", "health_payload"]


def _date(day: int | None) -> str | None:
    """A day number (proleptic Gregorian ordinal) as an ISO date; ``None`` when not a date."""
    if day is None or day < 1:
        return None
    try:
        return dt.date.fromordinal(day).isoformat()
    except (ValueError, OverflowError):
        return None


class HealthWarningItem(BaseModel):
    """One trend warning with its evidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str
    cell: int  # 0-based, like the arrays
    value: float | None
    sigma: float | None
    days: int
    message: str


class HealthPayload(BaseModel):
    """Topic ``health`` (retained; daily and on ``cmd/health``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    gateway_id: str
    time: float | None
    first_day: str | None
    last_day: str | None
    days: int
    capacity_ah: list[float | None]
    r0_mohm: list[float | None]
    capacity_fade_pct_per_day: list[float | None]
    capacity_fade_sigma: list[float | None]
    resistance_growth_pct_per_day: list[float | None]
    resistance_growth_sigma: list[float | None]
    self_discharge_pct_per_day: list[float | None]
    self_discharge_sigma: list[float | None]
    rest_drift_mv_per_day: list[float | None]
    days_to_capacity_limit: list[float | None]
    rank: list[int]
    weakest: list[int]
    soc_spread_pct: float | None
    soc_spread_trend_pct_per_day: float | None
    days_to_spread_limit: float | None
    min_days_to_capacity_limit: float | None
    warnings: list[HealthWarningItem]


def _v(s: Slope | None, nd: int) -> float | None:
    return None if s is None else _r(s.per_day, nd)


def _s(s: Slope | None, nd: int) -> float | None:
    return None if s is None else _r(s.sigma, nd)


def health_payload(report: HealthReport, gateway_id: str, time_s: float | None) -> HealthPayload:
    """The ``health`` payload of one report (``time_s``: Unix seconds from the caller)."""
    c = report.cells
    return HealthPayload(
        gateway_id=gateway_id,
        time=_r(time_s, 3),
        first_day=_date(report.first_day),
        last_day=_date(report.last_day),
        days=report.days,
        capacity_ah=[_r(x.capacity_ah, 3) for x in c],
        r0_mohm=[_r(x.r0_mohm, 4) for x in c],
        capacity_fade_pct_per_day=[_v(x.capacity_fade, 4) for x in c],
        capacity_fade_sigma=[_s(x.capacity_fade, 4) for x in c],
        resistance_growth_pct_per_day=[_v(x.resistance_growth, 3) for x in c],
        resistance_growth_sigma=[_s(x.resistance_growth, 3) for x in c],
        self_discharge_pct_per_day=[_v(x.self_discharge, 3) for x in c],
        self_discharge_sigma=[_s(x.self_discharge, 3) for x in c],
        rest_drift_mv_per_day=[_v(x.rest_drift, 2) for x in c],
        days_to_capacity_limit=[_r(x.days_to_capacity_limit, 0) for x in c],
        rank=[x.rank for x in c],
        weakest=list(report.ranking[:3]),
        soc_spread_pct=_r(report.soc_spread_pct, 2),
        soc_spread_trend_pct_per_day=_v(report.spread_trend, 3),
        days_to_spread_limit=_r(report.days_to_spread_limit, 0),
        min_days_to_capacity_limit=_r(report.days_to_capacity_limit, 0),
        warnings=[
            HealthWarningItem(
                code=w.code.value,
                cell=w.cell,
                value=_r(w.value, 4),
                sigma=_r(w.sigma, 4),
                days=w.days,
                message=w.message,
            )
            for w in report.warnings
        ],
    )
