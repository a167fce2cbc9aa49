"""Home Assistant MQTT discovery configs for one gateway. Pure: no I/O.

Every entity reads the gateway's own ``state``, ``cells`` and ``alarms`` topics through a
``value_template``; all of them belong to one device (``bmsgw_<gateway_id>``) and share the
gateway's ``availability`` topic. Configs are retained; removing an entity is an empty retained
payload on its config topic. A ``null`` in our payloads renders as ``None``, which Home Assistant
shows as *unknown*, never as zero.

The configs are built without I/O; ``HaDiscovery`` remembers what the broker has and sends them
through the publisher's ``publish`` callable, in batches.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from gateway import __version__
from gateway.core.model import ChargePhase
from gateway.mqtt.topics import Topics

__all__ = [
    "DISCOVERY_BATCH",
    "DiscoveryMessage",
    "HaDevice",
    "HaDiscovery",
    "HaEntityConfig",
    "discovery_messages",
    "removal_messages",
]

DISCOVERY_BATCH = 200
"""QoS 1 discovery configs in flight at once (1500+ for a 512-cell pack)."""

Publish = Callable[[str, str], Coroutine[Any, Any, None]]
"""``publish(topic, payload)``: send one retained QoS 1 message."""


class HaDevice(BaseModel):
    """The device every entity is grouped under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifiers: list[str]
    name: str
    manufacturer: str = "bms-gateway"
    model: str = "BMS gateway"
    sw_version: str = __version__


