"""Charge/discharge current and voltage limits as the minimum of named terms. (Placeholder.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["LimitsConfig"]


class LimitsConfig(Section):
    """Limit tables, maxima and ramps."""

    max_charge_a: float = 100.0
    """Configured maximum charge current."""
    max_discharge_a: float = 100.0
    """Configured maximum discharge current."""
