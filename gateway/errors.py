"""The gateway's exception tree. Adapters translate third-party errors into these."""

from __future__ import annotations

__all__ = [
    "CanLinkError",
    "ConfigError",
    "FrameError",
    "GatewayError",
    "HistoryError",
    "LinkError",
    "ModbusLinkError",
    "MqttLinkError",
    "SafetyFault",
    "UpdateError",
]


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """A setting, a file named by a setting, or a profile is wrong. The message names it."""


class FrameError(GatewayError):
    """A CAN frame could not be decoded or mapped. Counted and reported, never fatal."""


class LinkError(GatewayError):
    """A link to a peer (CAN, Modbus, MQTT) failed; the adapter reconnects."""


class CanLinkError(LinkError):
    """The CAN interface failed or went bus-off."""


class ModbusLinkError(LinkError):
    """A Modbus request failed or the peer answered with an exception."""


class MqttLinkError(LinkError):
    """The MQTT broker is unreachable or refused us."""


class SafetyFault(GatewayError):
    """An internal inconsistency that forces the outputs to their safe values."""


class HistoryError(GatewayError):
    """The health history database cannot be opened, read or written (the path names it)."""


class UpdateError(GatewayError):
    """An update was refused or failed (bad signature, expired metadata, unsafe pack, failed
    flash or health check). The message is one line that says which and why."""
