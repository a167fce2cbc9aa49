"""The supervisor over real parts: a simulated pack on a virtual CAN bus, sd_notify on a socket.

The gateway runs on an accelerated clock shared with the simulator, so minutes of pack time
pass in seconds; every assertion is about behaviour, none about wall-clock speed.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import can
import pytest

from gateway.app import Gateway
from gateway.core.model import ControlOutput, SetUserCurrentCap
from gateway.sdnotify import Notifier
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from gateway.state_store import load_state

SPEED = 20.0


def _settings(tmp_path: Path, channel: str, **control: float) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "state": s.state.model_copy(
                update={"path": str(tmp_path / "estimator.json"), "interval_s": 5.0}
            ),
            "control": s.control.model_copy(update=control),
        }
    )


def _clock(speed: float) -> Callable[[], float]:
    m0 = time.monotonic()
    return lambda: (time.monotonic() - m0) * speed


@pytest.fixture
def channel() -> str:
    """A virtual CAN channel of this test's own."""
    return f"app-test-{uuid.uuid4().hex}"


async def _wait_for(pred: Callable[[], bool], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        while not pred():  # noqa: ASYNC110 - polls state the gateway owns, no event to await
            await asyncio.sleep(0.02)


async def test_gateway_runs_the_loop_and_fails_safe(
    tmp_path: Path, channel: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.app")
    settings = _settings(tmp_path, channel)
    clock = _clock(SPEED)
    gw = Gateway(settings, clock=clock)
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=60.0, initial_soc_spread_pct=5.0), 7)
    sim_bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    sim_stop = asyncio.Event()
    seen: list[ControlOutput] = []

    async def drive_sim() -> None:
        await run_sim_on_bus(
            sim_bus, sim, speed=SPEED, current_source=ConstantProfile(10.0), stop=sim_stop
        )

    async def scenario() -> None:
        # Before any data: 0 A both ways, and the reason says why.
        await _wait_for(lambda: gw.latest is not None, 5)
        assert gw.latest is not None
        assert gw.latest.limits.ccl_a.value == 0.0
        assert gw.latest.limits.dcl_a.value == 0.0
        # With the pack reporting: complete data, SoC, then limits ramp up after the hold.
        await _wait_for(lambda: gw.latest is not None and gw.latest.pack.complete, 10)
        await _wait_for(lambda: gw.latest is not None and gw.latest.limits.ccl_a.value > 0, 10)
        out = gw.latest
        assert out is not None
        assert out.soc is not None
        assert 40.0 < out.soc.soc_pct < 80.0
        assert out.mode == "normal"
        seen.append(out)
        # A user cap lowers the charge limit at once.
        result = gw.command(SetUserCurrentCap(charge_a=3.0, discharge_a=None, source="test"))
        assert result.accepted
        await _wait_for(lambda: gw.latest is not None and gw.latest.limits.ccl_a.value <= 3.0, 5)
        # The balancing decision reaches the simulated pack over CAN.
        assert gw.latest is not None
        await _wait_for(lambda: tuple(sim.bleed_mask) == gw.latest.balancing.bleed, 5)  # type: ignore[union-attr]
        # The pack stops reporting: 0 A both ways within the timeout, named as stale.
        sim_stop.set()
        await _wait_for(lambda: gw.latest is not None and gw.latest.limits.dcl_a.value == 0, 10)
        assert gw.latest is not None
        assert gw.latest.limits.ccl_a.value == 0.0
        assert "stale" in gw.latest.limits.dcl_a.winner
        # The loss of BMS data is an event, said once.
        await _wait_for(lambda: "event can_link_lost" in caplog.text, 5)
        stop.set()

    try:
        await gw.run(stop, extra=[drive_sim, scenario])
    finally:
        sim_bus.shutdown()
    assert seen
    assert caplog.text.count("event can_link_up") == 1
    assert caplog.text.count("event can_link_lost") == 1
    # Stopping writes the estimator state.
    state = load_state(Path(settings.state.path))
    assert state is not None
    assert state["chemistry"] == "lfp"


class _NotifyListener:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def count(self, line: str, since: float = 0.0) -> int:
        return sum(1 for t, m in self.messages if m == line and t >= since)


def test_notify_ready_watchdog_and_silence_when_stuck(tmp_path: Path, channel: str) -> None:
    listener = _NotifyListener(tmp_path / "notify.sock")
    # systemd passes WatchdogSec as WATCHDOG_USEC; we ping at half of it.
    notifier = Notifier({"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": "200000"})
    gw = Gateway(_settings(tmp_path, channel), notifier=notifier)
    hang = threading.Event()
    release = threading.Event()
    real_step = gw.ctrl.step

    def step(now_s: float) -> ControlOutput:
        if hang.is_set():
            release.wait(30)  # a control step that never returns: the loop is stuck
        return real_step(now_s)

    gw.ctrl.step = step  # type: ignore[method-assign]
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(gw.run(stop),))
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            listener.drain()
        assert listener.count("READY=1") == 1
        assert listener.count("WATCHDOG=1") >= 5  # every 0.1 s for 1.5 s, allowing for load
        hang.set()
        time.sleep(0.3)  # let a ping already on its way arrive
        listener.drain()
        since = time.monotonic()
        deadline = since + 1.0
        while time.monotonic() < deadline:
            listener.drain()
        assert listener.count("WATCHDOG=1", since) == 0
    finally:
        release.set()
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
    assert not thread.is_alive()
    listener.drain()
    listener.sock.close()
    assert listener.count("STOPPING=1") == 1
