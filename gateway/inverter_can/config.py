"""Settings of the battery-CAN link to the inverter (``[inverter_can]``)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, model_validator

from gateway.core.config import Section
from gateway.core.requests import RequestThresholds

__all__ = ["InverterCanConfig", "InverterProtocol"]


class InverterProtocol(StrEnum):
    """Which battery-CAN dialect the gateway speaks to the inverter."""

    OFF = "off"
    PYLON = "pylon"
    SMA = "sma"
    VICTRON = "victron"
    PYLON_HV = "pylon-hv"

    @property
    def high_voltage(self) -> bool:
        """Pylontech HV (29-bit, polled by 0x4200) rather than the LV broadcast family."""
        return self is InverterProtocol.PYLON_HV


class InverterCanConfig(Section):
    """Battery CAN to the inverter (Pylontech LV and HV, SMA Sunny Island, Victron)."""

    protocol: InverterProtocol = InverterProtocol.OFF
    """``off``, ``pylon`` (Pylontech LV: Deye, Growatt, Goodwe, Sofar, Solis, Luxpower...),
    ``sma`` (Sunny Island), ``victron`` (GX devices) or ``pylon-hv`` (Pylontech Force-H, 29-bit)."""
    interface: str = Field(default="virtual", min_length=1)
    """python-can interface of the inverter side (``socketcan`` on a device)."""
    channel: str = Field(default="inv0", min_length=1)
    """Channel name (``can1``; the BMS's ``can.channel`` shares one bus with the inverter)."""
    bitrate: int = Field(default=500_000, gt=0, le=1_000_000)
    """Bit rate in bit/s (every battery-CAN inverter uses 500 kbit/s)."""
    period_s: float = Field(default=1.0, ge=0.2, le=5.0)
    """Period of the broadcast frames; a limit cut goes out at once, between periods."""
    keepalive_timeout_s: float = Field(default=10.0, gt=0, le=600)
    """The inverter counts as silent (event ``inverter_link_lost``) after this long without its
    keep-alive (LV 0x305/0x307) or poll (HV 0x4200)."""
    manufacturer: str = Field(default="PYLON", pattern=r"^[ -~]{1,8}$")
    """Manufacturer name in 0x35E (many inverters only accept ``PYLON``)."""
    modules: int = Field(default=1, ge=1, le=255)
    """Battery modules reported to the inverter (0x359, 0x372; HV module extremes)."""
    force_charge_soc_pct: float = Field(default=5.0, ge=0, le=100)
    """Force-charge request rises below this pack SoC while discharge is blocked ..."""
    force_charge_clear_soc_pct: float = Field(default=10.0, ge=0, le=100)
    """... and clears at or above this SoC (and the cell threshold below)."""
    force_charge_cell_v: float = Field(default=2.9, ge=0, le=5)
    """Force-charge request rises when the lowest cell is below this while discharge is blocked
    (set it a little above the chemistry's minimum cell voltage) ..."""
    force_charge_clear_cell_v: float = Field(default=3.1, ge=0, le=5)
    """... and clears once the lowest cell is back at or above this."""
    full_charge_spread_pct: float = Field(default=5.0, ge=0, le=100)
    """Full-charge request (a top-balancing charge) when the cells' SoC spread reaches this while
    no cell balances ..."""
    full_charge_clear_spread_pct: float = Field(default=2.0, ge=0, le=100)
    """... and clears when the spread is back under this."""

    @model_validator(mode="after")
    def _check_thresholds(self) -> InverterCanConfig:
        self.thresholds()
        return self

    def thresholds(self) -> RequestThresholds:
        """The request thresholds for ``core.requests``.

        Raises:
            ValueError: a clear threshold is on the wrong side of its set threshold.
        """
        return RequestThresholds(
            force_charge_soc_pct=self.force_charge_soc_pct,
            force_charge_clear_soc_pct=self.force_charge_clear_soc_pct,
            force_charge_cell_v=self.force_charge_cell_v,
            force_charge_clear_cell_v=self.force_charge_clear_cell_v,
            full_charge_spread_pct=self.full_charge_spread_pct,
            full_charge_clear_spread_pct=self.full_charge_clear_spread_pct,
        )
