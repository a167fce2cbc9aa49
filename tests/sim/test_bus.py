"""``run_sim_on_bus`` over a python-can ``virtual`` bus pair: frames arrive, commands are obeyed."""

from __future__ import annotations

import asyncio
import math
import uuid
from collections import Counter
from collections.abc import Iterator

import can
import cantools
import pytest
from cantools.database import Database

from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from tests.clock import wait_until
from tests.conftest import BMS_DBC


@pytest.fixture
def buses() -> Iterator[tuple[can.BusABC, can.BusABC]]:
    """The simulator's end and the gateway's end of one virtual bus (a channel of its own)."""
    channel = f"sim-test-{uuid.uuid4().hex}"
    sim_bus = can.Bus(interface="virtual", channel=channel)
    gw_bus = can.Bus(interface="virtual", channel=channel)
    try:
        yield sim_bus, gw_bus
    finally:
        sim_bus.shutdown()
        gw_bus.shutdown()


def _command(cells: set[int]) -> can.Message:
    db = cantools.database.load_file(BMS_DBC, strict=True)
    assert isinstance(db, Database)
    msg_def = db.get_message_by_name("GW_BalancingCommand")
    data = {"BalancingCommand_Mux": 0}
    data.update({f"BalancingCommand_{k:03d}": int(k in cells) for k in range(56)})
    return can.Message(arbitration_id=0x140, data=msg_def.encode(data), is_extended_id=False)


def _drain(bus: can.BusABC) -> list[can.Message]:
    out = []
    while (msg := bus.recv(timeout=0.0)) is not None:
        out.append(msg)
    return out


async def test_frames_arrive_and_a_command_is_obeyed(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    sim_bus, gw_bus = buses
    sim = PackSim(PackSimConfig(cells=8), seed=1)
    gw_bus.send(_command({2, 6}))
    summary = await asyncio.wait_for(
        run_sim_on_bus(
            sim_bus,
            sim,
            speed=40.0,
            current_source=ConstantProfile(12.0),
            duration_s=10.0,
            command_clock="wall",
        ),
        timeout=10.0,
    )
    frames = _drain(gw_bus)
    counts = Counter(m.arbitration_id for m in frames)
    # 10 s simulated: pack values every 20 ms, 2 voltage frames every 100 ms, 1 s messages.
    assert counts[0x120] == 501
    assert counts[0x100] == 2 * 101
    assert counts[0x110] == 11  # 8 cells: 2 sensors, one frame
    assert counts[0x130] == 11
    assert summary.frames_sent == len(frames)
    assert summary.sim_s == pytest.approx(10.0)
    assert summary.wall_s >= 10.0 / 40.0 * 0.9  # paced, not flat out
    assert summary.stats.commands_applied == 1
    # The command arrived at once and did not time out on the wall clock (0.25 s < 5 s).
    assert [k for k, on in enumerate(sim.bleed_mask) if on] == [2, 6]
    assert sim.bleed_charge_ah[2] > 0.0
    assert sim.bleed_charge_ah[0] == 0.0
    db = cantools.database.load_file(BMS_DBC, strict=True)
    assert isinstance(db, Database)
    last_pack = next(m for m in reversed(frames) if m.arbitration_id == 0x120)
    decoded = db.decode_message(0x120, bytes(last_pack.data))
    assert isinstance(decoded, dict)
    assert decoded["PackCurrent"] == 12000
    status = [m for m in frames if m.arbitration_id == 0x130][-1]
    decoded_status = db.decode_message(0x130, bytes(status.data))
    assert isinstance(decoded_status, dict)
    assert decoded_status["BalancingStatus_002"] == decoded_status["BalancingStatus_006"] == 1


async def test_command_times_out_on_simulated_time(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    sim_bus, gw_bus = buses
    sim = PackSim(PackSimConfig(cells=4), seed=1)
    gw_bus.send(_command({1}))
    summary = await asyncio.wait_for(
        run_sim_on_bus(
            sim_bus,
            sim,
            speed=math.inf,
            current_source=ConstantProfile(0.0),
            duration_s=30.0,
        ),
        timeout=10.0,
    )
    assert summary.stats.commands_applied == 1
    assert summary.stats.command_timeouts == 1
    assert not any(sim.bleed_mask)
    # Bled from the first step until 5 s later: ~0.1 A for ~5 s.
    assert sim.bleed_charge_ah[1] == pytest.approx(0.1 * 5.0 / 3600.0, rel=0.05)


async def test_stop_event_and_cancellation_end_the_run(
    buses: tuple[can.BusABC, can.BusABC],
) -> None:
    sim_bus, _gw_bus = buses
    sim = PackSim(PackSimConfig(cells=4), seed=1)
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_sim_on_bus(sim_bus, sim, speed=1.0, current_source=ConstantProfile(1.0), stop=stop)
    )
    await wait_until(lambda: sim.t_s > 0.0)  # it runs
    at_stop_s = sim.t_s
    stop.set()
    summary = await asyncio.wait_for(task, timeout=2.0)
    assert 0.0 < summary.sim_s <= at_stop_s + 0.02  # at most one step after the stop

    endless = asyncio.create_task(
        run_sim_on_bus(sim_bus, sim, speed=1.0, current_source=ConstantProfile(1.0))
    )
    before_s = sim.t_s
    await wait_until(lambda: sim.t_s > before_s)  # it runs
    endless.cancel()
    with pytest.raises(asyncio.CancelledError):
        await endless


async def test_bad_arguments_are_rejected(buses: tuple[can.BusABC, can.BusABC]) -> None:
    sim_bus, _ = buses
    sim = PackSim(PackSimConfig(cells=4), seed=1)
    with pytest.raises(ValueError, match="speed"):
        await run_sim_on_bus(sim_bus, sim, speed=0.0, current_source=ConstantProfile(0.0))
    with pytest.raises(ValueError, match="step_s"):
        await run_sim_on_bus(
            sim_bus, sim, speed=1.0, current_source=ConstantProfile(0.0), step_s=-1.0
        )
