"""Protection: warnings and alarms with hysteresis, debounce and latching. (Placeholder.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["ProtectionConfig"]


class ProtectionConfig(Section):
    """Protection thresholds; defaults per chemistry."""
