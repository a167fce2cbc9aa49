"""Per-cell state of charge, capacity and resistance estimation. (Placeholder: the SoC work.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["SocConfig"]


class SocConfig(Section):
    """State estimator settings."""

    ocv_table: str | None = None
    """Path of a user OCV table (CSV ``soc_pct,ocv_v``); default: the chemistry's built-in table."""
