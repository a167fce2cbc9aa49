"""Server mode over real loopback Modbus: pysunspec2 reads model 802, pymodbus clients write."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymodbus.client import AsyncModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from gateway.control import Controller
from gateway.core.model import Alarm, Command, CommandResult, Reading, ResetAlarms, Role, Severity
from gateway.errors import ModbusLinkError
from gateway.settings import load_settings
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.evt1 import evt1_of
from gateway.sunspec.model802 import BatteryInfo, LinkState
from gateway.sunspec.server import SunSpecServer
from tests.sunspec.helpers import Clock, make_output

UNIT = 3


class Commands:
    """Records commands and answers them as configured."""

    def __init__(self, accept: bool = True) -> None:
        self.accept = accept
        self.seen: list[Command] = []

    def __call__(self, cmd: Command) -> CommandResult:
        self.seen.append(cmd)
        return CommandResult(self.accept, "ok" if self.accept else "refused")


@contextlib.asynccontextmanager
async def serving(**cfg: Any) -> AsyncIterator[tuple[SunSpecServer, Commands]]:
    """A running server on a free loopback port; stopped (and checked to stop) at exit.

    ``clock=`` injects the server's clock (then move it and call ``server.tick()``)."""
    commands = Commands(accept=cfg.pop("accept", True))
    clock = cfg.pop("clock", None)
    config = SunSpecConfig(mode="server", port=0, unit_id=UNIT, **cfg)
    kw: dict[str, Any] = {"clock": clock} if clock is not None else {}
    server = SunSpecServer(config, info=BatteryInfo(unit_id=UNIT), on_command=commands, **kw)
    task = asyncio.create_task(server.run(), name="test.sunspec.server")
    await asyncio.wait_for(server.started.wait(), 5)
    try:
        yield server, commands
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
        assert task.cancelled()


@contextlib.asynccontextmanager
async def client(port: int) -> AsyncIterator[AsyncModbusTcpClient]:
    c = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    assert await c.connect()
    try:
        yield c
    finally:
        c.close()


def _read_802_with_pysunspec2(port: int) -> dict[str, Any]:
    dev = SunSpecModbusClientDeviceTCP(slave_id=UNIT, ipaddr="127.0.0.1", ipport=port, timeout=3)
    try:
        dev.scan()
        common = dev.models[1][0]
        m = dev.models[802][0]
        return {
            "base": dev.base_addr,
            "models": [k for k in dev.models if isinstance(k, int)],
            "Mn": common.Mn.value,
            "AChaMax": m.AChaMax.cvalue,
            "ADisChaMax": m.ADisChaMax.cvalue,
            "VMax": m.VMax.cvalue,
            "VMin": m.VMin.cvalue,
            "SoC": m.SoC.cvalue,
            "SoH": m.SoH.cvalue,
            "V": m.V.cvalue,
            "A": m.A.cvalue,
            "CellVMax": m.CellVMax.cvalue,
            "CellVMin": m.CellVMin.cvalue,
            "CellVMaxMod": m.CellVMaxMod.value,
            "Evt1": m.Evt1.value,
            "State": m.State.value,
            "LocRemCtl": m.LocRemCtl.value,
            "errors": m.error_info,
        }
    finally:
        dev.close()


async def test_pysunspec2_scans_and_reads_what_the_step_said() -> None:
    async with serving() as (server, _):
        warning = Alarm("cell_overvoltage", Severity.WARNING, "cell 3 at 3.56 V", 0.0)
        out = make_output(ccl_a=42.3, dcl_a=77.0, cvl_v=56.5, dvl_v=43.2, alarms=(warning,))
        server.update(out)
        got = await asyncio.to_thread(_read_802_with_pysunspec2, server.bound_port or 0)
    assert got["base"] == 40000
    assert got["models"][:2] == [1, 802]
    assert got["errors"] == ""
    assert got["Mn"] == "bms-gateway"
    assert got["AChaMax"] == pytest.approx(42.3)
    assert got["ADisChaMax"] == pytest.approx(77.0)
    assert got["VMax"] == pytest.approx(56.5)
    assert got["VMin"] == pytest.approx(43.2)
    assert got["SoC"] == pytest.approx(63.4)
    assert got["SoH"] == pytest.approx(97.2)
    assert got["V"] == pytest.approx(53.1)
    assert got["A"] == pytest.approx(12.5)
    assert got["CellVMax"] == pytest.approx(3.45)
    assert got["CellVMin"] == pytest.approx(3.29)
    assert got["CellVMaxMod"] == 1
    assert got["Evt1"] == 1 << 10  # OVER_VOLT_WARNING
    assert got["State"] == 3  # CONNECTED
    assert got["LocRemCtl"] == 0  # REMOTE


