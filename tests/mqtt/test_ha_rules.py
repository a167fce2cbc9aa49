"""Every Home Assistant discovery config checked against Home Assistant's own rules.

The rules are those Home Assistant applies when it loads an MQTT sensor (source:
homeassistant/components/sensor/const.py ``DEVICE_CLASS_UNITS`` and
``DEVICE_CLASS_STATE_CLASSES``, homeassistant/components/binary_sensor ``BinarySensorDeviceClass``,
homeassistant/components/mqtt/discovery.py ``TOPIC_MATCHER``, and the Energy dashboard's
requirement of ``device_class: energy`` with ``state_class: total`` or ``total_increasing``):

- a device class allows only its units and state classes;
- an ``enum`` sensor has ``options``, no unit, no state class and no display precision, and
  renders one of its options (or unknown); no other sensor has ``options``;
- a sensor with a unit or a state class must render a number (else HA rejects the state);
- unique ids are unique and stable (the same across restarts and pack sizes);
- every entity has the gateway's availability topic with the payloads the publisher sends;
- discovery topics match HA's topic matcher.

The templates are rendered with Jinja2 (the engine HA uses) against payloads of real control
steps, so a template that reads a missing field or renders a non-number fails here.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import jinja2
import pytest

from gateway.control import Controller
from gateway.core.model import ControlOutput
from gateway.mqtt.discovery import discovery_messages
from gateway.mqtt.payloads import alarms_payload, cells_payload, state_payload
from gateway.mqtt.topics import Topics
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

# homeassistant/components/sensor/const.py (2024.x), the device classes we may use.
UNITS: dict[str, set[str]] = {
    "battery": {"%"},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
    "current": {"A", "mA"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal",
               "Mcal", "Gcal"},
    "temperature": {"°C", "°F", "K"},
}  # fmt: skip
STATE_CLASSES: dict[str, set[str]] = {
    "battery": {"measurement"},
    "voltage": {"measurement"},
    "current": {"measurement"},
    "power": {"measurement"},
    "energy": {"total", "total_increasing"},
    "temperature": {"measurement"},
}
BINARY_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}  # fmt: skip
ENTITY_CATEGORIES = {"config", "diagnostic"}
# homeassistant/components/mqtt/discovery.py TOPIC_MATCHER
TOPIC_MATCHER = re.compile(
    r"(?P<component>\w+)/(?:(?P<node_id>[a-zA-Z0-9_-]+)/)?(?P<object_id>[a-zA-Z0-9_-]+)/config"
)

TOPICS = Topics("bms", "gw-1.a")
ENV = jinja2.Environment(undefined=jinja2.StrictUndefined)


def _outputs() -> list[ControlOutput]:
    """A starting step (nothing known yet) and a running one (everything known)."""
    ctrl = Controller(Settings())
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=60.0), seed=1)
    first = ctrl.step(0.0)
    out = first
    for _ in range(90):
        sim.step(1.0, -20.0)
        ctrl.ingest(sim.readings())
        out = ctrl.step(sim.t_s)
    return [first, out]


def _payloads(out: ControlOutput) -> dict[str, Any]:
    gid = TOPICS.gateway_id
    return {
        TOPICS.state: json.loads(state_payload(out, gid, 1.7e9).model_dump_json()),
        TOPICS.cells: json.loads(cells_payload(out, gid, 1.7e9).model_dump_json()),
        TOPICS.alarms: json.loads(alarms_payload(out, gid, 1.7e9).model_dump_json()),
    }


def _configs(cells: int = 16, sensors: int = 4) -> list[tuple[str, dict[str, Any]]]:
    msgs = discovery_messages(TOPICS, cell_count=cells, sensor_count=sensors)
    return [(m.topic, json.loads(m.payload)) for m in msgs]


def test_units_and_state_classes_are_allowed_for_their_device_class() -> None:
    for topic, c in _configs():
        component = TOPIC_MATCHER.fullmatch(topic.removeprefix("homeassistant/"))
        assert component is not None, topic
        dc = c.get("device_class")
        if component["component"] == "binary_sensor":
            assert dc is None or dc in BINARY_DEVICE_CLASSES, topic
            assert "unit_of_measurement" not in c, topic
            assert "state_class" not in c, topic
            continue
        assert component["component"] == "sensor"
        unit, sc = c.get("unit_of_measurement"), c.get("state_class")
        assert ("options" in c) == (dc == "enum"), f"{topic}: options only with device class enum"
        if dc == "enum":
            assert unit is None, topic
            assert sc is None, topic
            assert "suggested_display_precision" not in c, topic
            opts = c["options"]
            assert opts, topic
            assert all(isinstance(o, str) and o for o in opts), topic
            assert len(set(opts)) == len(opts), topic
        elif dc is not None:
            assert dc in UNITS, f"{topic}: device class {dc} not in our table"
            assert unit in UNITS[dc], f"{topic}: unit {unit!r} not allowed for {dc}"
            if sc is not None:
                assert sc in STATE_CLASSES[dc], f"{topic}: state class {sc} not allowed for {dc}"
        assert sc in (None, "measurement", "total", "total_increasing"), topic
        assert c.get("entity_category") in (None, *ENTITY_CATEGORIES), topic


def test_energy_counters_fit_the_energy_dashboard() -> None:
    energy = {c["unique_id"]: c for _, c in _configs() if c.get("device_class") == "energy"}
    node = TOPICS.node_id
    assert set(energy) == {f"{node}_energy_charged", f"{node}_energy_discharged"}
    for c in energy.values():
        assert c["state_class"] == "total_increasing"
        assert c["unit_of_measurement"] == "kWh"


def test_unique_ids_are_unique_and_stable() -> None:
    configs = [c for _, c in _configs()]
    ids = [c["unique_id"] for c in configs]
    assert len(set(ids)) == len(ids)
    # Same ids from a fresh build (a restart) and for the same entities of a bigger pack.
    again = {c["unique_id"] for _, c in _configs()}
    bigger = {c["unique_id"] for _, c in _configs(cells=32, sensors=8)}
    assert again == set(ids)
    assert set(ids) <= bigger
    for uid in ids:
        assert re.fullmatch(r"[a-z0-9_]+", uid), uid
        assert uid.startswith(TOPICS.node_id + "_")


def test_every_entity_has_the_gateway_availability() -> None:
    for _, c in _configs():
        assert c["availability_topic"] == TOPICS.availability
        # The publisher's birth, heartbeat and last will use exactly these payloads.
        assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
        assert c["device"]["identifiers"] == [TOPICS.node_id]


@pytest.mark.parametrize("which", ["starting", "running"])
def test_templates_render_what_the_entity_promises(which: str) -> None:
    out = _outputs()[0 if which == "starting" else 1]
    payloads = _payloads(out)
    for topic, c in _configs():
        value_json = payloads[c["state_topic"]]
        text = ENV.from_string(c["value_template"]).render(value_json=value_json).strip()
        if "json_attributes_template" in c:
            attrs = ENV.from_string(c["json_attributes_template"]).render(value_json=value_json)
            assert isinstance(json.loads(attrs), dict), topic
        if "/binary_sensor/" in topic:
            assert text in ("ON", "OFF"), f"{topic}: {text!r}"
        elif c.get("device_class") == "enum":
            assert text in c["options"], f"{topic}: {text!r} not in {c['options']}"
        elif "unit_of_measurement" in c or "state_class" in c:
            # HA's rule: a numeric sensor's state is a number or unknown ("None").
            if text == "None":
                assert which == "starting" or c["state_class"] == "total_increasing", topic
                continue
            assert math.isfinite(float(text)), f"{topic}: {text!r}"
        else:
            assert (text and text != "None") or which == "starting", topic
    if which == "running":
        state = payloads[TOPICS.state]
        assert state["energy_discharged_kwh"] > 0


def test_charge_templates_render_unknown_when_the_state_has_no_charge() -> None:
    """A state without ``charge`` (no charge-phase machine): the charge entities show unknown
    ("None"), their attributes an empty object, and nothing else breaks."""
    running = _payloads(_outputs()[1])[TOPICS.state]
    assert running["charge"] is not None
    without = dict(running, charge=None)
    charge_ids = {"charge_phase", "charge_phase_reason", "full_charge_requested"}
    seen: dict[str, str] = {}
    for topic, c in _configs():
        if c["state_topic"] != TOPICS.state:
            continue
        object_id = topic.split("/")[-2]
        with_charge = ENV.from_string(c["value_template"]).render(value_json=running).strip()
        text = ENV.from_string(c["value_template"]).render(value_json=without).strip()
        if "json_attributes_template" in c:
            attrs = ENV.from_string(c["json_attributes_template"]).render(value_json=without)
            assert isinstance(json.loads(attrs), dict), topic
        if object_id in charge_ids:
            seen[object_id] = with_charge
            assert text == "None", f"{topic}: {text!r}"
        else:
            assert text == with_charge, topic
    charge = running["charge"]
    assert seen == {
        "charge_phase": charge["phase"],
        "charge_phase_reason": charge["reason"],
        "full_charge_requested": "ON" if charge["full_charge_requested"] else "OFF",
    }
