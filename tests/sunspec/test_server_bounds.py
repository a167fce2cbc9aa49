"""Server mode under hostile clients: client cap, idle and half-frame timeouts, FC 1/2/5/15, and
pymodbus' log flood turned into one line a minute. Real loopback sockets and pymodbus clients."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time

import pytest

from gateway.logflood import FloodFilter
from tests.sunspec.helpers import make_output, wait_until
from tests.sunspec.test_server import UNIT, client, serving


def _mbap(tid: int, pdu: bytes) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, UNIT) + pdu


async def _read_ccl(port: int, address: int) -> list[int]:
    async with client(port) as c:
        r = await c.read_holding_registers(address, count=1, device_id=UNIT)
        assert not r.isError()
        return list(r.registers)


async def test_coil_and_discrete_input_requests_get_exception_01() -> None:
    async with serving() as (server, _):
        server.update(make_output(ccl_a=12.0))
        ach = server.map.address("AChaMax")
        async with client(server.bound_port or 0) as c:
            answers = [
                await c.read_coils(ach, count=8, device_id=UNIT),
                await c.read_discrete_inputs(ach, count=8, device_id=UNIT),
                await c.write_coil(ach, True, device_id=UNIT),
                await c.write_coils(ach, [True] * 16, device_id=UNIT),
                await c.write_coil(server.map.address("CtrlHb"), True, device_id=UNIT),
            ]
            after = await c.read_holding_registers(ach, count=1, device_id=UNIT)
        assert [a.isError() for a in answers] == [True] * 5
        assert [a.exception_code for a in answers] == [1] * 5
        assert after.registers == [120]  # nothing reached the registers
        assert not server.controller_heartbeat().seen  # nor the writable CtrlHb
        assert server.illegal_function == 5


async def test_idle_and_half_frame_connections_are_closed() -> None:
    async with serving(idle_timeout_s=0.6, frame_timeout_s=0.3) as (server, _):
        port = server.bound_port or 0
        idle = socket.create_connection(("127.0.0.1", port))
        half = socket.create_connection(("127.0.0.1", port))
        half.sendall(_mbap(1, b"\x03\x9c\x40\x00\x01")[:9])  # header and half the PDU
        await wait_until(lambda: server.clients == 2)
        t0 = time.monotonic()
        # The half frame goes first (0.3 s), then the idle one (0.6 s).
        await wait_until(lambda: server.timed_out >= 1 and server.clients == 1, 3.0)
        half.settimeout(1.0)
        assert half.recv(16) == b""  # closed by the server
        await wait_until(lambda: server.timed_out >= 2 and server.clients == 0, 3.0)
        assert time.monotonic() - t0 < 2.0
        idle.settimeout(1.0)
        assert idle.recv(16) == b""
        for s in (idle, half):
            s.close()


async def test_client_cap_keeps_a_well_behaved_controller_served() -> None:
    async with serving(max_clients=2, idle_timeout_s=30.0) as (server, _):
        server.update(make_output(ccl_a=12.0))
        port = server.bound_port or 0
        ach = server.map.address("AChaMax")
        hogs = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        try:
            await wait_until(lambda: server.evicted >= 38 and server.clients <= 2, 5.0)
            # A polling controller connects and reads, however many idle sockets were opened.
            for _ in range(3):
                assert await _read_ccl(port, ach) == [120]
            assert server.clients <= 2
        finally:
            for s in hogs:
                s.close()


async def test_pymodbus_error_flood_is_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with serving() as (server, _):
        port = server.bound_port or 0
        # Requests pymodbus cannot decode, alternating so that its own "Repeating...." does
        # not fold them: it logs "Unable to decode frame ..." for each one.
        bad = [b"\x03\x9c\x40\x00\x00", b"\x03\x9c\x40\x01\x00", b"\x63\x00\x00"]
        frames = [_mbap(i, bad[i % 3]) for i in range(150)]

        def send() -> None:
            for f in frames:  # one connection each: pymodbus drops the rest of a bad buffer
                with socket.create_connection(("127.0.0.1", port)) as s:
                    s.sendall(f)
                    s.settimeout(0.05)
                    with contextlib.suppress(OSError):
                        s.recv(512)

        await asyncio.to_thread(send)
        r = await _read_ccl(port, server.map.address("AChaMax"))
        assert r is not None
    from_pymodbus = [r for r in caplog.records if r.name.startswith("pymodbus")]
    flood = next(f for f in logging.getLogger("pymodbus.logging").filters)
    assert isinstance(flood, FloodFilter)
    print("pymodbus records passed", len(from_pymodbus), "suppressed", flood.total_suppressed)
    assert flood.total_suppressed >= 100  # pymodbus did try to log them all
    assert len(from_pymodbus) <= 1
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in from_pymodbus)


def test_flood_filter_counts_and_reports_once_a_window() -> None:
    now = [0.0]
    flood = FloodFilter("lib", window_s=60.0, clock=lambda: now[0])
    logger = logging.getLogger("test.flood.lib")
    passed: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            passed.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.addFilter(flood)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        for i in range(1000):
            now[0] = i * 0.1  # 100 s of errors, ten a second
            try:
                raise ValueError(f"bad frame {i}")
            except ValueError:
                logger.exception("Datastore unable to fulfill request: %s\nTraceback ...", i)
        logger.info("not an error: passes")
        now[0] = 200.0
        report = logging.getLogger("test.flood.report")
        report.addHandler(handler)
        report.propagate = False
        flood.flush(report)
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(flood)
    assert passed[0] == "lib: Datastore unable to fulfill request: 0"
    assert passed[1].startswith("lib: Datastore unable to fulfill request: 600 (599 similar")
    assert passed[2] == "not an error: passes"
    assert passed[3] == "lib: 399 similar messages suppressed in the last 60 s"
    assert len(passed) == 4
    assert flood.total_suppressed == 998
