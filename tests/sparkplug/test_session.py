"""A Sparkplug B session against a real mosquitto, seen by a host written here.

The gateway runs as a process (``bms-gateway demo`` with ``[sparkplug]`` on), so it can be
killed. The host subscribes to the group, decodes every message with pysparkplug's decoder and
checks: NBIRTH (``bdSeq``, ``Node Control/Rebirth``, seq 0), DBIRTH with the pack's metrics,
DDATA that carry only changed metrics with consecutive ``seq``, a rebirth on the host's NCMD, and
the NDEATH the broker sends from the will when the gateway is killed (SIGKILL), with the
NBIRTH's ``bdSeq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pysparkplug import DataType, DBirth, MessageType, Metric, NCmd, Topic, get_current_timestamp

from tests.mqtt.conftest import Mosquitto
from tests.web.helpers import free_port

KEEPALIVE_S = 5


class Host:
    """A minimal Sparkplug host: records decoded messages and the metrics as it knows them."""

    def __init__(self) -> None:
        self.messages: list[tuple[Topic, Any]] = []
        self.births: dict[str | None, Any] = {}  # device id (None: node) -> its last birth
        self.new = asyncio.Event()

    def on(self, topic: str, raw: bytes) -> None:
        t = Topic.from_str(topic)
        assert t.message_type is not None
        if t.message_type in (MessageType.NCMD, MessageType.DCMD):
            return  # commands (ours, garbage included) are not the edge node's output
        # DATA metrics carry no datatype (Sparkplug B 3.0): the device's birth gives them.
        birth = self.births.get(t.device_id)
        payload = t.message_type.payload.decode(raw, birth=birth)  # type: ignore[union-attr]
        if t.message_type in (MessageType.NBIRTH, MessageType.DBIRTH):
            self.births[t.device_id] = payload
        self.messages.append((t, payload))
        self.new.set()

    def of(self, kind: MessageType) -> list[Any]:
        return [p for t, p in self.messages if t.message_type == kind]

    async def wait(self, pred: Callable[[], bool], timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            while not pred():
                self.new.clear()
                await self.new.wait()


def _config(path: Path, broker_port: int, site: str, gid: str) -> Path:
    path.write_text(
        f"""
[control]
gateway_id = "{gid}"
[mqtt]
port = {broker_port}
discovery = false
[web]
port = {free_port()}
[sparkplug]
enabled = true
port = {broker_port}
group_id = "{site}"
# The demo publishes as demo-<host> whatever control.gateway_id says; the edge node id is set.
edge_node_id = "{gid}"
device_id = "pack1"
keepalive_s = {KEEPALIVE_S}
scan_interval_s = 0.2
""",
        encoding="utf-8",
    )
    return path


def _metrics(payload: Any) -> dict[str, Any]:
    return {m.name: m.value for m in payload.metrics}


@pytest.mark.slow
async def test_birth_data_rebirth_and_death(tmp_path: Path, mosquitto: Mosquitto) -> None:
    site = f"site{uuid.uuid4().hex[:6]}"
    gid = f"gw{uuid.uuid4().hex[:6]}"
    cfg = _config(tmp_path / "config.toml", mosquitto.port, site, gid)
    host = Host()

    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.subscribe(f"spBv1.0/{site}/#", qos=1)

        async def listen() -> None:
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                host.on(m.topic.value, m.payload)

        listener = asyncio.create_task(listen())
        proc = subprocess.Popen(  # noqa: ASYNC220 - started once; waited on in a thread below
            [sys.executable, "-m", "gateway", "demo", "--config", str(cfg), "--no-view",
             "--speed", "5", "--state-dir", str(tmp_path / "state")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "gateway.err").open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            # Birth: NBIRTH (seq 0, bdSeq, rebirth control), then DBIRTH with the pack.
            await host.wait(lambda: len(host.of(MessageType.DBIRTH)) >= 1, 30.0)
            (nbirth,) = host.of(MessageType.NBIRTH)
            node = _metrics(nbirth)
            assert nbirth.seq == 0
            assert node["Node Control/Rebirth"] is False
            bd_seq = node["bdSeq"]
            assert isinstance(bd_seq, int)
            dbirth = host.of(MessageType.DBIRTH)[0]
            assert dbirth.seq == 1
            born = _metrics(dbirth)
            for name in (
                "Pack/SoC",
                "Pack/Current",
                "Limits/CCL",
                "Limits/CCL Winner",
                "Limits/DVL",
                "Energy/Charged kWh",
                "Cells/016/Voltage",
                "Mode",
                "Charge/Phase",
                "Charge/Full Charge Requested",
            ):
                assert name in born, name  # fmt: skip
            assert "Cells/017/Voltage" not in born
            assert all(m.datatype != DataType.UNKNOWN for m in dbirth.metrics)

            # Data: only what changed, seq consecutive after the births.
            await host.wait(lambda: len(host.of(MessageType.DDATA)) >= 3, 30.0)
            state = dict(born)
            seq = dbirth.seq
            for t, p in host.messages:
                if t.message_type == MessageType.DBIRTH:
                    state = _metrics(p)
                    seq = p.seq
                    continue
                if t.message_type != MessageType.DDATA:
                    continue
                assert p.seq == (seq + 1) % 256
                seq = p.seq
                data = _metrics(p)
                assert data
                assert set(data) <= set(state)
                for name, value in data.items():
                    assert value != state[name], f"{name} sent unchanged (not RBE)"
                state.update(data)

            # Garbage on NCMD is ignored (logged); the edge node stays up and answers a rebirth.
            await client.publish(f"spBv1.0/{site}/NCMD/{gid}", b"\xff\x00garbage", qos=1)
            # Rebirth on the host's request: NBIRTH (seq 0, same bdSeq) and DBIRTH again.
            rebirth = NCmd(
                timestamp=get_current_timestamp(),
                metrics=(
                    Metric(
                        timestamp=get_current_timestamp(),
                        name="Node Control/Rebirth",
                        datatype=DataType.BOOLEAN,
                        value=True,
                    ),
                ),
            )
            await client.publish(f"spBv1.0/{site}/NCMD/{gid}", rebirth.encode(), qos=1)
            await host.wait(lambda: len(host.of(MessageType.NBIRTH)) >= 2, 15.0)
            again = host.of(MessageType.NBIRTH)[1]
            assert again.seq == 0
            assert _metrics(again)["bdSeq"] == bd_seq
            reborn = next(i for i, (_, p) in enumerate(host.messages) if p is again)

            def dbirth_after() -> list[Any]:
                return [p for _, p in host.messages[reborn:] if isinstance(p, DBirth)]

            await host.wait(lambda: bool(dbirth_after()), 5.0)
            assert dbirth_after()[0].seq == 1
            assert proc.poll() is None

            # Death: SIGKILL, the broker publishes the will (NDEATH with the same bdSeq).
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10.0)
            await host.wait(lambda: len(host.of(MessageType.NDEATH)) >= 1, 2 * KEEPALIVE_S + 5)
            (ndeath,) = host.of(MessageType.NDEATH)
            assert ndeath.bd_seq_metric.name == "bdSeq"
            assert ndeath.bd_seq_metric.value == bd_seq
        finally:
            if proc.poll() is None:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10.0)
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
