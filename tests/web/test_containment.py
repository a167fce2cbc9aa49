"""The web server and the Sparkplug edge node are side outputs: failing, they never stop the
control step. A gateway runs with its web port taken and its Sparkplug broker unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import can

from gateway.app import Gateway
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from tests.web.helpers import free_port


async def _until(cond: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Poll ``cond`` until true; the timeout only bounds a hang."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_failing_side_outputs_do_not_stop_the_control_step(tmp_path: Path) -> None:
    channel = f"contain-{uuid.uuid4().hex}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port = taken.getsockname()[1]
        dead_port = free_port()  # nothing listens: the Sparkplug connect is refused
        s = Settings()
        s = s.model_copy(
            update={
                "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
                "state": s.state.model_copy(update={"path": str(tmp_path / "estimator.json")}),
                "web": s.web.model_copy(update={"enabled": True, "port": web_port}),
                "sparkplug": s.sparkplug.model_copy(
                    update={"enabled": True, "port": dead_port, "reconnect_max_s": 0.5}
                ),
            }
        )
        m0 = time.monotonic()
        gw = Gateway(s, clock=lambda: (time.monotonic() - m0) * 10.0)
        sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=1)
        sim_bus = can.Bus(interface="virtual", channel=channel)
        stop = asyncio.Event()

        async def drive() -> None:
            await run_sim_on_bus(sim_bus, sim, speed=10.0, current_source=ConstantProfile(5.0))

        run = asyncio.create_task(gw.run(stop, extra=[drive]))
        try:
            # Once the Sparkplug connect has failed, the loop keeps stepping (counted in steps,
            # not in wall-clock time: the waits only bound a hang).
            await _until(lambda: gw.sparkplug is not None and bool(gw.sparkplug.status.last_error))
            assert gw.latest is not None
            seq = gw.latest.seq
            await _until(lambda: gw.latest is not None and gw.latest.seq > seq + 5)
            assert not run.done()
            assert gw.web is not None
            assert not gw.web.serving
            assert gw.sparkplug is not None
            assert not gw.sparkplug.status.connected
            assert gw.sparkplug.status.last_error
            assert gw.output_links()["sparkplug"] is False
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(run, 10.0)
            sim_bus.shutdown()
