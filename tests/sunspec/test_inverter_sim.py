"""The inverter simulators: limit following over Modbus, and the storage controller against 802.

The PV/load profile and the limit follower on their own: tests/sim/test_follower.py.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.sim.inverter import InverterServerSim, StorageControllerSim
from gateway.sim.pack import PackSim
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.server import SunSpecServer
from tests.sunspec.helpers import Clock, make_output, stop_task, wait_until

NOON_S = 7 * 3600.0  # 13:00 (the profile starts at 06:00), the middle of the PV day
NIGHT_S = 14 * 3600.0  # 20:00, PV down and the evening load on


def test_current_follows_limits_in_both_directions() -> None:
    inv = InverterServerSim(models=(702,), wcha_max_w=1000.0, wdischa_max_w=2000.0)
    inv.set_voltage(50.0)
    assert inv.charge_limit_a == pytest.approx(20.0)
    assert inv.discharge_limit_a == pytest.approx(40.0)
    assert inv.current_a(NOON_S) == pytest.approx(20.0)  # PV would give ~70 A
    night = inv.current_a(NIGHT_S)
    assert night == pytest.approx(-inv.profile.load_w(NIGHT_S) / 50.0)
    assert -40.0 <= night < 0


def test_unknown_limits_leave_the_battery_alone() -> None:
    ctl = StorageControllerSim("127.0.0.1", 1)
    assert ctl.current_a(NOON_S) == 0.0


def test_drives_the_pack_simulator() -> None:
    pack = PackSim()
    inv = InverterServerSim(models=(702,), wcha_max_w=1000.0, voltage_source=pack.pack_voltage_v)
    volts = pack.pack_voltage_v()
    pack.step(60.0, inv.current_a(NOON_S))
    assert pack.current_a == pytest.approx(1000.0 / volts)
    assert pack.pack_voltage_v() > volts  # it charged


async def test_storage_controller_polls_802_and_keeps_the_heartbeat() -> None:
    clock = Clock()  # the server's CtrlHb watchdog counts on it, not on the wall clock
    server = SunSpecServer(SunSpecConfig(mode="server", port=0, ctrl_hb_timeout_s=0.8), clock=clock)
    server.update(make_output(ccl_a=30.0, dcl_a=10.0, pack_voltage_v=52.0))
    srv_task = asyncio.create_task(server.run())
    await asyncio.wait_for(server.started.wait(), 5)
    ctl = StorageControllerSim(
        "127.0.0.1", server.bound_port or 0, poll_s=0.05, ctrl_hb_period_s=0.1
    )
    ctl_task = asyncio.create_task(ctl.run())
    try:
        await wait_until(lambda: ctl.charge_limit_a is not None and ctl.polls > 2)
        assert ctl.charge_limit_a == pytest.approx(30.0)
        assert ctl.discharge_limit_a == pytest.approx(10.0)
        assert ctl.voltage_v == pytest.approx(52.0)
        assert ctl.soc_pct == pytest.approx(63.4)
        assert ctl.current_a(NOON_S) == pytest.approx(30.0)
        assert ctl.current_a(NIGHT_S) == pytest.approx(-10.0)
        await wait_until(lambda: server.controller_heartbeat().seen)
        # 1.25 s of the server's clock, longer than the timeout, moved on only after each new
        # CtrlHb from the controller: the heartbeat keeps it alive.
        for _ in range(5):
            last = server.controller_heartbeat().value
            await wait_until(lambda last=last: server.controller_heartbeat().value != last)
            clock.now_s += 0.25
            server.tick()
        assert not server.controller_heartbeat().lost
        # The controller's heartbeat stops: the battery withdraws its limits, the sim obeys.
        ctl.heartbeat = False
        polls = ctl.polls
        await wait_until(lambda: ctl.polls >= polls + 2)  # no CtrlHb write still on its way
        clock.now_s += 0.5
        server.tick()
        assert not server.controller_heartbeat().lost  # 0.5 s: within the timeout
        clock.now_s += 0.5
        server.tick()
        assert server.controller_heartbeat().lost  # 1 s without a change
        await wait_until(lambda: ctl.charge_limit_a == 0.0, timeout_s=3.0)
        assert ctl.evt1 & 1
        assert ctl.current_a(NOON_S) == 0.0
        ctl.heartbeat = True
        await wait_until(lambda: ctl.charge_limit_a == pytest.approx(30.0), timeout_s=2.0)
        # The battery tapers: the controller follows the next step.
        server.update(make_output(ccl_a=5.0, dcl_a=10.0, pack_voltage_v=52.0))
        await wait_until(lambda: ctl.charge_limit_a == pytest.approx(5.0))
        assert ctl.current_a(NOON_S) == pytest.approx(5.0)
    finally:
        await stop_task(ctl_task)
        await stop_task(srv_task)
