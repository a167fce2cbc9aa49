"""Balancing planner: SoC-based, passive or active. (Placeholder.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["BalancingConfig"]


class BalancingConfig(Section):
    """Balancing mode and guards."""

    mode: str = "passive"
    """``off``, ``passive`` (bleed resistors) or ``active`` (charge transfer)."""
