"""A ``bms-gateway run`` process for fault injection: start, read its Modbus map, stop.

The daemon runs as users run it (the installed console script, a TOML config, its own state
file); the test talks to it over loopback only: Modbus with raw pymodbus requests, MQTT through a
real mosquitto. Every helper is bounded in time.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.mqtt.broker import free_port
from gateway.sunspec.maps import BatteryInfo, BatteryMap

UNIT = 1
MAP = BatteryMap(BatteryInfo())  # the layout is the same for every pack; only values differ


def console_script() -> str:
    exe = Path(sys.executable).parent / "bms-gateway"
    found = str(exe) if exe.exists() else shutil.which("bms-gateway")
    if found is None:
        pytest.fail("the bms-gateway console script is not installed (pip install -e .)")
    return found


def read_registers(port: int, address: int, count: int, timeout_s: float = 2.0) -> list[int]:
    """One Modbus TCP read (FC 3) on a fresh connection, as a simple controller does.

    Raises:
        OSError: no answer (refused, reset or timed out).
        ValueError: an exception response.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(struct.pack(">HHHBBHH", 1, 0, 6, UNIT, 3, address, count))
        head = _recv_exact(s, 9)
        _tid, _pid, length, _unit, fc, nbytes = struct.unpack(">HHHBBB", head)
        if fc & 0x80:
            raise ValueError(f"exception {nbytes}")
        body = _recv_exact(s, nbytes)
        assert length == nbytes + 3
        return list(struct.unpack(f">{nbytes // 2}H", body))


def write_register(port: int, address: int, value: int, timeout_s: float = 2.0) -> None:
    """One Modbus TCP write (FC 6) on a fresh connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as s:
        s.sendall(struct.pack(">HHHBBHH", 2, 0, 6, UNIT, 6, address, value))
        head = _recv_exact(s, 8)
        if head[7] & 0x80:
            raise ValueError(f"exception {_recv_exact(s, 1)[0]}")
        _recv_exact(s, 4)


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("closed by the gateway")
        data += chunk
    return data


def limits_a(port: int) -> tuple[float, float]:
    """AChaMax and ADisChaMax in amperes (their scale factor read from the same map)."""
    ach = MAP.address("AChaMax")
    regs = read_registers(port, ach, 2)
    sf_regs = read_registers(port, MAP.address("AMax_SF"), 1)
    sf = sf_regs[0] - 0x10000 if sf_regs[0] >= 0x8000 else sf_regs[0]
    return regs[0] * 10.0**sf, regs[1] * 10.0**sf


def evt1(port: int) -> int:
    hi, lo = read_registers(port, MAP.address("Evt1"), 2)
    return (hi << 16) | lo


@dataclass
class Daemon:
    """A running ``bms-gateway run``."""

    proc: subprocess.Popen[bytes]
    log: Path
    modbus_port: int
    state_path: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_modbus(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.alive(), self.output()
            try:
                read_registers(self.modbus_port, MAP.base, 2)
                return
            except (OSError, ValueError):
                time.sleep(0.1)
        pytest.fail(f"no Modbus answer within {timeout_s} s:\n{self.output()}")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait_exit(self, timeout_s: float) -> float | None:
        """Seconds until it exited, or None (then it is killed)."""
        t0 = time.monotonic()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        return time.monotonic() - t0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_daemon(
    tmp_path: Path,
    *,
    mqtt_port: int | None = None,
    mqtt_extra: str = "",
    extra: str = "",
    nofile: int | None = None,
    name: str = "run",
    state_path: Path | None = None,
) -> Daemon:
    """Start ``bms-gateway run`` with a SunSpec server on a free port (and MQTT if given)."""
    modbus_port = free_port()
    state = state_path or tmp_path / "state" / "estimator.json"
    config = tmp_path / f"{name}.toml"
    mqtt = (
        f"[mqtt]\nenabled = true\nport = {mqtt_port}\nreconnect_max_s = 0.5\n"
        "state_interval_s = 0.2\n" + mqtt_extra
        if mqtt_port is not None
        else ""
    )
    config.write_text(
        f'[sunspec]\nmode = "server"\nport = {modbus_port}\n'
        f'[state]\npath = "{state}"\ninterval_s = 1.0\n' + mqtt + extra,
        encoding="utf-8",
    )
    log = tmp_path / f"{name}.log"

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("ab") as err:
        proc = subprocess.Popen(
            [console_script(), "run", "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env={k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")},
            preexec_fn=limit_files,  # noqa: PLW1509 - only setrlimit, no threads involved
        )
    return Daemon(proc, log, modbus_port, state)


def stop_gracefully(d: Daemon, timeout_s: float = 10.0) -> float | None:
    d.signal(signal.SIGTERM)
    return d.wait_exit(timeout_s)