async def test_ctrl_hb_timeout_zeroes_limits_until_it_changes_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway.sunspec.server")
    clock = Clock()
    async with (
        serving(ctrl_hb_timeout_s=0.5, clock=clock) as (server, _),
        client(server.bound_port or 0) as c,
    ):
        server.update(make_output(ccl_a=50.0, dcl_a=60.0))
        m = server.map
        ach, evt1 = m.address("AChaMax"), m.address("Evt1")

        async def limits() -> tuple[int, int, int]:
            r = await c.read_holding_registers(ach, count=2, device_id=UNIT)
            e = await c.read_holding_registers(evt1, count=2, device_id=UNIT)
            assert not r.isError()
            assert not e.isError()
            return r.registers[0], r.registers[1], (e.registers[0] << 16) | e.registers[1]

        async def write_ctrl_hb(value: int, then_s: float) -> None:
            assert not (
                await c.write_register(m.address("CtrlHb"), value, device_id=UNIT)
            ).isError()
            clock.now_s += then_s
            server.tick()

        # Never written: no watchdog, limits published.
        clock.now_s += 0.7  # longer than the timeout
        server.tick()
        assert await limits() == (500, 600, 0)
        assert not server.controller_heartbeat().seen
        # Written, then kept changing: still fine.
        for v in range(1, 11):
            await write_ctrl_hb(v, 0.05)
        assert await limits() == (500, 600, 0)
        # Writing the same value is no sign of life: lost 0.5 s after the last change.
        for _ in range(4):
            await write_ctrl_hb(10, 0.1)
        assert not server.controller_heartbeat().lost  # 0.45 s
        await write_ctrl_hb(10, 0.1)
        assert server.controller_heartbeat().lost  # 0.55 s
        assert await limits() == (0, 0, 1)
        neg = server.negotiation()
        assert neg.effective_ccl_a == 0.0
        assert neg.accepted_dcl_a == 0.0
        assert neg.connected  # the client still polls: a current now would be disobedience
        # A new value brings the limits back at once.
        await c.write_register(m.address("CtrlHb"), 11, device_id=UNIT)
        assert await limits() == (500, 600, 0)
        assert not server.controller_heartbeat().lost
        assert server.negotiation().effective_ccl_a == pytest.approx(50.0)
        # Lost again soon after: counted, but the log does not repeat the warning.
        clock.now_s += 0.6
        server.tick()
        assert server.controller_heartbeat().lost
        assert server.controller_heartbeat().losses == 2
        await c.write_register(m.address("CtrlHb"), 12, device_id=UNIT)
        assert await limits() == (500, 600, 0)
    warnings = [r for r in caplog.records if "CtrlHb) unchanged" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING, logging.DEBUG]


async def test_alm_rst_calls_reset_and_reads_back_zero() -> None:
    async with serving() as (server, commands), client(server.bound_port or 0) as c:
        addr = server.map.address("AlmRst")
        r = await c.write_register(addr, 1, device_id=UNIT)
        assert not r.isError()
        assert commands.seen == [ResetAlarms(source="modbus")]
        back = await c.read_holding_registers(addr, count=1, device_id=UNIT)
        assert back.registers == [0]
        bad = await c.write_register(addr, 7, device_id=UNIT)
        assert bad.isError()
        assert bad.exception_code == 3
        assert len(commands.seen) == 1


async def test_alm_rst_refused_by_the_controller_is_an_exception() -> None:
    async with serving(accept=False) as (server, commands), client(server.bound_port or 0) as c:
        r = await c.write_register(server.map.address("AlmRst"), 1, device_id=UNIT)
        assert r.isError()
        assert r.exception_code == 4
        assert len(commands.seen) == 1


@pytest.mark.parametrize("control", ["remote", "local"])
async def test_set_op_only_in_remote_mode(control: str) -> None:
    async with serving(control=control) as (server, _), client(server.bound_port or 0) as c:
        server.update(make_output(ccl_a=50.0, dcl_a=60.0))
        m = server.map
        loc = await c.read_holding_registers(m.address("LocRemCtl"), count=1, device_id=UNIT)
        assert loc.registers == [0 if control == "remote" else 1]
        r = await c.write_register(m.address("SetOp"), 2, device_id=UNIT)  # DISCONNECT
        lim = await c.read_holding_registers(m.address("AChaMax"), count=2, device_id=UNIT)
        state = await c.read_holding_registers(m.address("State"), count=1, device_id=UNIT)
        if control == "remote":
            assert not r.isError()
            assert lim.registers == [0, 0]
            assert state.registers == [1]  # DISCONNECTED
            assert (
                await c.write_register(m.address("SetOp"), 1, device_id=UNIT)
            ).isError() is False
            lim = await c.read_holding_registers(m.address("AChaMax"), count=2, device_id=UNIT)
            assert lim.registers == [500, 600]
        else:
            assert r.isError()
            assert r.exception_code == 3
            assert lim.registers == [500, 600]
            assert state.registers == [3]  # CONNECTED


