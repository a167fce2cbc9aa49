"""What ``bms-gateway run`` says at start: each link, on or off, and where it points.

A daemon that starts with the default config (CAN on the in-process ``virtual`` bus, SunSpec and
MQTT off) does nothing visible; one line per link at start tells the installer what is wired and
which setting turns the rest on. Pure: reads the settings only.
"""

from __future__ import annotations

from gateway.inverter_can.config import InverterProtocol
from gateway.settings import Settings

__all__ = ["link_summary"]


def link_summary(settings: Settings) -> list[str]:
    """One line per link: ``CAN on: ...``, ``SunSpec off (set sunspec.mode ...)``, ...."""
    can, ss, mq = settings.can, settings.sunspec, settings.mqtt
    bitrate = f", {can.bitrate} bit/s" if can.bitrate else ""
    dbc = ", ".join(can.dbc) if can.dbc else "the profile's DBC"
    lines = [f"CAN on: {can.interface} {can.channel}{bitrate}, profile {can.profile}, {dbc}"]
    if can.interface == "virtual":
        lines[0] += (
            " (in-process bus: no BMS can reach it; set can.interface = 'socketcan' on a device)"
        )
    if ss.mode == "server":
        lines.append(
            f"SunSpec on: server (model 802) on {ss.host}:{ss.port}, unit {ss.unit_id}, "
            f"base {ss.base_address}"
        )
    elif ss.mode == "client":
        lines.append(
            f"SunSpec on: client of the inverter at {ss.host}:{ss.port}, unit {ss.unit_id}"
        )
    else:
        lines.append("SunSpec off: no inverter link (set sunspec.mode = 'server' or 'client')")
    inv = settings.inverter_can
    if inv.protocol is InverterProtocol.OFF:
        lines.append("inverter CAN off (set inverter_can.protocol to talk battery CAN)")
    else:
        line = (
            f"inverter CAN on: {inv.protocol} on {inv.interface} {inv.channel}, {inv.bitrate} bit/s"
        )
        if inv.interface == "virtual":
            line += (
                " (in-process bus: no inverter can hear it; set inverter_can.interface = "
                "'socketcan' on a device)"
            )
        lines.append(line)
    if mq.enabled:
        tls = ", TLS" if mq.tls else ""
        lines.append(
            f"MQTT on: {mq.host}:{mq.port}{tls}, topics {mq.prefix}/"
            f"{settings.control.gateway_id}/..., discovery {'on' if mq.discovery else 'off'}, "
            f"commands {'on' if mq.commands else 'off'}"
        )
    else:
        lines.append("MQTT off: no diagnostics published (set mqtt.enabled = true)")
    up = settings.update
    if up.metadata_url:
        lines.append(f"updates on: signed metadata from {up.metadata_url}, state in {up.state_dir}")
    else:
        lines.append("updates off (set update.metadata_url; docs/UPDATES.md)")
    lines.append(f"state file: {settings.state.path}")
    return lines
