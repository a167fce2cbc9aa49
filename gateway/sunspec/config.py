"""Settings of the Modbus/SunSpec inverter link. (Placeholder: filled by the SunSpec work.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["SunSpecConfig"]


class SunSpecConfig(Section):
    """Modbus/SunSpec link to the inverter."""

    mode: str = "off"
    """``server`` (gateway is the battery), ``client`` (inverter is the server) or ``off``."""
