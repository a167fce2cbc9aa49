"""The link's own resilience: reopening a failed bus, a bad interface name, the supervisor's
restart of a failed side output."""

from __future__ import annotations

import asyncio
import contextlib
import os

import can
import pytest

from gateway.errors import ConfigError
from gateway.inverter_can.config import InverterCanConfig, InverterProtocol
from gateway.inverter_can.frames import BatteryIdentity
from gateway.inverter_can.link import InverterCanLink, open_inverter_bus
from gateway.supervisor import Supervisor
from tests.inverter_can.outputs import output

IDENT = BatteryIdentity(capacity_ah=100.0)


async def test_the_link_reopens_a_bus_that_failed_to_open() -> None:
    cfg = InverterCanConfig(protocol=InverterProtocol.PYLON, channel=f"inv-reopen-{os.getpid()}")
    calls = [0]

    def opener(c: InverterCanConfig) -> can.BusABC:
        calls[0] += 1
        if calls[0] == 1:
            raise can.CanOperationError("adapter unplugged")
        return open_inverter_bus(c)

    link = InverterCanLink(cfg, IDENT, bus_opener=opener)
    link.update(output(t_s=0.0))  # bus not open yet: counted, not raised
    assert link.stats.tx_errors > 0
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(link.opened.wait(), 5)
        assert link.stats.reopens == 1
        assert "adapter unplugged" in link.stats.last_error
        listener = can.Bus(interface="virtual", channel=cfg.channel)
        try:
            link.update(output(t_s=1.0))
            msg = listener.recv(1.0)
            assert msg is not None
            assert msg.arbitration_id == 0x351
        finally:
            listener.shutdown()
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert not link.connected


async def test_an_unknown_interface_is_a_config_error() -> None:
    cfg = InverterCanConfig(protocol=InverterProtocol.SMA, interface="no-such-interface")
    with pytest.raises(ConfigError, match=r"inverter_can\.interface"):
        await asyncio.wait_for(InverterCanLink(cfg, IDENT).run(), 5)


async def test_a_failed_side_output_is_restarted() -> None:
    # The inverter CAN link runs as a supervised output (gateway.supervisor): a bug or a
    # configuration error in it is logged and retried; it never ends the gateway.
    runs: list[int] = []
    restarted = asyncio.Event()

    async def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("bug in a side output")
        if len(runs) == 2:
            raise ConfigError("bad key")
        restarted.set()
        await asyncio.sleep(3600)

    sup = Supervisor(backoff_max_s=0.01)
    sup.add_output("gateway.inverter_can", flaky)
    stop = asyncio.Event()
    runner = asyncio.create_task(sup.run(stop))
    await asyncio.wait_for(restarted.wait(), 5)
    status = sup.status()[0]
    assert status.restarts == 2
    assert "ConfigError" in status.last_error
    assert status.running
    stop.set()
    await asyncio.wait_for(runner, 5)
