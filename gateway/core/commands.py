"""Commands from outside (MQTT, Modbus, the web page), applied by the control loop.

A command reaches ``Controller.command(cmd, now_s)`` through ``Gateway.command`` and is
answered with a ``CommandResult``. Importable from :mod:`gateway.core.model` as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.kinds import BalancingMode

__all__ = [
    "Command",
    "CommandResult",
    "RequestHealthReport",
    "ResetAlarms",
    "SetBalancingMode",
    "SetUserCurrentCap",
]


@dataclass(frozen=True, slots=True)
class ResetAlarms:
    """Clear latched alarms whose cause has gone."""

    source: str = ""


@dataclass(frozen=True, slots=True)
class SetBalancingMode:
    """Switch the balancing mode."""

    mode: BalancingMode
    source: str = ""


@dataclass(frozen=True, slots=True)
class SetUserCurrentCap:
    """A user cap on charge/discharge current. It can only lower the computed limits."""

    charge_a: float | None
    discharge_a: float | None
    source: str = ""


@dataclass(frozen=True, slots=True)
class RequestHealthReport:
    """Analyse the health history now and publish the report (MQTT ``cmd/health``)."""

    source: str = ""


Command = ResetAlarms | SetBalancingMode | SetUserCurrentCap | RequestHealthReport


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The answer to a command."""

    accepted: bool
    message: str
