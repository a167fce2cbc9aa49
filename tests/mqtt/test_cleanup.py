"""Short broker sessions of ``gateway.mqtt.cleanup`` against a real mosquitto on loopback."""

from __future__ import annotations

import aiomqtt
import pytest

from gateway.errors import MqttLinkError
from gateway.mqtt.broker import free_port
from gateway.mqtt.cleanup import clear_retained, live_gateway_ids
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.topics import Topics
from tests.mqtt.conftest import HOST, Mosquitto


async def test_live_gateway_ids_are_those_whose_retained_availability_is_online(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    prefix = f"p{gateway_id}"
    async with aiomqtt.Client(HOST, mosquitto.port) as client:
        for gid, state in (("a", b"online"), ("b", b"offline"), ("c", b"online")):
            await client.publish(f"{prefix}/{gid}/availability", state, qos=1, retain=True)
    cfg = MqttConfig(host=HOST, port=mosquitto.port)
    assert await live_gateway_ids(cfg, prefix, client_id="t-live") == {"a", "c"}
    # Cleared, a gateway is no longer live.
    cleared = await clear_retained(cfg, Topics(prefix, "a", "homeassistant"), client_id="t-clr")
    assert cleared == [f"{prefix}/a/availability"]
    assert await live_gateway_ids(cfg, prefix, client_id="t-live") == {"c"}


async def test_an_unreachable_broker_is_a_link_error_naming_what_was_done() -> None:
    cfg = MqttConfig(host=HOST, port=free_port())
    topics = Topics("bms", "x", "homeassistant")
    with pytest.raises(MqttLinkError, match=f"clearing retained topics on {HOST}:{cfg.port}"):
        await clear_retained(cfg, topics, client_id="t", timeout_s=5)
    with pytest.raises(MqttLinkError, match=f"reading gateway availability on {HOST}:{cfg.port}"):
        await live_gateway_ids(cfg, "bms", client_id="t", timeout_s=5)
