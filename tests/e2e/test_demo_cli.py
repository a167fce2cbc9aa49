"""The demo as a new user meets it, through the installed ``bms-gateway`` console script.

Against a real mosquitto that already runs on a free loopback port (as a system broker on 1883
would): the demo publishes as ``demo-<host>``, never takes a real gateway's client id, and leaves
no retained topic behind. A quick restart keeps its Modbus port. ``--inverter none`` leaves the
Modbus side to the user's own client. The live view, on a real pseudo-terminal of 80x24, repaints
in place and never scrolls.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest
from pymodbus.client import ModbusTcpClient

from gateway.demo import demo_identity
from gateway.mqtt.broker import free_port
from tests.e2e.test_gateway_process import _console_script
from tests.mqtt.conftest import Mosquitto

HOST = "127.0.0.1"
REAL_CLIENT_ID = "bms-gateway-bms1"  # what a real gateway with default settings uses


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of this test's own that runs before the demo starts."""
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}


def _config(path: Path, modbus_port: int, mqtt_port: int) -> Path:
    path.write_text(
        f"[pack]\ncells = 8\ntemp_sensors = 2\n\n[sunspec]\nport = {modbus_port}\n\n"
        f"[mqtt]\nport = {mqtt_port}\nstate_interval_s = 0.2\n",
        encoding="utf-8",
    )
    return path


def _demo(config: Path, *args: str, wall_s: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _console_script(),
            "demo",
            "--no-view",
            "--config",
            str(config),
            "--duration",
            str(wall_s),
            *args,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=wall_s + 60,
        check=False,
    )


async def _watch_as_real_gateway(port: int, seconds: float) -> tuple[set[str], bool]:
    """Hold the real gateway's client id while the demo runs; topics seen, and still connected."""
    topics: set[str] = set()
    async with aiomqtt.Client(HOST, port, identifier=REAL_CLIENT_ID, keepalive=5) as client:
        await client.subscribe("#", qos=1)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    msg = await anext(client.messages)
            except TimeoutError:
                break
            topics.add(str(msg.topic))
        # A broker that gave our client id to someone else has closed this session by now.
        await client.publish("e2e/still-here", b"1", qos=1)
    return topics, True


async def _retained(port: int, settle_s: float = 1.0) -> dict[str, bytes]:
    """Every retained message on the broker."""
    found: dict[str, bytes] = {}
    async with aiomqtt.Client(HOST, port, identifier=f"e2e-retained-{os.getpid()}") as client:
        await client.subscribe("#", qos=1)
        while True:
            try:
                async with asyncio.timeout(settle_s):
                    msg = await anext(client.messages)
            except TimeoutError:
                return found
            if msg.retain and isinstance(msg.payload, bytes):
                found[str(msg.topic)] = msg.payload


def test_demo_on_an_existing_broker_leaves_nothing_and_keeps_its_own_identity(
    tmp_path: Path, broker: Mosquitto
) -> None:
    config = _config(tmp_path / "demo.toml", free_port(), broker.port)
    ident = demo_identity()

    async def scenario() -> tuple[subprocess.CompletedProcess[str], set[str], bool]:
        watcher = asyncio.create_task(_watch_as_real_gateway(broker.port, 12.0))
        await asyncio.sleep(0.5)  # the "real gateway" is on the broker first
        done = await asyncio.to_thread(_demo, config, "--speed", "60", wall_s=8.0)
        topics, alive = await watcher
        return done, topics, alive

    done, topics, alive = asyncio.run(scenario())
    assert done.returncode == 0, done.stderr
    assert f"as {ident}" in done.stdout
    # It published under its own identity, with Home Assistant discovery of its own node...
    assert f"bms/{ident}/state" in topics
    node = f"bmsgw_{ident}".replace("-", "_")
    assert any(t.startswith("homeassistant/") and f"/{node}/" in t for t in topics)
    # ...never as the real gateway, whose client id kept its session throughout.
    assert not any(t.startswith("bms/bms1/") for t in topics)
    assert alive
    # Nothing retained is left on the broker: no phantom device in Home Assistant.
    assert asyncio.run(_retained(broker.port)) == {}
    assert "removed" in done.stderr
    assert "retained topic" in done.stderr


async def _retain(port: int, topic: str, payload: bytes) -> None:
    async with aiomqtt.Client(HOST, port, identifier=f"e2e-retain-{os.getpid()}") as client:
        await client.publish(topic, payload, qos=1, retain=True)


def test_a_second_demo_on_the_broker_takes_its_own_identity(
    tmp_path: Path, broker: Mosquitto
) -> None:
    """A demo already live as ``demo-<host>`` (its retained availability says online) keeps its
    topics: the second publishes as ``demo-<host>-2`` and clears only its own when it stops."""
    ident = demo_identity()
    first = f"bms/{ident}/availability"
    asyncio.run(_retain(broker.port, first, b"online"))
    done = _demo(_config(tmp_path / "demo.toml", free_port(), broker.port), wall_s=4.0)
    assert done.returncode == 0, done.stderr
    assert f"as {ident}-2" in done.stdout
    assert f"{ident} is live on this broker; this demo publishes as {ident}-2" in done.stderr
    assert asyncio.run(_retained(broker.port)) == {first: b"online"}


