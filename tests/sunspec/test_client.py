"""Client mode against the inverter simulator on loopback: scan, writes, cadence, loss/recovery."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from gateway.core.model import ChargePhase, ChargeState
from gateway.errors import ModbusLinkError
from gateway.sim.inverter import InverterServerSim
from gateway.sunspec.client import ModbusLink, SunSpecClient, scan
from gateway.sunspec.config import SunSpecConfig
from tests.sunspec.helpers import Clock, free_port, make_output, stop_task, wait_until

FAST: dict[str, Any] = {
    "poll_s": 0.05,
    "rewrite_s": 0.25,
    "revert_timeout_s": 1,
    "backoff_max_s": 0.1,
    "request_timeout_s": 0.5,
}


class Probes:
    """Injected as the client's ``sleep``: its waits between probes of a lost inverter, recorded
    (``waits_s``) and cut to 10 ms, so a test counts probes instead of sleeping through them."""

    def __init__(self) -> None:
        self.waits_s: list[float] = []

    async def __call__(self, s: float) -> None:
        self.waits_s.append(s)
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def inverter(**kw: Any) -> AsyncIterator[tuple[InverterServerSim, asyncio.Task[None]]]:
    sim = InverterServerSim(**kw)
    task = asyncio.create_task(sim.run(), name="test.inverter")
    await asyncio.wait_for(sim.started.wait(), 5)
    try:
        yield sim, task
    finally:
        await stop_task(task)


@contextlib.asynccontextmanager
async def gateway_client(port: int, **kw: Any) -> AsyncIterator[SunSpecClient]:
    """A running client; ``clock=`` injects its clock (the rewrite cadence), ``sleep=`` its
    wait between probes of a lost inverter."""
    inject = {k: kw.pop(k) for k in ("clock", "sleep") if k in kw}
    cfg = SunSpecConfig(mode="client", port=port, **{**FAST, **kw})
    c = SunSpecClient(cfg, **inject)
    task = asyncio.create_task(c.run(), name="test.sunspec.client")
    try:
        yield c
    finally:
        await stop_task(task)


@pytest.mark.parametrize("base", [40000, 0, 50000])
async def test_scan_finds_the_storage_model_at_each_base(base: int) -> None:
    async with inverter(base=base, models=(702, 124)) as (sim, _):
        link = ModbusLink("127.0.0.1", sim.bound_port or 0, 1, 1.0)
        await link.connect()
        try:
            found = await scan(link, (40000, 0, 50000), prefer=124)
            found_702 = await scan(link, (40000, 0, 50000), prefer=702)
        finally:
            link.close()
    assert found.base == base
    assert found.model_id == 124
    assert found.models == (1, 702, 124)
    assert found_702.model_id == 702
    assert found_702.address == base + 2 + 68


async def test_scan_without_storage_model_is_a_link_error() -> None:
    async with inverter(models=(702,)) as (sim, _):
        link = ModbusLink("127.0.0.1", sim.bound_port or 0, 1, 1.0)
        await link.connect()
        try:
            with pytest.raises(ModbusLinkError, match="SunS"):
                await scan(link, (1000, 2000))
        finally:
            link.close()


async def test_124_writes_limits_and_reads_back_the_accepted_ones() -> None:
    volts = 50.0
    async with (
        inverter(models=(124,), wcha_max_w=5000.0, accept_max_pct=60.0) as (sim, _),
        gateway_client(sim.bound_port or 0) as c,
    ):
        sim.set_voltage(volts)
        c.update(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=volts))
        await wait_until(lambda: c.connected and c.negotiation().accepted_ccl_a is not None)
        v = sim.values(124)
        assert v["InWRte"] == 400  # 40 A * 50 V = 2000 W = 40.0 % of 5000 W
        assert v["OutWRte"] == 600  # 80 A asked = 80 %, the inverter takes at most 60 %
        assert v["StorCtl_Mod"] == 3
        assert v["InOutWRte_RvrtTms"] == 1
        assert v["ChaGriSet"] == 1  # GRID
        neg = c.negotiation()
        assert neg.link == "client"
        assert neg.requested_ccl_a == 40.0
        assert neg.accepted_ccl_a == pytest.approx(40.0)
        assert neg.accepted_dcl_a == pytest.approx(60.0)
        assert neg.effective_dcl_a == pytest.approx(60.0)
        assert neg.inverter_max_charge_a == pytest.approx(100.0)
        # The inverter obeys: the current follows the smaller of the two.
        assert sim.charge_limit_a == pytest.approx(40.0)
        assert sim.discharge_limit_a == pytest.approx(60.0)


async def test_cha_gri_set_follows_a_grid_full_charge_request() -> None:
    """With ``cha_gri_set = "pv"``, GRID only while a grid full charge is requested."""
    grid = ChargeState(
        phase=ChargePhase.BULK,
        reason="start",
        since_s=0.0,
        cvl_v=55.2,
        full_charge_requested=True,
        full_charge_reason="no full charge on record",
        grid_charge_requested=True,
        last_full_age_s=None,
    )
    async with (
        inverter(models=(124,)) as (sim, _),
        gateway_client(sim.bound_port or 0, cha_gri_set="pv") as c,
    ):
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0))
        await wait_until(lambda: c.connected and sim.values(124)["InWRte"] == 400)
        assert sim.values(124)["ChaGriSet"] == 0  # PV
        c.update(replace(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0), charge=grid))
        await wait_until(lambda: sim.values(124)["ChaGriSet"] == 1)  # GRID
        no_grid = replace(grid, grid_charge_requested=False)
        c.update(replace(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0), charge=no_grid))
        await wait_until(lambda: sim.values(124)["ChaGriSet"] == 0)


async def test_a_cut_is_written_at_once() -> None:
    async with (
        inverter(models=(124,)) as (sim, _),
        gateway_client(sim.bound_port or 0, poll_s=5.0, rewrite_s=0.5) as c,
    ):
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=80.0, dcl_a=80.0, pack_voltage_v=50.0))
        await wait_until(lambda: sim.values(124)["InWRte"] == 800)
        c.update(make_output(ccl_a=0.0, dcl_a=80.0, pack_voltage_v=50.0))
        # poll_s is 5 s: only the wake-up on a cut can write this quickly.
        await wait_until(lambda: sim.values(124)["InWRte"] == 0, timeout_s=1.0)
        assert sim.charge_limit_a == 0.0


async def test_702_writes_watts() -> None:
    async with (
        inverter(models=(702,), wcha_max_w=3000.0, wdischa_max_w=4000.0) as (sim, _),
        gateway_client(sim.bound_port or 0) as c,
    ):
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=100.0, dcl_a=30.0, pack_voltage_v=50.0))
        await wait_until(lambda: c.negotiation().accepted_dcl_a is not None)
        await wait_until(lambda: sim.values(702)["WDisChaRteMax"] == 15000)  # 1500.0 W
        v = sim.values(702)
        assert v["WChaRteMax"] == 30000  # 5000 W asked, clamped to the 3000 W rating
        neg = c.negotiation()
        assert neg.accepted_ccl_a == pytest.approx(60.0)
        assert neg.effective_ccl_a == pytest.approx(60.0)
        assert neg.accepted_dcl_a == pytest.approx(30.0)
        assert neg.inverter_max_discharge_a == pytest.approx(80.0)


async def test_rewrite_cadence_keeps_the_inverter_from_reverting() -> None:
    # One clock for the gateway's cadence and the inverter's revert timeout, moved by the test.
    clock = Clock()
    async with inverter(models=(124,), clock=clock) as (sim, _):
        async with gateway_client(sim.bound_port or 0, clock=clock) as c:
            c.update(make_output(ccl_a=20.0, dcl_a=20.0, pack_voltage_v=51.2))
            await wait_until(lambda: c.connected)
            for _ in range(8):  # 2 s: twice the 1 s revert timeout, a rewrite every 0.25 s
                clock.now_s += 0.25
                # The whole rewrite (several requests) is done before the clock moves on.
                await wait_until(lambda: c.write_times_s[-1] == clock.now_s)
            times = [w.t_s for w in sim.writes if w.point == "InWRte"]
            assert times == [1000.0 + 0.25 * k for k in range(9)]  # once each, on time
            assert sim.reverts == 0
            assert sim.values(124)["StorCtl_Mod"] == 3
        # The gateway is gone: the inverter reverts by itself after its timeout.
        clock.now_s += 1.25
        await wait_until(lambda: sim.reverts == 1)  # the simulator checks on its own clock
        assert sim.values(124)["StorCtl_Mod"] == 0


async def test_quirks_by_config() -> None:
    kw = {"models": (124,), "reject_cha_gri_set": True, "reject_revert_timeout": True}
    async with inverter(**kw) as (sim, _):
        probes = Probes()
        async with gateway_client(sim.bound_port or 0, sleep=probes) as c:
            c.update(make_output(ccl_a=20.0, dcl_a=20.0, pack_voltage_v=51.2))
            await wait_until(lambda: len(probes.waits_s) >= 3)  # three attempts failed
            assert not c.connected  # exception 02 on ChaGriSet: never negotiated
            assert c.losses == 0  # not even for a moment
            assert c.last_error is not None
            assert "exception 2" in c.last_error
        async with gateway_client(
            sim.bound_port or 0, send_cha_gri_set=False, send_revert_timeout=False
        ) as c:
            c.update(make_output(ccl_a=20.0, dcl_a=20.0, pack_voltage_v=51.2))
            await wait_until(lambda: c.connected)
            assert sim.values(124)["InWRte"] > 0
            assert {w.point for w in sim.writes} == {"OutWRte", "InWRte", "StorCtl_Mod"}


async def test_link_loss_and_recovery_are_logged_once_each(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    caplog.set_level(logging.DEBUG, logger="gateway.sunspec.client")
    sim = InverterServerSim(port=port, models=(124,))
    task = asyncio.create_task(sim.run())
    await asyncio.wait_for(sim.started.wait(), 5)
    probes = Probes()
    async with gateway_client(port, sleep=probes) as c:
        c.update(make_output(ccl_a=20.0, dcl_a=20.0, pack_voltage_v=51.2))
        await wait_until(lambda: c.connected)
        await stop_task(task)
        await wait_until(lambda: not c.connected)
        assert c.negotiation().accepted_ccl_a is None  # nothing known while down
        failed = len(probes.waits_s)
        await wait_until(lambda: len(probes.waits_s) >= failed + 3)  # more attempts fail
        task = asyncio.create_task(sim.run())
        await asyncio.wait_for(sim.started.wait(), 5)
        await wait_until(lambda: c.connected, timeout_s=3.0)
        await stop_task(task)
        assert c.losses == 1
    msgs = [r.getMessage() for r in caplog.records if r.name == "gateway.sunspec.client"]
    down = [m for m in msgs if "link down" in m]
    linked = [m for m in msgs if "linked" in m]
    retries = [m for m in msgs if "still down" in m]
    assert len(down) == 1
    assert len(linked) == 2  # first contact, then the recovery
    assert "after a loss" in linked[1]
    assert retries  # the failed attempts happened, quietly
    assert all(r.levelno == logging.DEBUG for r in caplog.records if "still down" in r.getMessage())


async def test_unreachable_inverter_never_raises_out_of_run() -> None:
    probes = Probes()
    async with gateway_client(free_port(), sleep=probes) as c:
        await wait_until(lambda: len(probes.waits_s) >= 3)  # three attempts failed
        assert not c.connected
        neg = c.negotiation()
        assert neg.link == "client"
        assert not neg.connected


def test_rewrite_must_be_well_within_the_revert_timeout() -> None:
    with pytest.raises(ValueError, match="rewrite_s"):
        SunSpecConfig(mode="client", revert_timeout_s=10, rewrite_s=8.0)


async def test_read_back_disagreement_is_rewritten_at_once() -> None:
    async with (
        inverter(models=(124,)) as (sim, _),
        gateway_client(sim.bound_port or 0, rewrite_s=5.0, revert_timeout_s=30) as c,
    ):
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0))
        await wait_until(lambda: sim.values(124)["StorCtl_Mod"] == 3)
        writes = c.writes
        sim.forget_settings()  # a reboot: unlimited until we write again
        assert sim.charge_limit_a > 40.0
        # rewrite_s is 5 s: only the read-back check can restore it this quickly.
        # (The rewrite is more than one Modbus request: wait for the last register too.)
        await wait_until(
            lambda: sim.values(124)["InWRte"] == 400 and sim.values(124)["StorCtl_Mod"] == 3,
            timeout_s=1.0,
        )
        assert sim.charge_limit_a == pytest.approx(40.0)
        assert c.writes == writes + 1
        assert c.rewrites_on_disagreement == 1


async def test_an_inverter_that_clamps_is_not_rewritten_in_a_loop() -> None:
    async with (
        inverter(models=(124,), accept_max_pct=60.0) as (sim, _),
        gateway_client(sim.bound_port or 0, rewrite_s=5.0, revert_timeout_s=30) as c,
    ):
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0))  # 80 % > 60 %
        await wait_until(lambda: c.connected and c.writes >= 1)
        polls = c.polls
        await wait_until(lambda: c.polls >= polls + 20)  # 20 more reads of the clamped values
        assert c.rewrites_on_disagreement == 1
        assert c.writes <= 2


async def test_a_lost_inverter_is_probed_every_one_to_two_seconds() -> None:
    port = free_port()
    sim = InverterServerSim(port=port, models=(124,))
    task = asyncio.create_task(sim.run())
    await asyncio.wait_for(sim.started.wait(), 5)
    probes = Probes()
    async with gateway_client(
        port, backoff_max_s=30.0, rewrite_s=5.0, revert_timeout_s=30, sleep=probes
    ) as c:
        sim.set_voltage(50.0)
        c.update(make_output(ccl_a=40.0, dcl_a=80.0, pack_voltage_v=50.0))
        await wait_until(lambda: c.connected)
        await stop_task(task)
        await wait_until(lambda: not c.connected)
        await wait_until(lambda: len(probes.waits_s) >= 12)  # many failed probes
        sim.forget_settings()  # it comes back rebooted
        task = asyncio.create_task(sim.run())
        await asyncio.wait_for(sim.started.wait(), 5)
        await wait_until(lambda: sim.values(124)["StorCtl_Mod"] == 3, timeout_s=3.0)
        await stop_task(task)
    # Every wait 1-2 s however long it was down: no backoff growing towards backoff_max_s.
    assert probes.waits_s
    assert all(1.0 <= w <= 2.0 for w in probes.waits_s), probes.waits_s
