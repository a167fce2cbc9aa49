"""Settings of the Modbus/SunSpec inverter link."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field

from gateway.core.config import Section

__all__ = ["SunSpecConfig"]


class SunSpecConfig(Section):
    """Modbus/SunSpec link to the inverter.

    ``server``: the gateway is the battery (SunSpec model 802), an inverter or storage controller
    polls it. ``client``: the inverter is the Modbus server (model 124 or 702) and the gateway
    writes its charge and discharge limits to it.
    """

    mode: Literal["off", "server", "client"] = "off"
    """``server`` (gateway is the battery), ``client`` (inverter is the server) or ``off``."""
    host: str = "127.0.0.1"
    """Server mode: address to bind (``0.0.0.0`` to accept the inverter from the network).
    Client mode: the inverter's address."""
    port: int = Field(default=5020, ge=0, le=65535)
    """Server mode: port to listen on (502 on a device needs CAP_NET_BIND_SERVICE; 0 picks a free
    port). Client mode: the inverter's port (usually 502)."""
    unit_id: int = Field(default=1, ge=0, le=255)
    """Modbus unit (device) id: ours in server mode, the inverter's in client mode."""

    # --- server mode ---
    base_address: int = Field(default=40000, ge=0, le=65000)
    """Server mode: 0-based PDU address of the ``SunS`` marker."""
    allowed_clients: tuple[str, ...] = ()
    """Server mode: client addresses or networks allowed to connect (``192.168.1.20``,
    ``10.0.0.0/24``); empty allows every client."""
    max_clients: int = Field(default=4, ge=1, le=64)
    """Server mode: Modbus connections served at once (a storage controller needs one or two).
    A connection beyond it replaces the one that has been idle longest."""
    idle_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    """Server mode: a connection without a complete request for this long is closed."""
    frame_timeout_s: float = Field(default=2.0, gt=0, le=60)
    """Server mode: a connection holding half a request frame for this long is closed."""
    ctrl_hb_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    """Server mode: once the controller has written CtrlHb, how long it may stay unchanged before
    AChaMax = ADisChaMax = 0 and Evt1 bit 0 (communication error) are published."""
    control: Literal["remote", "local"] = "remote"
    """Server mode: LocRemCtl. SetOp (connect/disconnect) is honoured only in ``remote``."""
    cells_per_module: int = Field(default=16, ge=1, le=512)
    """Server mode: cells per module, for CellVMaxMod/CellVMinMod (module = cell // this + 1)."""
    charge_positive: bool = True
    """Server mode: sign of model 802 A and W (SunSpec leaves it open): True = charging positive."""
    manufacturer: str = Field(default="bms-gateway", max_length=32)
    """Server mode: model 1 Mn."""
    model_name: str = Field(default="bms-gateway", max_length=32)
    """Server mode: model 1 Md."""
    serial: str = Field(default="0", max_length=32)
    """Server mode: model 1 SN."""

    # --- client mode ---
    base_addresses: tuple[int, ...] = (40000, 0, 50000)
    """Client mode: base addresses scanned for ``SunS``, in order."""
    prefer_model: Literal[124, 702] = 124
    """Client mode: the storage-control model used when the inverter has both."""
    poll_s: float = Field(default=1.0, gt=0, le=60)
    """Client mode: how often the inverter's state is read back."""
    revert_timeout_s: int = Field(default=60, ge=1, le=65534)
    """Client mode: InOutWRte_RvrtTms written with the limits (the inverter reverts after it)."""
    rewrite_s: float = Field(default=10.0, gt=0, le=3600)
    """Client mode: the limits are rewritten at least this often (and at once when they change);
    must be well within ``revert_timeout_s`` (at most half of it)."""
    send_revert_timeout: bool = True
    """Client mode quirk: False for inverters that reject InOutWRte_RvrtTms."""
    send_cha_gri_set: bool = True
    """Client mode quirk: False for inverters that reject ChaGriSet."""
    cha_gri_set: Literal["pv", "grid"] = "grid"
    """Client mode: ChaGriSet value (whether the inverter may charge from the grid). With
    ``pv``, GRID is still written while a full charge that ``charge.full_charge_from_grid``
    allows is requested below ``charge.rebulk_soc_pct``."""
    request_timeout_s: float = Field(default=1.0, gt=0, le=60)
    """Client mode: timeout of one Modbus request."""
    backoff_max_s: float = Field(default=30.0, gt=0, le=600)
    """Client mode: a lost inverter is probed every 1-2 s (jittered); a value below 2 s shortens
    that further (tests)."""

    def model_post_init(self, __context: object) -> None:
        """Check what needs more than a type."""
        for entry in self.allowed_clients:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"allowed_clients: {entry!r} is not an IP address or network"
                ) from None
        if self.rewrite_s > self.revert_timeout_s / 2:
            raise ValueError(
                f"rewrite_s (={self.rewrite_s}) must be at most half of revert_timeout_s "
                f"(={self.revert_timeout_s})"
            )
        if not self.base_addresses:
            raise ValueError("base_addresses must not be empty")