def _listening_port(stdout: str) -> int:
    m = re.search(r"Modbus: SunSpec model 802 at 127\.0\.0\.1:(\d+)", stdout)
    assert m, stdout
    return int(m.group(1))


def test_a_quick_restart_keeps_the_modbus_port(tmp_path: Path, broker: Mosquitto) -> None:
    port = free_port()
    config = _config(tmp_path / "demo.toml", port, broker.port)
    first = _demo(config, "--speed", "60", wall_s=4.0)
    assert first.returncode == 0, first.stderr
    assert _listening_port(first.stdout) == port
    # The simulated controller polled until the stop: the server closed those connections, so
    # the port has sockets in TIME_WAIT now (a plain bind without SO_REUSEADDR would fail).
    second = _demo(config, "--speed", "60", wall_s=4.0)
    assert second.returncode == 0, second.stderr
    assert _listening_port(second.stdout) == port, second.stderr
    assert "is in use" not in second.stderr
    # The controller starts once the server listens: no failed connection on start.
    for run in (first, second):
        assert "Connection to (127.0.0.1" not in run.stderr
        assert "battery link down" not in run.stderr


def test_inverter_none_leaves_modbus_to_your_own_client(tmp_path: Path, broker: Mosquitto) -> None:
    port = free_port()
    config = _config(tmp_path / "demo.toml", port, broker.port)
    proc = subprocess.Popen(
        [_console_script(), "demo", "--no-view", "--inverter", "none", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
    )
    try:
        client = ModbusTcpClient(HOST, port=port, timeout=2)
        deadline = time.monotonic() + 30
        while not client.connect():
            assert time.monotonic() < deadline, "the demo's Modbus server did not come up"
            time.sleep(0.2)
        # No simulated controller: nobody has written CtrlHb yet. Now we play the controller.
        marker = client.read_holding_registers(40000, count=2, device_id=1)
        assert not marker.isError()
        assert marker.registers == [0x5375, 0x6E53]  # "SunS"
        for hb in range(1, 4):
            found = _write_ctrl_hb(client, hb)
            time.sleep(0.3)
        client.close()
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "inverter: none simulated" in out
    assert found
    # The one heartbeat the gateway saw was ours, written after the demo started.
    assert out.count("controller heartbeat (CtrlHb) seen") == 1
    ours = out.index("controller heartbeat (CtrlHb) seen")
    assert "storage_controller_link_up" not in out[:ours]


def _write_ctrl_hb(client: ModbusTcpClient, value: int) -> bool:
    """Find model 802 by walking the SunSpec chain and write its CtrlHb."""
    addr = 40002
    while True:
        head = client.read_holding_registers(addr, count=2, device_id=1)
        assert not head.isError()
        model_id, length = head.registers
        assert model_id != 0xFFFF, "no model 802"
        if model_id == 802:
            break
        addr += 2 + length
    # CtrlHb's offset in model 802, from pysunspec2's definition (not retyped here).
    from gateway.sunspec.maps import ModelLayout

    offset = ModelLayout.from_definition(802).point("CtrlHb").offset
    result = client.write_registers(addr + offset, [value], device_id=1)
    return not result.isError()


def _read_pty(fd: int, seconds: float) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            data += chunk
    return data


_ESC = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_the_live_view_fits_80x24_and_repaints_in_place(tmp_path: Path, broker: Mosquitto) -> None:
    config = _config(tmp_path / "demo.toml", free_port(), broker.port)
    config.write_text(config.read_text().replace("cells = 8", "cells = 16"), encoding="utf-8")
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    proc = subprocess.Popen(
        [_console_script(), "demo", "--speed", "60", "--config", str(config)],
        stdin=follower,
        stdout=follower,
        stderr=follower,  # log lines too: they must not scroll the view
        env={**_env(), "TERM": "xterm", "COLUMNS": "80", "LINES": "24"},
        close_fds=True,
    )
    os.close(follower)
    try:
        raw = _read_pty(leader, 12.0)
        proc.send_signal(signal.SIGINT)
        raw += _read_pty(leader, 10.0)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
    text = raw.decode("utf-8", errors="replace")
    assert proc.returncode == 0
    # The view runs on the alternate screen (nothing in the scrollback), restored at the end.
    start = text.index("\x1b[?1049h") + len("\x1b[?1049h")
    end = text.index("\x1b[?1049l")
    assert start < end
    chunks = text[start:end].split("\x1b[H")
    # Nothing but cursor and screen controls before the first frame...
    assert _ESC.sub("", chunks[0]) == ""
    frames = [f for f in chunks[1:] if "SoC" in f]
    assert len(frames) >= 5, text[-2000:]
    for frame in chunks[1:]:
        body, _, after = frame.partition("\x1b[J")
        # ...and between frames: no log line or stray output that would scroll the screen.
        assert _ESC.sub("", after) == "", after
        assert body.count("\n") <= 23  # never reaches the bottom: the screen never scrolls
        for line in body.replace("\r", "").split("\n"):
            assert len(_ESC.sub("", line)) <= 80, line
    last = _ESC.sub("", frames[-1].split("\x1b[J")[0]).split("\n")
    assert "CCL" in last[2]
    assert re.search(r"\b16 \d\.\d{3}V", "\n".join(last))  # all 16 cells, numbered from 1
    assert not re.search(r"(^|\s)0 \d\.\d{3}V", "\n".join(last))
