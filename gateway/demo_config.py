"""What ``bms-gateway demo`` changes in the user's settings, and what closes its loop.

The demo never touches a real installation: it publishes as ``demo-<host>`` with its own MQTT
client id (never ``bms1``, a real gateway's default), runs CAN on virtual buses and Modbus, MQTT
and the dashboard on loopback (Modbus on ``sunspec.host`` when the config sets one). With
``--speed`` the frame periods and the input timeouts stretch together, so a value keeps its
meaning in simulated seconds. Pure functions of the settings; ``gateway.demo`` runs them.
"""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from pathlib import Path

from gateway.core.freshness import TimeoutsConfig
from gateway.inverter_can.config import InverterProtocol
from gateway.settings import Settings
from gateway.sim.emitter import FrameRates

__all__ = [
    "DEMO_RAMP_HOLD_S",
    "INVERTERS",
    "DemoInverter",
    "demo_identity",
    "demo_rates",
    "demo_settings",
    "modbus_host",
]

DEMO_RAMP_HOLD_S = 5.0
"""The demo's ``limits.ramp_hold_s`` unless the config sets one: a first screen with CCL held at
0 A for the default 30 s looks broken to someone trying the gateway out."""


class DemoInverter(StrEnum):
    """What drives the Modbus side of the demo (``demo --inverter``)."""

    SUNSPEC = "sunspec"
    """The simulated storage controller: polls model 802, writes CtrlHb, follows the limits."""
    PYLON = "pylon"
    """A simulated hybrid inverter on battery CAN, Pylontech LV dialect."""
    SMA = "sma"
    """The same, SMA dialect."""
    VICTRON = "victron"
    """The same, Victron dialect."""
    PYLON_HV = "pylon-hv"
    """A simulated HV inverter polling Pylontech HV (29-bit, 0x4200)."""
    NONE = "none"
    """Nothing: a person's own SunSpec client or inverter polls the gateway."""

    @property
    def battery_can(self) -> bool:
        """Whether the inverter talks battery CAN (``[inverter_can]``) instead of SunSpec."""
        return self not in (DemoInverter.SUNSPEC, DemoInverter.NONE)


#: ``--inverter`` choices, as strings.
INVERTERS = tuple(k.value for k in DemoInverter)


def demo_identity(host: str | None = None) -> str:
    """``demo-<host>``: the demo's gateway id, a valid topic level (``control.gateway_id``)."""
    name = host if host is not None else socket.gethostname()
    clean = "".join(c if c.isalnum() or c in "_-" else "-" for c in name.split(".")[0])
    return f"demo-{clean.strip('-') or 'host'}"[:64]


def modbus_host(settings: Settings) -> str:
    """Where the demo's Modbus server listens: loopback, unless the config sets ``sunspec.host``
    (``0.0.0.0`` lets an inverter on the LAN poll the demo, with ``--inverter none``)."""
    return settings.sunspec.host if "host" in settings.sunspec.model_fields_set else "127.0.0.1"


def demo_settings(
    settings: Settings,
    *,
    channel: str,
    modbus_port: int,
    mqtt_port: int,
    state_dir: Path,
    gateway_id: str | None = None,
    inverter: DemoInverter | str = DemoInverter.SUNSPEC,
    speed: float = 1.0,
    web_port: int | None = None,
) -> Settings:
    """The user's settings with the demo's links and identity, and the web dashboard on
    loopback (``web_port``; the configured one when None).

    Virtual CAN, loopback MQTT, Modbus on loopback (or ``sunspec.host`` when the config sets
    it); gateway id ``gateway_id`` (default ``demo-<host>``)
    and MQTT client id ``bms-gateway-<gateway_id>-<pid>`` whatever the config says, so the demo
    never takes over a real gateway's topics or client id; the ramp hold shortened to
    ``DEMO_RAMP_HOLD_S`` unless the config (file or environment) sets ``limits.ramp_hold_s``.

    ``inverter``: ``sunspec`` and ``none`` serve model 802; a battery-CAN dialect speaks it on a
    second virtual channel (``<channel>-inv``) with SunSpec off.

    ``speed`` stretches the input timeouts as ``demo_rates`` stretches the frame periods: a
    value past its timeout is unknown on every output, and at 240x a 10 ms hiccup of a busy
    machine is 2.4 s of pack time, longer than the 2 s current timeout.
    """
    kind = DemoInverter(inverter)
    gid = gateway_id or demo_identity()
    limits = settings.limits
    if "ramp_hold_s" not in limits.model_fields_set:
        limits = limits.model_copy(update={"ramp_hold_s": DEMO_RAMP_HOLD_S})
    return settings.model_copy(
        update={
            "timeouts": _stretched_timeouts(settings, speed),
            "can": settings.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "control": settings.control.model_copy(update={"gateway_id": gid}),
            "limits": limits,
            **_inverter_links(settings, kind, channel, modbus_port),
            "mqtt": settings.mqtt.model_copy(
                update={
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": mqtt_port,
                    "commands": True,
                    "client_id": f"bms-gateway-{gid}-{os.getpid()}",
                }
            ),
            "state": settings.state.model_copy(update={"path": str(state_dir / "estimator.json")}),
            "web": settings.web.model_copy(
                update={
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": web_port if web_port is not None else settings.web.port,
                }
            ),
        }
    )


def _stretched_timeouts(settings: Settings, speed: float) -> TimeoutsConfig:
    """``[timeouts]`` stretched for ``speed`` as ``demo_rates`` stretches the frame periods."""
    k = max(1.0, speed / 20.0)
    t = settings.timeouts
    return t.model_copy(
        update={
            "cell_voltage_timeout_s": min(60.0, t.cell_voltage_timeout_s * k),
            "temperature_timeout_s": min(300.0, t.temperature_timeout_s * k),
            "current_timeout_s": min(60.0, t.current_timeout_s * k),
            "pack_voltage_timeout_s": min(60.0, t.pack_voltage_timeout_s * k),
        }
    )


def _inverter_links(
    settings: Settings, kind: DemoInverter, channel: str, modbus_port: int
) -> dict[str, object]:
    """``[sunspec]`` and ``[inverter_can]`` for ``kind``: one of them closes the loop."""
    return {
        "sunspec": settings.sunspec.model_copy(
            update={
                "mode": "off" if kind.battery_can else "server",
                "host": modbus_host(settings),
                "port": modbus_port,
            }
        ),
        "inverter_can": settings.inverter_can.model_copy(
            update={
                "protocol": InverterProtocol(kind.value if kind.battery_can else "off"),
                "interface": "virtual",
                "channel": f"{channel}-inv",
            }
        ),
    }


def demo_rates(speed: float) -> FrameRates:
    """Frame periods for ``speed``: the DBC's at real time, sparser when accelerated.

    At 240x the DBC rates would be ~20,000 frames per wall second; stretching the periods keeps
    the bus near 1,000 while every period stays well inside the gateway's input timeouts.
    """
    k = max(1.0, speed / 20.0)
    base = FrameRates()
    return FrameRates(
        cell_voltages_s=min(0.1 * k, 1.0),
        pack_values_s=min(0.02 * k, 0.5),
        cell_temperatures_s=min(1.0 * k, 2.0),
        balancing_status_s=base.balancing_status_s,
    )
