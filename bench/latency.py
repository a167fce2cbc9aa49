"""Reaction time: one cell above its maximum charge voltage on CAN -> AChaMax = 0 on Modbus, or
-> CCL = 0 heard by an inverter on the battery-CAN bus (``--path can``).

Run: ``.venv/bin/python bench/latency.py [--events 1000] [--rate 1000] [--pipeline gateway]``
and ``.venv/bin/python bench/latency.py --path can [--protocol pylon] [--events 300]``

``--path can``: the daemon's ``Gateway`` with ``[inverter_can]`` on a second virtual bus
(``period_s`` 0.2 s, SunSpec off); a listener thread on that bus decodes each 0x351 (HV: 0x4220)
with the inverter simulator's own copy of the layout (``gateway.sim.can_inverter.decode_frame``)
and reports when CCL reaches 0 A (t1). "Frame sent" is the time the control step handed the cut to
the link (no bus delay). The rest is as below.

Setup (all on this machine, loopback only, bounded):

* the gateway's receive -> control -> SunSpec path: ``--pipeline gateway`` runs the daemon's own
  ``gateway.app.Gateway`` (CAN link, control loop, model 802 server); ``--pipeline adapters``
  wires the same parts (``CanLink``, ``Controller``, ``SunSpecServer``) with a control loop of
  the same shape (step on new data, at most every ``control.min_step_s``), for when the daemon
  is not usable; ``--pipeline core`` is ``adapters`` with the limits computed by
  ``gateway.core.limits.LimitsCalculator`` after ``Controller.step`` (for a Controller that does
  not compute limits itself yet);
* a python-can ``virtual`` bus carrying ``--rate`` frames/s of a healthy 16-cell pack (cell
  voltages, temperatures, pack values from ``dbc/bms.dbc``), sent from a thread;
* a Modbus client in a separate process polling AChaMax (one register) back to back.

Each event sets one cell to 3.70 V (LFP maximum charge voltage 3.65 V) in the pack state the
sender transmits, sends that cell's frame at once (t0), and ends when the poller first reads
AChaMax = 0 (t1, same monotonic clock in both processes). The cell then returns to 3.30 V and the
next event starts after AChaMax is back and a random 5..20 ms pause (so events fall at random
phases of the control loop). Protection alarms are set out of reach and the limit ramp made
instant, so what is timed is the limit's cell-voltage term (no alarm debounce) and each event
starts from the same state. Prints p50, p99 and max of t1 - t0 (target: p99 <= 10 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import can
import cantools

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from gateway.settings import Settings  # noqa: E402

CELLS = 16
SENSORS = 4
NORMAL_MV = 3300
HIGH_MV = 3700  # above LFP's 3.65 V maximum charge voltage
EVENT_TIMEOUT_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- the Modbus poller (own process) --------------------------------------------------------


def poller(port: int, address: int, unit: int, conn: Connection, stop: Any) -> None:
    """Read AChaMax back to back; report each change between zero and non-zero with its time."""
    import logging

    from pymodbus.client import ModbusTcpClient
    from pymodbus.exceptions import ModbusException

    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
    if not client.connect():
        conn.send(("error", "cannot connect"))
        return
    polls = 0
    last_zero: bool | None = None
    t_start = time.monotonic()
    try:
        while not stop.is_set():
            try:
                r = client.read_holding_registers(address, count=1, device_id=unit)
            except ModbusException as e:
                conn.send(("error", f"poller: {e}"))
                return
            t = time.monotonic()
            polls += 1
            if r.isError():
                conn.send(("error", str(r)))
                return
            zero = r.registers[0] == 0
            if zero != last_zero:
                conn.send(("zero" if zero else "up", t))
                last_zero = zero
    finally:
        conn.send(("polls", polls / max(1e-9, time.monotonic() - t_start)))
        client.close()


# --- CAN traffic and events (own thread) ----------------------------------------------------


class Traffic:
    """Sends a healthy pack's frames at ``rate`` frames/s and injects the events."""

    def __init__(self, channel: str, rate: float, conn: Connection, events: int) -> None:
        self.db = cantools.database.load_file(str(REPO / "dbc" / "bms.dbc"))
        self.bus = can.Bus(interface="virtual", channel=channel, receive_own_messages=False)
        self.rate = rate
        self.conn = conn
        self.events = events
        self.cells_mv = [NORMAL_MV] * CELLS
        self.latencies_s: list[float] = []
        self.internal_s: list[float] = []  # frame sent -> register written (no poll delay)
        self.zero_times: list[float] = []  # appended by the gateway's loop (see _watch)
        self.t_first: float | None = None
        self.t_last: float | None = None
        self.missed = 0
        self.sent = 0
        self.error: str | None = None
        self.poll_rate: float | None = None
        self.sent_events = 0
        self.stop = threading.Event()
        self._cv = self.db.get_message_by_name("BMS_CellVoltages")
        self._ct = self.db.get_message_by_name("BMS_CellTemperatures")
        self._pv = self.db.get_message_by_name("BMS_PackValues")
        self._encoded: dict[tuple[int, tuple[int, ...]], bytes] = {}

    def _cell_frame(self, group: int) -> can.Message:
        values = tuple(self.cells_mv[group * 4 : group * 4 + 4])
        data = self._encoded.get((group, values))
        if data is None:  # cantools encodes each distinct group state once
            sig: dict[str, float] = {"CellVoltages_Mux": group}
            for i, mv in enumerate(values, start=group * 4):
                sig[f"CellVoltage_{i:03d}"] = mv
                sig[f"CellVoltage_{i:03d}_invalidFlag"] = 0
            data = self._encoded[(group, values)] = self._cv.encode(sig)
        return can.Message(arbitration_id=self._cv.frame_id, data=data, is_extended_id=False)

    def _frames(self) -> list[can.Message]:
        temps: dict[str, float] = {"CellTemperatures_Mux": 0}
        for i in range(SENSORS):
            temps[f"CellTemperature_{i:03d}"] = 25.0
            temps[f"CellTemperature_{i:03d}_invalidFlag"] = 0
        pack = {
            "PackCurrent": 0.0,
            "PackVoltage": CELLS * NORMAL_MV / 1000.0,
            "PackCurrent_invalidFlag": 0,
            "PackVoltage_invalidFlag": 0,
        }
        return [
            *(self._cell_frame(g) for g in range(CELLS // 4)),
            can.Message(
                arbitration_id=self._ct.frame_id, data=self._ct.encode(temps), is_extended_id=False
            ),
            can.Message(
                arbitration_id=self._pv.frame_id, data=self._pv.encode(pack), is_extended_id=False
            ),
        ]

    def _send(self, msg: can.Message) -> None:
        self.bus.send(msg)
        self.sent += 1

    def run(self) -> None:
        """Background traffic plus one event at a time until done (bounded by timeouts)."""
        try:
            self._run()
        finally:
            self.bus.shutdown()

    def _run(self) -> None:
        rng = random.Random(1)
        cycle = self._frames()
        k = 0
        t_start = time.monotonic()
        phase = "warmup"  # warmup -> idle -> wait_zero -> wait_up -> idle ...
        phase_until = t_start + 1.0
        t0 = 0.0
        cell = 0
        last_zero: bool | None = None
        while not self.stop.is_set():
            now = time.monotonic()
            # Background: keep the average rate (frames due since start minus frames sent).
            due = int((now - t_start) * self.rate) - self.sent
            for _ in range(max(0, min(due, 50))):
                msg = cycle[k % len(cycle)]
                if msg.arbitration_id == self._cv.frame_id:
                    msg = self._cell_frame(msg.data[0])  # current state of that group
                self._send(msg)
                k += 1
            while self.conn.poll(0):
                kind, value = self.conn.recv()
                if kind == "error":
                    self.error = str(value)
                    return
                if kind == "polls":
                    self.poll_rate = float(value)
                    continue
                last_zero = kind == "zero"
                if phase == "wait_zero" and kind == "zero":
                    self.latencies_s.append(float(value) - t0)
                    published = [z for z in self.zero_times[-4:] if z >= t0]
                    if published:
                        self.internal_s.append(published[0] - t0)
                    self.cells_mv[cell] = NORMAL_MV
                    self._send(self._cell_frame(cell // 4))
                    phase, phase_until = "wait_up", now + EVENT_TIMEOUT_S
            if phase == "warmup" and last_zero is False and now >= phase_until:
                phase, phase_until = "idle", now
            elif phase == "wait_up" and last_zero is False:
                phase, phase_until = "idle", now + rng.uniform(0.005, 0.020)
            elif phase == "idle" and now >= phase_until:
                if len(self.latencies_s) + self.missed >= self.events:
                    return
                if self.t_first is None:
                    self.t_first, sent_first = now, self.sent
                self.t_last, self.sent_events = now, self.sent - sent_first
                cell = rng.randrange(CELLS)
                self.cells_mv[cell] = HIGH_MV
                frame = self._cell_frame(cell // 4)
                t0 = time.monotonic()
                self._send(frame)
                phase, phase_until = "wait_zero", t0 + EVENT_TIMEOUT_S
            elif phase in ("wait_zero", "wait_up", "warmup") and now >= phase_until + (
                10.0 if phase == "warmup" else 0.0
            ):
                if phase == "warmup":
                    self.error = "AChaMax never became non-zero (is the pack data complete?)"
                    return
                self.missed += 1
                self.cells_mv[cell] = NORMAL_MV
                self._send(self._cell_frame(cell // 4))
                phase, phase_until = "wait_up", now + EVENT_TIMEOUT_S
            time.sleep(0.0002)


# --- the gateway side (this process's event loop) -------------------------------------------


def _settings(channel: str, port: int, state_dir: str) -> Settings:
    return Settings(
        pack={"cells": CELLS, "temp_sensors": SENSORS, "chemistry": "lfp"},
        can={"interface": "virtual", "channel": channel},
        sunspec={"mode": "server", "host": "127.0.0.1", "port": port},
        limits={"ramp_hold_s": 0.0, "ramp_a_per_s": 1e6},
        protection={
            "cell_overvoltage_warning_v": 4.3,
            "cell_overvoltage_alarm_v": 4.4,
            "voltage_imbalance_warning_v": 1.5,
            "voltage_imbalance_alarm_v": 2.0,
        },
        state={"path": str(Path(state_dir) / "estimator.json")},
    )


async def _run_gateway(settings: Settings, stop: asyncio.Event, ready: asyncio.Event) -> Any:
    from gateway.app import Gateway

    gw = Gateway(settings)
    assert gw.sunspec_server is not None

    async def signal_ready() -> None:
        await gw.sunspec_server.started.wait()  # type: ignore[union-attr]
        ready.set()

    task = asyncio.create_task(gw.run(stop, extra=[signal_ready]))
    return gw.sunspec_server, task


async def _run_adapters(
    settings: Settings, stop: asyncio.Event, ready: asyncio.Event, own_limits: bool = False
) -> Any:
    import dataclasses

    from gateway.canbus.link import CanLink
    from gateway.control import Controller
    from gateway.core.limits import LimitsCalculator
    from gateway.sunspec.server import SunSpecServer

    ctrl = Controller(settings)
    calc = (
        LimitsCalculator(settings.limits, settings.pack, settings.timeouts) if own_limits else None
    )
    new_data = asyncio.Event()

    def on_frame(readings: Any, t_s: float) -> None:
        ctrl.count_frame(readings is not None)
        if readings:
            ctrl.ingest(readings)
            new_data.set()

    link = CanLink(settings.can, on_frame=on_frame)
    server = SunSpecServer(settings.sunspec, on_command=lambda c: ctrl.command(c, time.monotonic()))

    async def control() -> None:
        cfg = settings.control
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(cfg.tick_s):
                    await new_data.wait()
            new_data.clear()
            ctrl.set_negotiation(server.negotiation())
            now_s = time.monotonic()
            out = ctrl.step(now_s)
            if calc is not None:  # the Controller does not compute limits yet: do it here
                limits = calc.step(out.pack, out.soc, out.alarms, now_s)
                out = dataclasses.replace(out, limits=limits)
            server.update(out)
            if cfg.min_step_s:
                await asyncio.sleep(cfg.min_step_s)

    async def all_tasks() -> None:
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(link.run(), name="bench.can"),
                tg.create_task(control(), name="bench.control"),
                tg.create_task(server.run(), name="bench.sunspec"),
            ]
            await server.started.wait()
            ready.set()
            await stop.wait()
            for t in tasks:
                t.cancel()

    return server, asyncio.create_task(all_tasks())


def _watch(server: Any, traffic: Traffic) -> None:
    """Record when the output publishes a zero CCL (wraps its ``update``; bench only)."""
    update = server.update
    was_zero = [False]

    def watched(out: Any) -> None:
        update(out)
        zero = out.limits.ccl_a.value < 0.05  # what AChaMax (0.1 A steps) shows as 0
        if zero and not was_zero[0]:
            traffic.zero_times.append(time.monotonic())
        was_zero[0] = zero

    server.update = watched


def can_listener(channel: str, high_voltage: bool, conn: Connection, stop: threading.Event) -> None:
    """Read the inverter bus; report each change of CCL between zero and non-zero with its time."""
    from gateway.sim.can_inverter import decode_frame

    fid = 0x4220 if high_voltage else 0x351
    bus = can.Bus(interface="virtual", channel=channel)
    heard = 0
    t_start = time.monotonic()
    last_zero: bool | None = None
    poll = None
    if high_voltage:  # the inverter polls once a second
        poll = can.Message(arbitration_id=0x4200, is_extended_id=True, data=bytes(8))
    next_poll = 0.0
    try:
        while not stop.is_set():
            if poll is not None and time.monotonic() >= next_poll:
                bus.send(poll)
                next_poll = time.monotonic() + 1.0
            msg = bus.recv(0.05)
            if msg is None or msg.arbitration_id != fid or msg.is_extended_id != high_voltage:
                continue
            t = time.monotonic()
            heard += 1
            zero = decode_frame(high_voltage, fid, bytes(msg.data))["ccl_a"] == 0.0
            if zero != last_zero:
                conn.send(("zero" if zero else "up", t))
                last_zero = zero
    finally:
        conn.send(("polls", heard / max(1e-9, time.monotonic() - t_start)))
        bus.shutdown()


async def bench_can(events: int, rate: float, protocol: str) -> int:
    """The battery-CAN path: BMS bus -> Gateway -> inverter bus -> listener thread."""
    from gateway.app import Gateway

    channel = f"bench-latency-{os.getpid()}"
    inv_channel = f"{channel}-inv"
    with tempfile.TemporaryDirectory() as state_dir:
        settings = _settings(channel, 0, state_dir).model_copy(
            update={
                "sunspec": Settings().sunspec,
                "inverter_can": Settings(
                    inverter_can={
                        "protocol": protocol,
                        "interface": "virtual",
                        "channel": inv_channel,
                        "period_s": 0.2,
                    }
                ).inverter_can,
            }
        )
        gw = Gateway(settings)
        link = gw.inverter_can
        assert link is not None
        stop = asyncio.Event()
        task = asyncio.create_task(gw.run(stop))
        await asyncio.wait_for(link.opened.wait(), 10)
        parent, child = mp.Pipe()
        stop_listen = threading.Event()
        listener = threading.Thread(
            target=can_listener,
            args=(inv_channel, link.config.protocol.high_voltage, child, stop_listen),
            name="bench.listener",
            daemon=True,
        )
        listener.start()
        traffic = Traffic(channel, rate, parent, events)
        _watch(link, traffic)
        t_start = time.monotonic()
        thread = threading.Thread(target=traffic.run, name="bench.traffic", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                await asyncio.sleep(0.05)
                if task.done():
                    traffic.stop.set()
                    task.result()
        finally:
            traffic.stop.set()
            await asyncio.to_thread(thread.join, 5)
            stop_listen.set()
            await asyncio.to_thread(listener.join, 5)
            with contextlib.suppress(EOFError, OSError):
                while parent.poll(0):
                    kind, value = parent.recv()
                    if kind == "polls":
                        traffic.poll_rate = float(value)
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        wall = time.monotonic() - t_start
    return _report(
        f"path: inverter CAN ({protocol}, period 0.2 s)",
        traffic,
        wall,
        rate,
        "CCL = 0 heard on the inverter bus",
        f"inverter-bus listener: {traffic.poll_rate or 0:.1f} limit frames/s heard",
    )


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100.0 * len(s)) - 1))]


async def bench(events: int, rate: float, pipeline: str) -> int:
    channel = f"bench-latency-{os.getpid()}"
    port = _free_port()
    with tempfile.TemporaryDirectory() as state_dir:
        settings = _settings(channel, port, state_dir)
        stop = asyncio.Event()
        ready = asyncio.Event()
        if pipeline == "gateway":
            server, task = await _run_gateway(settings, stop, ready)
        else:
            server, task = await _run_adapters(settings, stop, ready, pipeline == "core")
        await asyncio.wait_for(ready.wait(), 10)
        address = server.map.address("AChaMax")
        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        stop_poll = ctx.Event()
        proc = ctx.Process(target=poller, args=(port, address, 1, child, stop_poll), daemon=True)
        proc.start()
        traffic = Traffic(channel, rate, parent, events)
        _watch(server, traffic)
        t_start = time.monotonic()
        thread = threading.Thread(target=traffic.run, name="bench.traffic", daemon=True)
        thread.start()
        try:
            while thread.is_alive():
                await asyncio.sleep(0.05)
                if task.done():
                    traffic.stop.set()
                    task.result()  # raises what stopped the gateway
        finally:
            # Blocking waits go to threads: the gateway's loop keeps serving the poller meanwhile.
            traffic.stop.set()
            await asyncio.to_thread(thread.join, 5)
            stop_poll.set()
            with contextlib.suppress(EOFError, OSError):
                while await asyncio.to_thread(parent.poll, 2):
                    kind, value = parent.recv()
                    if kind == "polls":
                        traffic.poll_rate = float(value)
                        break
            await asyncio.to_thread(proc.join, 5)
            if proc.is_alive():
                proc.terminate()
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        wall = time.monotonic() - t_start
    poller_line = (
        f"Modbus poller: {traffic.poll_rate:.0f} reads/s of AChaMax"
        if traffic.poll_rate is not None
        else ""
    )
    return _report(
        f"pipeline: {pipeline}", traffic, wall, rate, "AChaMax = 0 seen by the client", poller_line
    )


def _report(head: str, traffic: Traffic, wall: float, rate: float, seen: str, extra: str) -> int:
    lat_ms = [x * 1000.0 for x in traffic.latencies_s]
    span = (traffic.t_last or 0.0) - (traffic.t_first or 0.0)
    during = traffic.sent_events / span if span > 0 else float("nan")
    print(
        f"{head}; {CELLS} cells; background {rate:.0f} frames/s requested, "
        f"{during:.0f} frames/s sent during the events ({traffic.sent} frames in {wall:.1f} s)"
    )
    if extra:
        print(extra)
    if traffic.error:
        print(f"error: {traffic.error}")
        return 1
    print(f"events: {len(lat_ms)} measured, {traffic.missed} missed (> {EVENT_TIMEOUT_S:.0f} s)")
    if not lat_ms:
        return 1
    print(
        f"reaction time CAN frame -> {seen} (ms): "
        f"p50 {statistics.median(lat_ms):.2f}  p99 {_pct(lat_ms, 99):.2f}  "
        f"max {max(lat_ms):.2f}  (min {min(lat_ms):.2f}, mean {statistics.fmean(lat_ms):.2f})"
    )
    if traffic.internal_s:
        inner = [x * 1000.0 for x in traffic.internal_s]
        print(
            f"  of which frame -> published by the step (no poll/bus delay, {len(inner)} events): "
            f"p50 {statistics.median(inner):.2f}  p99 {_pct(inner, 99):.2f}  "
            f"max {max(inner):.2f}"
        )
    print(f"target p99 <= 10 ms: {'met' if _pct(lat_ms, 99) <= 10.0 else 'MISSED'}")
    return 0 if not traffic.missed else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1000.0, help="background frames/s")
    ap.add_argument("--pipeline", choices=("gateway", "adapters", "core"), default="gateway")
    ap.add_argument("--path", choices=("sunspec", "can"), default="sunspec")
    ap.add_argument("--protocol", choices=("pylon", "sma", "victron", "pylon-hv"), default="pylon")
    args = ap.parse_args()
    if args.path == "can":
        return asyncio.run(bench_can(args.events, args.rate, args.protocol))
    return asyncio.run(bench(args.events, args.rate, args.pipeline))


if __name__ == "__main__":
    sys.exit(main())
