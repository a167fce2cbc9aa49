"""A storage controller that stops writing CtrlHb, then comes back: 0 A within the timeout, and
the return goes through the hold and the ramp (it used to jump from 0 to full in one poll).
Real parts: the gateway with a simulated pack on a virtual CAN bus, a pymodbus client as the
controller on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from pathlib import Path

import can
from pymodbus.client import AsyncModbusTcpClient

from gateway.app import Gateway
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from tests.faults.conftest import SCALE

HB_TIMEOUT_S = 1.0
HOLD_S = 2.0
RATE_A_PER_S = 40.0


def _settings(tmp_path: Path, channel: str) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "state": s.state.model_copy(update={"path": str(tmp_path / "estimator.json")}),
            "limits": s.limits.model_copy(
                update={"ramp_hold_s": HOLD_S, "ramp_a_per_s": RATE_A_PER_S}
            ),
            "sunspec": s.sunspec.model_copy(
                update={"mode": "server", "port": 0, "ctrl_hb_timeout_s": HB_TIMEOUT_S}
            ),
        }
    )


async def _scenario(tmp_path: Path) -> dict[str, object]:
    channel = f"faults-hb-{uuid.uuid4().hex}"
    gw = Gateway(_settings(tmp_path, channel))
    assert gw.sunspec_server is not None
    server = gw.sunspec_server
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=3)
    bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    samples: list[tuple[float, float, float, bool]] = []  # t, published, allowed, hb alive
    result: dict[str, object] = {}

    async def pack() -> None:
        await run_sim_on_bus(bus, sim, speed=1.0, current_source=ConstantProfile(0.0), stop=stop)

    async def controller() -> None:
        await asyncio.wait_for(server.started.wait(), 5)
        client = AsyncModbusTcpClient("127.0.0.1", port=server.bound_port or 0, timeout=2)
        await client.connect()
        ach = server.map.address("AChaMax")
        hb_addr = server.map.address("CtrlHb")
        hb = 0
        t0 = time.monotonic()
        # Alive until the limits are open, dead for 2.5 timeouts; repeated, then alive again.
        phases = [(True, 8.0), (False, 2.5 * HB_TIMEOUT_S)] * (2 * SCALE) + [(True, 6.0)]
        try:
            for alive, length_s in phases:
                end = time.monotonic() + length_s
                while time.monotonic() < end:
                    if alive:
                        hb = (hb + 1) & 0xFFFF
                        r = await client.write_register(hb_addr, hb, device_id=1)
                        assert not r.isError()
                    r = await client.read_holding_registers(ach, count=1, device_id=1)
                    assert not r.isError()
                    out = gw.latest
                    allowed = 0.0
                    if out is not None:
                        terms = [t.value for t in out.limits.ccl_a.terms if t.name != "ramp"]
                        allowed = min(terms)
                    now = time.monotonic() - t0
                    samples.append((now, r.registers[0] / 10.0, allowed, alive))
                    await asyncio.sleep(0.1)
            result["losses"] = 2 * SCALE
        finally:
            client.close()
            stop.set()

    try:
        await gw.run(stop, extra=[pack, controller])
    finally:
        bus.shutdown()
    result["samples"] = samples
    return result


def test_heartbeat_loss_cuts_at_once_and_the_return_ramps(tmp_path: Path) -> None:
    result = asyncio.run(_scenario(tmp_path))
    samples = result["samples"]
    assert isinstance(samples, list)
    assert max(s[1] for s in samples) >= 50.0  # the limits did open
    for t, published, allowed, _alive in samples:
        # Never above what the data allows at that moment (one control step of slack).
        assert published <= allowed + RATE_A_PER_S * 0.2 + 0.1, (t, published, allowed)
    # 0 A within the timeout of the last heartbeat write (plus a poll and a step).
    lost_at = [
        samples[i][0] for i in range(1, len(samples)) if samples[i - 1][3] and not samples[i][3]
    ]
    assert lost_at
    for t_lost in lost_at:
        after = [s for s in samples if t_lost + HB_TIMEOUT_S + 0.6 <= s[0] <= t_lost + 2.4]
        assert after
        assert all(s[1] == 0.0 for s in after), after
    # The return: held, then at most the ramp rate between polls (a poll's own duration and one
    # control step of slack, since a sample is timed when its answer arrives); never 0 to full.
    for a, b in itertools.pairwise(samples):
        assert b[1] - a[1] <= RATE_A_PER_S * (b[0] - a[0] + 0.25) + 0.2, (a, b)
    (tmp_path / "hb.json").write_text(
        json.dumps({"samples": len(samples), "losses": result["losses"]})
    )
