"""Hostile MQTT messages against ``bms-gateway run``: nested, oversized and garbage payloads on
every command topic, with commands off and on. The daemon must stay up, keep publishing, keep
answering Modbus and never raise a limit."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import aiomqtt
import pytest

from tests.faults.conftest import SCALE
from tests.faults.proc import limits_a, start_daemon, stop_gracefully
from tests.mqtt.conftest import Mosquitto

GID = "bms1"
NAMES = ["reset_alarms", "balancing_mode", "current_cap", "unknown", "a"]


def _payloads(rng: random.Random) -> list[bytes]:
    nested = [
        b"[" * 1024 + b"]" * 1024,  # the 2 KB message that stopped the daemon
        b"[" * 100_000,  # unterminated, deeper than any decoder
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
        b'{"charge_a": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    ]
    other = [
        b"x" * 1_000_000,  # oversized
        bytes(rng.randrange(256) for _ in range(512)),  # garbage, invalid UTF-8
        b'{"charge_a": 1e999999}',
        b'{"charge_a": ' + b"9" * 5000 + b"}",  # a huge integer literal
        b'"' + b"\\u0000" * 1000 + b'"',
        b"",
    ]
    return nested + other


async def _attack(port: int, rounds: int) -> tuple[int, int]:
    """Publish every payload on every command topic ``rounds`` times; (sent, replies seen)."""
    rng = random.Random(11)
    replies = 0
    sent = 0
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"attacker-{os.getpid()}") as c:
        await c.subscribe(f"bms/{GID}/cmd/result", qos=1)
        for _ in range(rounds):
            for payload in _payloads(rng):
                for name in NAMES:
                    await c.publish(f"bms/{GID}/cmd/{name}", payload, qos=1)
                    sent += 1
        # Replies arrive for what was decoded as a command topic; count them for a while.
        try:
            async with asyncio.timeout(3.0):
                async for msg in c.messages:
                    assert isinstance(msg.payload, bytes)
                    reply = json.loads(msg.payload)
                    assert reply["accepted"] is False
                    replies += 1
                    if replies >= sent:
                        break
        except TimeoutError:
            pass
    return sent, replies


async def _availability(port: int) -> str:
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"watch-{os.getpid()}") as c:
        await c.subscribe(f"bms/{GID}/availability", qos=1)
        async with asyncio.timeout(5.0):
            msg = await anext(c.messages)
        assert isinstance(msg.payload, bytes)
        return msg.payload.decode()


@pytest.mark.parametrize("commands", [False, True])
def test_nested_and_oversized_payloads_never_stop_the_daemon(
    tmp_path: Path, broker: Mosquitto, commands: bool
) -> None:
    extra = 'commands = true\ncommand_token = "s3cret-token"\n' if commands else ""
    d = start_daemon(tmp_path, mqtt_port=broker.port, mqtt_extra=extra)
    try:
        d.wait_modbus()
        assert asyncio.run(_availability(broker.port)) == "online"
        sent, replies = asyncio.run(_attack(broker.port, rounds=SCALE))
        assert d.alive(), d.output()
        # Still serving: Modbus answers, no limit above what the data allows (no data: 0 A).
        assert limits_a(d.modbus_port) == (0.0, 0.0)
        assert asyncio.run(_availability(broker.port)) == "online"
        took = stop_gracefully(d)
    finally:
        d.kill()
    out = d.output()
    assert took is not None, out
    assert took < 5.0
    assert d.proc.returncode == 0, out
    assert "RecursionError" not in out
    assert "Traceback" not in out
    assert sent == 50 * SCALE
    assert replies > 0  # every message was answered with a rejection (those counted in time)
    (tmp_path / "attack.json").write_text(json.dumps({"sent": sent, "replies": replies}))
