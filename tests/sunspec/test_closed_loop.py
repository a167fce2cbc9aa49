"""The loop closed over real Modbus: pack simulator -> Controller -> 802 server -> controller sim.

No CAN here (readings go straight into the Controller, stamped with simulated time); the Modbus
side is real loopback. PV wants to charge an almost full pack: the limit tapers as the top cell
nears full and the simulated storage controller, which only knows what it reads from model 802,
keeps the current within it.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.control import Controller
from gateway.core.model import Reading, Role
from gateway.settings import Settings
from gateway.sim.inverter import PvLoadProfile, StorageControllerSim
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.server import SunSpecServer

STEP_S = 5.0


def _readings(pack: PackSim, t_s: float) -> list[Reading]:
    out = [
        Reading(Role.CELL_VOLTAGE, i, v, t_s) for i, v in enumerate(pack.sensed_cell_voltages_v())
    ]
    out += [
        Reading(Role.CELL_TEMPERATURE, i, c, t_s)
        for i, c in enumerate(pack.sensed_temperatures_c())
    ]
    out.append(Reading(Role.PACK_CURRENT, 0, pack.sensed_current_a(), t_s))
    out.append(Reading(Role.PACK_VOLTAGE, 0, pack.sensed_pack_voltage_v(), t_s))
    return out


async def _polls(ctl: StorageControllerSim, count: int) -> None:
    """Wait (bounded) until the controller sim has completed ``count`` polls."""
    loop = asyncio.get_running_loop()
    end = loop.time() + 5.0
    while ctl.polls < count:
        assert loop.time() < end, "the storage controller stopped polling"
        await asyncio.sleep(0.002)


async def test_pv_charging_tapers_and_the_inverter_obeys() -> None:
    settings = Settings(sunspec=SunSpecConfig(mode="server", port=0))
    ctrl = Controller(settings)
    server = SunSpecServer(settings.sunspec)
    pack = PackSim(PackSimConfig(initial_soc_pct=93.0, initial_soc_spread_pct=1.0), seed=3)
    ctl = StorageControllerSim(
        "127.0.0.1",
        0,
        poll_s=0.005,
        profile=PvLoadProfile(pv_peak_w=6000.0, start_hour=13.0),  # ~110 A of PV surplus
    )
    srv_task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), 5)
    ctl.port = server.bound_port or 0
    ctl_task = asyncio.create_task(ctl.run())
    history: list[tuple[float, float, float]] = []  # (published CCL, current, max cell V)
    try:
        t_s = 0.0
        for _ in range(240):  # 20 simulated minutes
            ctrl.ingest(_readings(pack, t_s))
            out = ctrl.step(t_s)
            server.update(out)
            # Two polls later the controller has surely read this step (one may be under way).
            await _polls(ctl, ctl.polls + 2)
            current = ctl.current_a(t_s)
            history.append((out.limits.ccl_a.value, current, max(pack.cell_voltages_v())))
            pack.step(STEP_S, current)
            t_s += STEP_S
    finally:
        for task in (ctl_task, srv_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 5)
    ccl = [h[0] for h in history]
    currents = [h[1] for h in history]
    # The inverter never charges above the computed limit (published rounded down).
    assert all(i <= c + 1e-9 for c, i in zip(ccl, currents, strict=True))
    # It did charge hard while it could, and the limit came down as the top cell filled.
    assert max(currents) > 80.0
    assert max(ccl) >= 99.0
    assert ccl[-1] < 0.3 * max(ccl)
    assert currents[-1] == pytest.approx(ccl[-1], abs=0.1)
    # And the top cell stayed below LFP's 3.65 V maximum charge voltage throughout.
    assert max(h[2] for h in history) < 3.65
