"""Safety state against crashes: a latch set while running is on disk at once and comes back
after a restart of the daemon; SIGKILLs during state writes never leave a broken file, and the
temporary files they leave are cleaned at the next start."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import can

from gateway.app import Gateway
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from gateway.state_store import load_document
from gateway.sunspec.evt1 import alarm_mask
from tests.faults.conftest import SCALE
from tests.faults.proc import evt1, limits_a, start_daemon, stop_gracefully

SPEED = 20.0


def _settings(state: Path, channel: str) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            # A minute between periodic writes: only the write on change can be seen in time.
            "state": s.state.model_copy(update={"path": str(state), "interval_s": 60.0}),
        }
    )


async def _latch_overvoltage(state: Path) -> float:
    """Overcharge a simulated pack until cell over-voltage latches; seconds until it is on disk."""
    channel = f"faults-{uuid.uuid4().hex}"
    m0 = time.monotonic()
    gw = Gateway(_settings(state, channel), clock=lambda: (time.monotonic() - m0) * SPEED)
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=99.0), seed=2)
    bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    on_disk_s: list[float] = []

    async def overcharge() -> None:
        # A charger that ignores CCL: the cells run past 3.65 V.
        await run_sim_on_bus(bus, sim, speed=SPEED, current_source=ConstantProfile(60.0), stop=stop)

    async def watch() -> None:
        latched_at = None
        async with asyncio.timeout(60):
            while True:
                await asyncio.sleep(0.02)
                out = gw.latest
                if (
                    latched_at is None
                    and out is not None
                    and any(a.code == "cell_overvoltage" and a.latched for a in out.alarms.active)
                ):
                    latched_at = time.monotonic()
                if latched_at is not None:
                    doc = load_document(state)
                    if doc.safety and "cell_overvoltage" in doc.safety["latched_alarms"]:
                        on_disk_s.append(time.monotonic() - latched_at)
                        stop.set()
                        return

    try:
        await gw.run(stop, extra=[overcharge, watch])
    finally:
        bus.shutdown()
    return on_disk_s[0]


def test_latched_alarm_survives_a_restart_of_the_daemon(tmp_path: Path) -> None:
    state = tmp_path / "state" / "estimator.json"
    on_disk_s = asyncio.run(_latch_overvoltage(state))
    assert on_disk_s < 2.0  # written on change, not at the 60 s interval
    d = start_daemon(tmp_path, state_path=state)
    try:
        d.wait_modbus()
        bit = alarm_mask("cell_overvoltage")
        # Before the first control step the map holds 0 A and no events; then the latch shows.
        deadline = time.monotonic() + 5.0
        while not evt1(d.modbus_port) and time.monotonic() < deadline:
            time.sleep(0.02)
        samples = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            assert evt1(d.modbus_port) & bit, "latch lost after the restart"
            assert limits_a(d.modbus_port)[0] == 0.0
            samples += 1
        took = stop_gracefully(d)
    finally:
        d.kill()
    out = d.output()
    assert took is not None, out
    assert "restored safety state" in out
    assert "cell_overvoltage" in out
    # Written again on the way out: still latched for the next start.
    assert "cell_overvoltage" in (load_document(state).safety or {})["latched_alarms"]
    (tmp_path / "latch.json").write_text(json.dumps({"samples": samples, "on_disk_s": on_disk_s}))


_WRITER = """
import sys
from pathlib import Path
from gateway.state_store import save_state
path = Path(sys.argv[1])
est = {"soc_pct": [50.0] * 512, "n": 0}
saf = {"version": 1, "latched_alarms": {"cell_overvoltage": "cell 0 at 3.700 V"}}
sys.stdout.write("ready\\n"); sys.stdout.flush()
n = 0
while True:
    n += 1
    est["n"] = n
    save_state(path, est, saf)
"""


def test_kills_during_state_writes_leave_a_good_file_and_no_orphans(tmp_path: Path) -> None:
    path = tmp_path / "state" / "estimator.json"
    rng = random.Random(5)
    kills = 60 * SCALE
    orphans_seen = 0
    for _ in range(kills):
        proc = subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path)],
            stdout=subprocess.PIPE,
            env={k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        doc = load_document(path)
        if doc.estimator is not None or path.exists():
            assert doc.safety is not None
            assert "cell_overvoltage" in doc.safety["latched_alarms"]
        orphans_seen = max(orphans_seen, len(list(path.parent.glob(".estimator.json.*.tmp"))))
    # A daemon started on that directory cleans up what the kills left.
    d = start_daemon(tmp_path, state_path=path)
    try:
        d.wait_modbus()
        assert list(path.parent.glob(".estimator.json.*.tmp")) == []
        assert limits_a(d.modbus_port)[0] == 0.0
        stop_gracefully(d)
    finally:
        d.kill()
    assert "restored safety state" in d.output()
    (tmp_path / "kills.json").write_text(json.dumps({"kills": kills, "orphans": orphans_seen}))
