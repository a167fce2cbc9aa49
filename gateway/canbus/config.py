"""Settings of the CAN link and of the DBC/signal-map pair."""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["CanConfig"]


class CanConfig(Section):
    """The CAN interface and the DBC/profile pair that decodes it."""

    interface: str = "virtual"
    """python-can interface name: ``socketcan`` on a device, ``virtual`` in tests and the demo."""
    channel: str = "bms0"
    """Channel name (``can0`` for SocketCAN)."""
