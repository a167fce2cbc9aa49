"""A real mosquitto on a free loopback port, and an aiomqtt subscriber that records messages."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.mqtt.broker import find_mosquitto, free_port, mosquitto_conf

HOST = "127.0.0.1"


class Mosquitto:
    """A mosquitto process with its own config; can be stopped and started on the same port."""

    def __init__(self, workdir: Path, *, persistent: bool = False, extra: str = "") -> None:
        binary = find_mosquitto()
        if binary is None:
            pytest.skip("mosquitto is not installed (.ci/run installs it)")
        self.binary = binary
        self.port = free_port(HOST)
        self.conf = workdir / f"mosquitto-{self.port}.conf"
        conf = mosquitto_conf(HOST, self.port)
        if persistent:
            # Sessions survive a restart, so a subscriber misses nothing sent while it was away.
            conf = conf.replace("persistence false", "persistence true")
            conf += f"persistence_location {workdir}/\n"
        self.conf.write_text(conf + extra, encoding="utf-8")
        self.log = workdir / f"mosquitto-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait until the port accepts connections (5 s at most)."""
        with self.log.open("ab") as err:
            self.proc = subprocess.Popen(
                [self.binary, "-c", str(self.conf)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            with socket.socket() as s:
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Stop (SIGTERM, then SIGKILL after 3 s)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(3.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """One broker for the whole session."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def private_mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A broker of the test's own that keeps sessions across restarts (for restart tests)."""
    broker = Mosquitto(tmp_path, persistent=True)
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def gateway_id() -> str:
    """A fresh gateway id, so retained messages of other tests never match."""
    return f"t{uuid.uuid4().hex[:10]}"


class Collector:
    """Subscribes with its own aiomqtt client and keeps every message it receives.

    With ``identifier`` the session is persistent (clean_session false): after ``reconnect()``
    the broker delivers the QoS 1 messages published while the collector was away.
    """

    def __init__(
        self, port: int, *filters: str, identifier: str | None = None, qos: int = 1
    ) -> None:
        self.port = port
        self.qos = qos
        self.filters = filters
        self.identifier = identifier
        self.messages: list[aiomqtt.Message] = []
        self._new = asyncio.Event()
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        await self._connect()
        return self

    async def _connect(self) -> None:
        self._client = aiomqtt.Client(
            HOST,
            self.port,
            timeout=5,
            identifier=self.identifier,
            clean_session=False if self.identifier else None,
        )
        await self._client.__aenter__()
        for f in self.filters:
            await self._client.subscribe(f, qos=self.qos)
        self._task = asyncio.create_task(self._read(self._client), name="test.collector")

    async def _close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            if not task.done():
                task.cancel()
            # The reader ends with CancelledError, or with MqttError when the broker went away.
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)

    async def reconnect(self, timeout_s: float = 5.0) -> None:
        """Connect again (after a broker restart), retrying for ``timeout_s``."""
        await self._close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self._connect()
                return
            except aiomqtt.MqttError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _read(self, client: aiomqtt.Client) -> None:
        async for m in client.messages:
            self.messages.append(m)
            self._new.set()

    async def publish(self, topic: str, payload: str | bytes, *, retain: bool = False) -> None:
        """Publish with QoS 1 (a command, Home Assistant's status)."""
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def wait(
        self, match: Callable[[aiomqtt.Message], bool], timeout_s: float = 5.0
    ) -> aiomqtt.Message:
        """The first message (old or new) that matches; fails after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen = 0
        while True:
            for m in self.messages[seen:]:
                if match(m):
                    return m
            seen = len(self.messages)
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = sorted({m.topic.value for m in self.messages})
                raise AssertionError(f"no matching message within {timeout_s} s; topics: {got}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), remaining)
            except TimeoutError:
                continue

    def on(self, topic: str) -> list[aiomqtt.Message]:
        """Every message received on ``topic``."""
        return [m for m in self.messages if m.topic.value == topic]


def payload_json(m: aiomqtt.Message) -> Any:
    """The JSON payload of ``m``."""
    assert isinstance(m.payload, bytes)
    return json.loads(m.payload)


def on_topic(topic: str, pred: Callable[[Any], bool] | None = None) -> Callable[..., bool]:
    """A matcher: message on ``topic`` whose JSON payload satisfies ``pred`` (if given)."""

    def match(m: aiomqtt.Message) -> bool:
        if m.topic.value != topic:
            return False
        return pred is None or pred(payload_json(m))

    return match
