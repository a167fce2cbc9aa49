"""Hundreds of idle and half-frame Modbus connections against ``bms-gateway run`` with a small
file-descriptor limit: a well-behaved controller is still served, the state is still written, the
limits stay where the data puts them."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

from gateway.state_store import load_document
from tests.faults.conftest import SCALE
from tests.faults.proc import MAP, UNIT, limits_a, read_registers, start_daemon, stop_gracefully

NOFILE = 256  # far below what the attack opens


def test_idle_and_half_frame_floods_leave_the_controller_served(tmp_path: Path) -> None:
    d = start_daemon(tmp_path, nofile=NOFILE)
    opened = 0
    refused = 0
    served = 0
    socks: list[socket.socket] = []
    try:
        d.wait_modbus()
        half = struct.pack(">HHHB", 9, 0, 6, UNIT) + b"\x03\x9c"  # header and 2 of 5 PDU bytes
        for i in range(600 * SCALE):
            try:
                s = socket.create_connection(("127.0.0.1", d.modbus_port), timeout=1.0)
            except OSError:
                refused += 1
                continue
            opened += 1
            if i % 2:
                s.sendall(half)
            socks.append(s)
            if i % 50 == 49:
                # At every sampled moment: alive, answering a polling controller, 0 A (no data).
                assert d.alive(), d.output()
                assert limits_a(d.modbus_port) == (0.0, 0.0)
                served += 1
        before = d.state_path.stat().st_mtime if d.state_path.exists() else 0.0
        # state.interval_s is 1 s: the writer must still find a file descriptor (the bound only
        # ends a hang; the check is that a write happens, not how fast).
        deadline = time.monotonic() + 30.0
        while not (d.state_path.exists() and d.state_path.stat().st_mtime > before):
            assert time.monotonic() < deadline, "the state file was not written again"
            assert d.alive(), d.output()
            time.sleep(0.1)
        assert load_document(d.state_path).safety is not None
        for _ in range(20):
            assert read_registers(d.modbus_port, MAP.base, 2) == [0x5375, 0x6E53]
            served += 1
        took = stop_gracefully(d)
    finally:
        for s in socks:
            s.close()
        d.kill()
    out = d.output()
    assert took is not None, out
    assert took < 5.0
    assert "Too many open files" not in out
    (tmp_path / "flood.json").write_text(
        json.dumps({"opened": opened, "refused": refused, "served": served})
    )
