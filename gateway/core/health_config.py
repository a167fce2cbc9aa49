"""The ``[health]`` settings: the daily history and the thresholds of the trend warnings.

The analytics that use them are :mod:`gateway.core.health`, which re-exports ``HealthConfig``.
"""

from __future__ import annotations

from pydantic import Field

from gateway.core.daily import DailyConfig

__all__ = ["HealthConfig"]


class HealthConfig(DailyConfig):
    """Cell health trends: history, analytics and trend warnings."""

    enabled: bool = True
    """Keep the daily history and run the health analytics."""
    history_path: str | None = Field(default=None, examples=["/var/lib/bms-gateway/history.sqlite"])
    """SQLite history file; default: ``history.sqlite`` beside ``state.path``."""
    retention_days: int = Field(default=3650, ge=30, le=36500)
    """Daily rows older than this are deleted (ten years of a 16-cell pack: about 8 MB)."""
    flush_s: float = Field(default=300.0, gt=0, le=86400)
    """How often the day so far is written to the history (also at day end and on stop)."""
    window_days: int = Field(default=30, ge=3, le=3650)
    """Days of history a trend is fitted over (the most recent ones)."""
    min_days: int = Field(default=4, ge=3, le=3650)
    """Fewest days with data before ``cell_self_discharge`` can be raised."""
    settle_days: int = Field(default=5, ge=0, le=3650)
    """Days at the start of the history not used for capacity and R0 trends: the estimator
    starts every cell from the nominal values and needs a few days to learn each one (the cells
    then spread apart, which would read as fade and growth)."""
    capacity_max_sigma_pct: float = Field(default=1.0, gt=0, le=100)
    """Capacity estimates less certain than this (1 sigma, % of nominal) are left out of the
    trends: the estimator is still learning that cell (its capacity moves by the learning)."""
    ageing_min_days: int = Field(default=18, ge=3, le=3650)
    """Fewest days with data before ``cell_capacity_fade`` or ``cell_resistance_growth`` can be
    raised: capacity is learned only between two confident SoC points and R0 from current
    steps, so a few days of either are mostly the estimator settling."""
    min_z: float = Field(default=3.0, ge=0, le=100)
    """A trend warns only when its slope is this many standard errors from zero."""
    self_discharge_pct_per_day: float = Field(default=0.4, gt=0, le=100)
    """``cell_self_discharge``: leak beyond the median cell's, % of capacity per day."""
    capacity_fade_pct_per_day: float = Field(default=0.025, gt=0, le=100)
    """``cell_capacity_fade``: capacity lost per day beyond the median cell, % of nominal."""
    resistance_growth_pct_per_day: float = Field(default=0.3, gt=0, le=100)
    """``cell_resistance_growth``: R0 growth per day against the median cell, %."""
    capacity_limit_pct: float = Field(default=80.0, gt=0, lt=100)
    """Forecast: days until a cell's capacity reaches this % of nominal (end of life)."""
    spread_limit_pct: float = Field(default=10.0, gt=0, le=100)
    """Forecast: days until the SoC spread at rest (max - min cell) reaches this %."""