@pytest.mark.parametrize("point", ["AChaMax", "V", "Hb", "SoC", "A_SF", "LocRemCtl"])
async def test_write_to_read_only_point_is_exception_02(point: str) -> None:
    async with serving() as (server, _), client(server.bound_port or 0) as c:
        server.update(make_output())
        addr = server.map.address(point)
        before = await c.read_holding_registers(addr, count=1, device_id=UNIT)
        r = await c.write_register(addr, 1234, device_id=UNIT)
        assert r.isError()
        assert r.exception_code == 2
        after = await c.read_holding_registers(addr, count=1, device_id=UNIT)
        assert after.registers == before.registers


async def test_multi_write_spanning_a_read_only_point_changes_nothing() -> None:
    async with serving() as (server, commands), client(server.bound_port or 0) as c:
        # CtrlHb and AlmRst are writable, the next register (Typ) is not.
        r = await c.write_registers(server.map.address("CtrlHb"), [9, 1, 4], device_id=UNIT)
        assert r.isError()
        assert r.exception_code == 2
        assert commands.seen == []
        assert not server.controller_heartbeat().seen


@pytest.mark.parametrize(
    ("address", "count"),
    [(0, 1), (39999, 2), (40000 + 136, 1), (40130, 10), (50000, 2), (65535, 1)],
)
async def test_unmapped_addresses_are_exception_02(address: int, count: int) -> None:
    async with serving() as (server, _), client(server.bound_port or 0) as c:
        r = await c.read_holding_registers(address, count=count, device_id=UNIT)
        assert r.isError()
        assert r.exception_code == 2
        w = await c.write_register(address, 1, device_id=UNIT)
        assert w.isError()
        assert w.exception_code == 2


