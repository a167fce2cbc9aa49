"""The demo's local broker: reuse an existing one, else start mosquitto (or amqtt)."""

from __future__ import annotations

import importlib.util
import socket

import aiomqtt
import pytest

from gateway.errors import GatewayError
from gateway.mqtt.broker import LocalBroker, free_port
from tests.mqtt.conftest import HOST, Mosquitto


async def _roundtrip(port: int) -> bytes:
    async with aiomqtt.Client(HOST, port, timeout=5) as client:
        await client.subscribe("bmsgw-test/echo", qos=1)
        await client.publish("bmsgw-test/echo", b"ping", qos=1)
        async for m in client.messages:
            assert isinstance(m.payload, bytes)
            return m.payload
    raise AssertionError("no message")


async def test_reuses_a_broker_already_on_the_port(mosquitto: Mosquitto) -> None:
    async with LocalBroker(mosquitto.port) as info:
        assert (info.which, info.port) == ("existing", mosquitto.port)
        assert "reused" in info.description
        assert await _roundtrip(info.port) == b"ping"


async def test_starts_mosquitto_and_stops_it() -> None:
    port = free_port()
    broker = LocalBroker(port, reuse_existing=False)
    async with broker as info:
        assert (info.which, info.port) == ("mosquitto", port)
        assert await _roundtrip(port) == b"ping"
    with socket.socket() as s:
        assert s.connect_ex((HOST, port)) != 0  # stopped with the context


async def test_port_held_by_something_else_gets_a_free_port() -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        async with LocalBroker(taken) as info:
            assert info.which == "mosquitto"
            assert info.port != taken
            assert await _roundtrip(info.port) == b"ping"


@pytest.mark.skipif(importlib.util.find_spec("amqtt") is None, reason="amqtt is not installed")
async def test_amqtt_when_preferred() -> None:
    async with LocalBroker(0, prefer="amqtt") as info:
        assert info.which == "amqtt"
        assert await _roundtrip(info.port) == b"ping"


def test_bad_port_is_named() -> None:
    with pytest.raises(GatewayError, match="port"):
        LocalBroker(70000)
