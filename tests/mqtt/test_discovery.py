"""Home Assistant discovery configs: pure, no broker."""

from __future__ import annotations

import json
import re

from gateway.mqtt.discovery import discovery_messages, removal_messages
from gateway.mqtt.payloads import AlarmsPayload, CellsPayload, StatePayload
from gateway.mqtt.topics import Topics

TOPICS = Topics("bms", "gw1")
MODELS = {TOPICS.state: StatePayload, TOPICS.cells: CellsPayload, TOPICS.alarms: AlarmsPayload}


def test_pack_and_cell_entities_grouped_under_one_device() -> None:
    msgs = discovery_messages(TOPICS, cell_count=16, sensor_count=4)
    configs = [json.loads(m.payload) for m in msgs]
    # 28 pack entities + 3 per cell + 1 per temperature sensor.
    assert len(msgs) == 28 + 16 * 3 + 4
    assert len({m.topic for m in msgs}) == len(msgs)
    assert len({c["unique_id"] for c in configs}) == len(msgs)
    assert {json.dumps(c["device"], sort_keys=True) for c in configs} == {
        json.dumps(configs[0]["device"], sort_keys=True)
    }
    assert configs[0]["device"]["identifiers"] == ["bmsgw_gw1"]
    for m, c in zip(msgs, configs, strict=True):
        assert re.fullmatch(r"homeassistant/(sensor|binary_sensor)/bmsgw_gw1/\w+/config", m.topic)
        assert c["availability_topic"] == "bms/gw1/availability"
        assert c["state_topic"] in MODELS
        if "/binary_sensor/" in m.topic:
            assert (c["payload_on"], c["payload_off"]) == ("ON", "OFF")
            assert "state_class" not in c


def test_templates_only_read_fields_the_payloads_have() -> None:
    for m in discovery_messages(TOPICS, cell_count=4, sensor_count=4):
        c = json.loads(m.payload)
        fields = MODELS[c["state_topic"]].model_fields
        for tpl in (c["value_template"], c.get("json_attributes_template", "")):
            for name in re.findall(r"value_json\.(\w+)", tpl):
                assert name in fields, f"{m.topic}: {name} is not in the payload"


def test_limit_entities_expose_winner_and_terms() -> None:
    by_topic = {m.topic: json.loads(m.payload) for m in discovery_messages(TOPICS, 2, 0)}
    ccl = by_topic["homeassistant/sensor/bmsgw_gw1/ccl/config"]
    assert ccl["value_template"] == "{{ value_json.ccl_a.value }}"
    assert ccl["json_attributes_template"] == "{{ value_json.ccl_a | tojson }}"
    assert ccl["unit_of_measurement"] == "A"
    reason = by_topic["homeassistant/sensor/bmsgw_gw1/ccl_reason/config"]
    assert reason["value_template"] == "{{ value_json.ccl_a.winner }}"
    cell2 = by_topic["homeassistant/sensor/bmsgw_gw1/cell_002_voltage/config"]
    assert cell2["value_template"] == "{{ value_json.voltage_v[1] }}"


def test_charge_phase_entities_read_the_state_charge_object() -> None:
    by_topic = {m.topic: json.loads(m.payload) for m in discovery_messages(TOPICS, 2, 0)}
    phase = by_topic["homeassistant/sensor/bmsgw_gw1/charge_phase/config"]
    assert phase["unique_id"] == "bmsgw_gw1_charge_phase"
    assert (phase["device_class"], phase["options"]) == ("enum", ["bulk", "absorption", "float"])
    assert "state_class" not in phase
    assert "unit_of_measurement" not in phase
    assert phase["state_topic"] == phase["json_attributes_topic"] == "bms/gw1/state"
    assert phase["availability_topic"] == "bms/gw1/availability"
    reason = by_topic["homeassistant/sensor/bmsgw_gw1/charge_phase_reason/config"]
    assert reason["entity_category"] == "diagnostic"
    full = by_topic["homeassistant/binary_sensor/bmsgw_gw1/full_charge_requested/config"]
    assert full["unique_id"] == "bmsgw_gw1_full_charge_requested"
    assert (full["payload_on"], full["payload_off"]) == ("ON", "OFF")
    assert "full_charge_reason" in full["json_attributes_template"]
    # Only the enum sensor has options.
    assert [t for t, c in by_topic.items() if "options" in c] == [
        "homeassistant/sensor/bmsgw_gw1/charge_phase/config"
    ]


def test_removal_empties_every_config_topic() -> None:
    made = discovery_messages(TOPICS, 8, 2)
    removed = removal_messages(TOPICS, 8, 2)
    assert [m.topic for m in removed] == [m.topic for m in made]
    assert {m.payload for m in removed} == {""}
    pack_only = discovery_messages(TOPICS, 8, 2, per_cell=False)
    assert len(pack_only) == 28
    assert not any(re.search(r"/(cell|sensor)_\d", m.topic) for m in pack_only)