def _mbap(tid: int, unit: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def _garbage(port: int) -> int:
    """Send a burst of malformed requests on raw sockets; return how many were sent."""
    frames = [
        b"\x00" * 3,  # shorter than a header
        _mbap(1, UNIT, b"\x03"),  # read without address or count
        _mbap(2, UNIT, b"\x03\x9c\x40\x00\x00"),  # count 0
        _mbap(3, UNIT, b"\x03\x9c\x40\x01\x00"),  # count 256 (> 125)
        _mbap(4, UNIT, b"\x10\x9c\x40\x00\x02\x03\x00"),  # byte count disagrees
        _mbap(5, UNIT, b"\x63\x00\x00"),  # no such function
        struct.pack(">HHHB", 6, 0, 0xFFFF, UNIT) + b"\x03",  # length far beyond the frame
        b"\xff" * 300,
        _mbap(7, UNIT, b"\x2b\x0e\x01\x00"),  # device identification
    ]
    sent = 0
    for _ in range(8):
        for frame in frames:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(frame)
                sent += 1
                s.settimeout(0.05)
                with contextlib.suppress(OSError):
                    s.recv(512)
    return sent


async def test_burst_of_malformed_requests_keeps_serving() -> None:
    async with serving() as (server, _):
        server.update(make_output(ccl_a=12.0))
        port = server.bound_port or 0
        sent = await asyncio.to_thread(_garbage, port)
        assert sent == 72
        async with client(port) as c:
            r = await c.read_holding_registers(
                server.map.address("AChaMax"), count=1, device_id=UNIT
            )
            assert not r.isError()
            assert r.registers == [120]


async def test_several_clients_at_once_read_consistent_steps() -> None:
    """Readers never see a half-written model while steps alternate between two outputs."""
    a = make_output(seq=1, ccl_a=10.0, dcl_a=10.0, current_a=1.0, soc_pct=10.0)
    b = make_output(seq=2, ccl_a=90.0, dcl_a=90.0, current_a=-50.0, soc_pct=90.0)
    async with serving() as (server, _):
        m = server.map
        first, size = m.battery_address, m.battery.size
        server.update(a)
        img_a = server.map.image(a, LinkState())[first - m.base : first - m.base + size]
        img_b = server.map.image(b, LinkState())[first - m.base : first - m.base + size]
        hb = m.battery.point("Hb").offset
        stop = asyncio.Event()

        async def flip() -> None:
            n = 0
            while not stop.is_set():
                server.update(b if n % 2 else a)
                n += 1
                await asyncio.sleep(0)

        seen = {"a": 0, "b": 0}

        async def reader() -> int:
            n = 0
            async with client(server.bound_port or 0) as c:
                for _ in range(60):
                    r = await c.read_holding_registers(first, count=size, device_id=UNIT)
                    assert not r.isError()
                    regs = list(r.registers)
                    regs[hb] = img_a[hb]  # Hb counts on its own
                    assert regs in (img_a, img_b)
                    seen["a" if regs == img_a else "b"] += 1
                    n += 1
            return n

        flipper = asyncio.create_task(flip())
        counts = await asyncio.gather(*(reader() for _ in range(4)))
        stop.set()
        await flipper
        assert counts == [60] * 4
        assert seen["a"] > 0
        assert seen["b"] > 0  # the steps really changed under the readers


async def test_hb_counts_seconds_of_the_server_clock() -> None:
    clock = Clock()
    async with serving(clock=clock) as (server, _), client(server.bound_port or 0) as c:
        addr = server.map.address("Hb")

        async def hb_after(dt_s: float) -> int:
            clock.now_s += dt_s
            server.tick()
            return int((await c.read_holding_registers(addr, count=1, device_id=UNIT)).registers[0])

        first = await hb_after(0.0)
        assert await hb_after(0.9) == first  # not yet a second since the server started
        assert await hb_after(0.1) == first + 1
        assert await hb_after(2.5) == first + 3  # every whole second counts, late or not
        assert await hb_after(0.4) == first + 3
        assert await hb_after(0.1) == first + 4


@pytest.mark.parametrize(("allowed", "ok"), [(("127.0.0.1",), True), (("10.0.0.0/8",), False)])
async def test_allowlist(allowed: tuple[str, ...], ok: bool) -> None:
    async with serving(allowed_clients=allowed) as (server, _):
        c = AsyncModbusTcpClient("127.0.0.1", port=server.bound_port or 0, timeout=0.5, retries=0)
        try:
            await c.connect()
            got: Any
            try:
                got = await c.read_holding_registers(40000, count=2, device_id=UNIT)
            except Exception as e:  # the refused client sees some pymodbus error
                got = e
        finally:
            c.close()
        if ok:
            assert not isinstance(got, Exception)
            assert got.registers == [0x5375, 0x6E53]
        else:
            assert isinstance(got, Exception)
            assert server.rejected >= 1


def test_bad_allowlist_entry_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        SunSpecConfig(allowed_clients=("inverter.local",))


async def test_port_in_use_is_a_link_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        server = SunSpecServer(SunSpecConfig(mode="server", port=port))
        with pytest.raises(ModbusLinkError, match="cannot listen"):
            await asyncio.wait_for(server.run(), 5)


async def test_pysunspec2_reads_a_real_control_step() -> None:
    """A step of the real Controller, fed readings, reads back through pysunspec2 unchanged."""
    settings = load_settings(None)
    ctrl = Controller(settings)
    cells = [3.30 + 0.01 * (i % 5) for i in range(settings.pack.cells)]
    readings = [Reading(Role.CELL_VOLTAGE, i, v, 0.0) for i, v in enumerate(cells)]
    readings += [
        Reading(Role.CELL_TEMPERATURE, i, 24.0, 0.0) for i in range(settings.pack.temp_sensors)
    ]
    readings += [Reading(Role.PACK_CURRENT, 0, -7.5, 0.0), Reading(Role.PACK_VOLTAGE, 0, 53.3, 0.0)]
    ctrl.ingest(readings)
    out = ctrl.step(0.1)
    async with serving() as (server, _):
        server.update(out)
        got = await asyncio.to_thread(_read_802_with_pysunspec2, server.bound_port or 0)
    assert got["errors"] == ""
    # Limits are published rounded down to the 0.1 A register step.
    assert got["AChaMax"] == pytest.approx(math.floor(out.limits.ccl_a.value * 10 + 1e-9) / 10)
    assert got["ADisChaMax"] == pytest.approx(math.floor(out.limits.dcl_a.value * 10 + 1e-9) / 10)
    assert got["V"] == pytest.approx(53.3)
    assert got["A"] == pytest.approx(-7.5)
    assert got["CellVMax"] == pytest.approx(max(cells))
    assert got["CellVMin"] == pytest.approx(min(cells))
    assert got["Evt1"] == evt1_of(out.alarms)
    if out.soc is not None:
        assert got["SoC"] == pytest.approx(round(out.soc.soc_pct, 1))


async def test_other_unit_ids_get_gateway_no_response() -> None:
    async with serving() as (server, commands), client(server.bound_port or 0) as c:
        r = await c.read_holding_registers(40000, count=2, device_id=UNIT + 1)
        assert r.isError()
        assert r.exception_code == 0x0B
        w = await c.write_register(server.map.address("AlmRst"), 1, device_id=UNIT + 1)
        assert w.isError()
        assert commands.seen == []
        ok = await c.read_holding_registers(40000, count=2, device_id=UNIT)
        assert ok.registers == [0x5375, 0x6E53]