class HaEntityConfig(BaseModel):
    """One discovery config (a subset of HA's MQTT sensor/binary_sensor options)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    unique_id: str
    state_topic: str
    value_template: str
    availability_topic: str
    payload_available: str = "online"
    payload_not_available: str = "offline"
    device: HaDevice
    unit_of_measurement: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    entity_category: str | None = None
    icon: str | None = None
    suggested_display_precision: int | None = None
    json_attributes_topic: str | None = None
    json_attributes_template: str | None = None
    payload_on: str | None = None
    payload_off: str | None = None
    options: list[str] | None = None  # the states of a ``device_class: enum`` sensor


@dataclass(frozen=True, slots=True)
class DiscoveryMessage:
    """A retained discovery message: ``payload`` is empty for a removal."""

    topic: str
    payload: str


@dataclass(frozen=True, slots=True)
class _Spec:
    component: str  # "sensor" | "binary_sensor"
    object_id: str
    name: str
    topic: str  # "state" | "cells" | "alarms" | "health"
    template: str
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = "measurement"
    category: str | None = None
    icon: str | None = None
    precision: int | None = None
    attributes: str | None = None  # json_attributes_template
    options: tuple[str, ...] | None = None  # device_class "enum"


def _limit(key: str, label: str, unit: str, device_class: str) -> list[_Spec]:
    short = key.removesuffix("_a").removesuffix("_v")  # "ccl_a" -> "ccl"
    # The attributes carry the winning term and every term: "why is my current limited".
    return [
        _Spec(
            "sensor",
            short,
            label,
            "state",
            f"{{{{ value_json.{key}.value }}}}",
            unit,
            device_class,
            precision=1,
            attributes=f"{{{{ value_json.{key} | tojson }}}}",
        ),
        _Spec(
            "sensor",
            f"{short}_reason",
            f"{label} reason",
            "state",
            f"{{{{ value_json.{key}.winner }}}}",
            state_class=None,
            category="diagnostic",
            icon="mdi:information-outline",
        ),
    ]


def _charge_specs() -> list[_Spec]:
    """The charge phase and the full-charge request, from ``state.charge``.

    ``charge`` is ``null`` in a step without the charge-phase machine: every template tests it
    first and renders ``None`` (HA: *unknown*) or, for attributes, an empty object.
    """
    return [
        _Spec("sensor", "charge_phase", "Charge phase", "state",
              "{{ value_json.charge.phase if value_json.charge else None }}",
              device_class="enum", state_class=None, icon="mdi:battery-charging-medium",
              attributes="{{ (value_json.charge or {}) | tojson }}",
              options=tuple(p.value for p in ChargePhase)),
        _Spec("sensor", "charge_phase_reason", "Charge phase reason", "state",
              "{{ value_json.charge.reason if value_json.charge else None }}", state_class=None,
              category="diagnostic", icon="mdi:information-outline"),
        _Spec("binary_sensor", "full_charge_requested", "Full charge requested", "state",
              "{{ ('ON' if value_json.charge.full_charge_requested else 'OFF')"
              " if value_json.charge else None }}",
              state_class=None, icon="mdi:battery-sync",
              attributes="{{ {'reason': value_json.charge.full_charge_reason"
              " if value_json.charge else None} | tojson }}"),
    ]  # fmt: skip


def _pack_specs() -> list[_Spec]:
    specs = [
        _Spec("sensor", "soc", "SoC", "state", "{{ value_json.soc_pct }}", "%", "battery",
              precision=1),
        _Spec("sensor", "soc_mean", "SoC mean", "state", "{{ value_json.soc_mean_pct }}", "%",
              precision=1, icon="mdi:battery-50"),
        _Spec("sensor", "soh", "SoH", "state", "{{ value_json.soh_pct }}", "%",
              precision=1, icon="mdi:battery-heart-variant"),
        _Spec("sensor", "voltage", "Voltage", "state", "{{ value_json.voltage_v }}", "V",
              "voltage", precision=2),
        _Spec("sensor", "current", "Current", "state", "{{ value_json.current_a }}", "A",
              "current", precision=2),
        _Spec("sensor", "power", "Power", "state", "{{ value_json.power_w }}", "W", "power",
              precision=0),
        _Spec("sensor", "min_cell_voltage", "Min cell voltage", "state",
              "{{ value_json.min_cell_v }}", "V", "voltage", precision=3),
        _Spec("sensor", "max_cell_voltage", "Max cell voltage", "state",
              "{{ value_json.max_cell_v }}", "V", "voltage", precision=3),
        _Spec("sensor", "cell_spread", "Cell spread", "state",
              "{{ value_json.cell_spread_mv }}", "mV", "voltage", precision=1),
        _Spec("sensor", "min_temperature", "Min temperature", "state",
              "{{ value_json.min_temp_c }}", "°C", "temperature", precision=1),
        _Spec("sensor", "max_temperature", "Max temperature", "state",
              "{{ value_json.max_temp_c }}", "°C", "temperature", precision=1),
        _Spec("sensor", "mode", "Mode", "state", "{{ value_json.mode }}", state_class=None,
              category="diagnostic", icon="mdi:state-machine"),
        _Spec("sensor", "alarm_level", "Alarm level", "state", "{{ value_json.alarm_level }}",
              state_class=None, icon="mdi:alert"),
        _Spec("binary_sensor", "problem", "Problem", "alarms",
              "{{ 'ON' if value_json.level != 'ok' else 'OFF' }}", device_class="problem",
              state_class=None, attributes="{{ {'active': value_json.active} | tojson }}"),
        _Spec("sensor", "balancing_cells", "Balancing cells", "state",
              "{{ value_json.balancing_cells }}", icon="mdi:scale-balance"),
        # Home Assistant's Energy dashboard: battery "energy going in" and "energy going out".
        _Spec("sensor", "energy_charged", "Energy charged", "state",
              "{{ value_json.energy_charged_kwh }}", "kWh", "energy",
              state_class="total_increasing", precision=3),
        _Spec("sensor", "energy_discharged", "Energy discharged", "state",
              "{{ value_json.energy_discharged_kwh }}", "kWh", "energy",
              state_class="total_increasing", precision=3),
    ]  # fmt: skip
    specs += _limit("ccl_a", "Charge current limit", "A", "current")
    specs += _limit("dcl_a", "Discharge current limit", "A", "current")
    specs += _limit("cvl_v", "Charge voltage limit", "V", "voltage")
    specs += _limit("dvl_v", "Discharge voltage limit", "V", "voltage")
    specs += _charge_specs()
    return specs


def _cell_specs(cell_count: int, sensor_count: int) -> list[_Spec]:
    specs: list[_Spec] = []
    for i in range(cell_count):
        n = f"{i + 1:03d}"  # 1-based names read better in a dashboard; templates index 0-based
        specs += [
            _Spec("sensor", f"cell_{n}_voltage", f"Cell {n} voltage", "cells",
                  f"{{{{ value_json.voltage_v[{i}] }}}}", "V", "voltage", precision=3),
            _Spec("sensor", f"cell_{n}_soc", f"Cell {n} SoC", "cells",
                  f"{{{{ value_json.soc_pct[{i}] if value_json.soc_pct else None }}}}", "%",
                  "battery", precision=1),
            _Spec("binary_sensor", f"cell_{n}_balancing", f"Cell {n} balancing", "cells",
                  f"{{{{ 'ON' if value_json.balancing[{i}] else 'OFF' }}}}", state_class=None,
                  icon="mdi:scale-balance"),
        ]  # fmt: skip
    for i in range(sensor_count):
        n = f"{i + 1:03d}"
        specs.append(
            _Spec("sensor", f"sensor_{n}_temperature", f"Sensor {n} temperature", "cells",
                  f"{{{{ value_json.sensor_temp_c[{i}] }}}}", "°C", "temperature", precision=1)
        )  # fmt: skip
    return specs


def _health_specs(cell_count: int, per_cell: bool) -> list[_Spec]:
    """Sensors of the ``health`` topic: pack forecasts and, per cell, the trends."""
    specs = [
        _Spec("sensor", "weakest_cell", "Weakest cell", "health",
              "{{ value_json.weakest[0] + 1 if value_json.weakest else None }}", state_class=None,
              category="diagnostic", icon="mdi:battery-alert-variant-outline"),
        _Spec("sensor", "days_to_capacity_limit", "Days to capacity limit", "health",
              "{{ value_json.min_days_to_capacity_limit }}", "d", "duration", precision=0,
              category="diagnostic"),
        _Spec("sensor", "days_to_spread_limit", "Days to SoC spread limit", "health",
              "{{ value_json.days_to_spread_limit }}", "d", "duration", precision=0,
              category="diagnostic"),
    ]  # fmt: skip
    if not per_cell:
        return specs
    for i in range(cell_count):
        n = f"{i + 1:03d}"
        specs += [
            _Spec("sensor", f"cell_{n}_capacity", f"Cell {n} capacity", "health",
                  f"{{{{ value_json.capacity_ah[{i}] }}}}", "Ah", precision=2,
                  icon="mdi:battery-heart-variant", category="diagnostic"),
            _Spec("sensor", f"cell_{n}_resistance", f"Cell {n} resistance", "health",
                  f"{{{{ value_json.r0_mohm[{i}] }}}}", "mΩ", precision=3, icon="mdi:omega",
                  category="diagnostic"),
            _Spec("sensor", f"cell_{n}_self_discharge", f"Cell {n} self-discharge", "health",
                  f"{{{{ value_json.self_discharge_pct_per_day[{i}] }}}}", "%/d", precision=2,
                  icon="mdi:battery-minus-outline", category="diagnostic"),
            _Spec("sensor", f"cell_{n}_capacity_fade", f"Cell {n} capacity fade", "health",
                  f"{{{{ value_json.capacity_fade_pct_per_day[{i}] }}}}", "%/d", precision=3,
                  icon="mdi:trending-down", category="diagnostic"),
            _Spec("sensor", f"cell_{n}_resistance_growth", f"Cell {n} resistance growth",
                  "health", f"{{{{ value_json.resistance_growth_pct_per_day[{i}] }}}}", "%/d",
                  precision=2, icon="mdi:trending-up", category="diagnostic"),
        ]  # fmt: skip
    return specs


def _specs(cell_count: int, sensor_count: int, per_cell: bool, health: bool) -> list[_Spec]:
    specs = _pack_specs()
    if per_cell:
        specs += _cell_specs(cell_count, sensor_count)
    if health:
        specs += _health_specs(cell_count, per_cell)
    return specs


def discovery_messages(
    topics: Topics,
    cell_count: int,
    sensor_count: int,
    *,
    per_cell: bool = True,
    health: bool = False,
) -> list[DiscoveryMessage]:
    """Retained configs for the pack sensors and (``per_cell``) the per-cell sensors; with
    ``health`` also the sensors of the ``health`` topic (per cell when ``per_cell``)."""
    device = HaDevice(identifiers=[topics.node_id], name=f"BMS {topics.gateway_id}")
    source = {
        "state": topics.state,
        "cells": topics.cells,
        "alarms": topics.alarms,
        "health": topics.health,
    }
    out: list[DiscoveryMessage] = []
    for s in _specs(cell_count, sensor_count, per_cell, health):
        binary = s.component == "binary_sensor"
        cfg = HaEntityConfig(
            name=s.name,
            unique_id=f"{topics.node_id}_{s.object_id}",
            state_topic=source[s.topic],
            value_template=s.template,
            availability_topic=topics.availability,
            device=device,
            unit_of_measurement=s.unit,
            device_class=s.device_class,
            state_class=None if binary else s.state_class,
            entity_category=s.category,
            icon=s.icon,
            suggested_display_precision=s.precision,
            json_attributes_topic=source[s.topic] if s.attributes else None,
            json_attributes_template=s.attributes,
            payload_on="ON" if binary else None,
            payload_off="OFF" if binary else None,
            options=list(s.options) if s.options else None,
        )
        out.append(
            DiscoveryMessage(
                topics.discovery(s.component, s.object_id), cfg.model_dump_json(exclude_none=True)
            )
        )
    return out


def removal_messages(
    topics: Topics,
    cell_count: int,
    sensor_count: int,
    *,
    per_cell: bool = True,
    health: bool = False,
) -> list[DiscoveryMessage]:
    """Empty retained payloads that remove every entity ``discovery_messages`` would create."""
    return [
        DiscoveryMessage(topics.discovery(s.component, s.object_id), "")
        for s in _specs(cell_count, sensor_count, per_cell, health)
    ]


class HaDiscovery:
    """What the broker has of our discovery configs; sends them when they are missing.

    The configs go out once per connection and again when the pack's shape (cell and sensor
    counts) changes or Home Assistant announces itself (``forget``). With discovery off the
    same entities are removed instead.

    Args:
        topics: the gateway's topics.
        enabled: ``mqtt.discovery`` (``False``: send removals).
        per_cell: ``mqtt.discovery_cells``.
        health: the health history runs (its sensors too).
    """

    def __init__(self, topics: Topics, *, enabled: bool, per_cell: bool, health: bool) -> None:
        self.topics = topics
        self.enabled = enabled
        self.per_cell = per_cell
        self.health = health
        self._sent: tuple[int, int] | None = None

    def forget(self) -> None:
        """The broker may not have the configs (a new connection, Home Assistant's birth)."""
        self._sent = None

    async def send(self, publish: Publish, cell_count: int, sensor_count: int) -> int | None:
        """Send the configs (or removals) unless the broker has them for this shape.

        Returns:
            How many messages were sent, or ``None`` when nothing was due.
        """
        counts = (cell_count, sensor_count)
        if self._sent == counts:
            return None
        build = discovery_messages if self.enabled else removal_messages
        msgs = build(self.topics, *counts, per_cell=self.per_cell, health=self.health)
        for i in range(0, len(msgs), DISCOVERY_BATCH):
            async with asyncio.TaskGroup() as tg:
                for m in msgs[i : i + DISCOVERY_BATCH]:
                    tg.create_task(publish(m.topic, m.payload))
        self._sent = counts
        return len(msgs)
