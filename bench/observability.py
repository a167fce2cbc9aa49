"""CPU and RSS of a 512-cell gateway with the web dashboard open and Prometheus scraping it.

Run: ``.venv/bin/python bench/observability.py [--seconds 60] [--cells 512]``

The gateway runs in a child process exactly as the daemon does (``Gateway.run``: CAN link,
control loop, persistence, web server; MQTT to the benchmark's own mosquitto when one is
installed), with ``control.min_step_s = 0.1``: the state is computed at 10 Hz. Its CAN input is a
pre-encoded 512-cell log (``gateway.sim.log``, the DBC cycle times: cell voltages at 10 Hz, pack
values at 50 Hz) played onto the in-process virtual bus at real time by a feeder task in the same
child; the feeder alone is measured in a separate child and subtracted. That child has a listener
on the bus that keeps nothing, because python-can's virtual bus deep-copies every frame into each
listener's queue in the sender's thread (what the kernel does for a CAN socket): without it the
copies (1.0 % of a core at 1,400 frames/s, measured at load 5 to 8) were counted as the
daemon's (before 2026-11-29). This process keeps a dashboard WebSocket open (every push
received and parsed) and scrapes ``/metrics`` every 5 s.

Printed per variant (after a 10 s warm-up): CPU share of one core of the child (utime + stime
from /proc over wall time), the same minus the feeder, peak and final RSS, pushes and scrapes
received, and the mean scrape size and time. Variants: ``full`` (dashboard open + scrapes),
``no-web`` (web off), ``feeder`` (frames only).

Target (issue 16): the whole daemon under 5 % of one core at 10 Hz state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WARMUP_S = 10.0
SCRAPE_S = 5.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime


def _rss_mb(pid: int) -> tuple[float, float]:
    kv = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        kv[k] = v.strip()
    return int(kv["VmHWM"].split()[0]) / 1024, int(kv["VmRSS"].split()[0]) / 1024


# --- the child: gateway + feeder ---------------------------------------------------------------


async def _feed(bus: object, frames: list[tuple[float, object]], stop: asyncio.Event) -> None:
    """Send the frames at their log times, looping, until ``stop``."""
    span = frames[-1][0] + 0.1
    t0 = time.monotonic()
    i = 0
    loops = 0
    send = bus.send  # type: ignore[attr-defined]
    while not stop.is_set():
        now = time.monotonic() - t0 - loops * span
        while i < len(frames) and frames[i][0] <= now:
            send(frames[i][1])
            i += 1
        if i >= len(frames):
            i = 0
            loops += 1
        await asyncio.sleep(0.01)


def _frames(log: Path) -> list[tuple[float, object]]:
    import can

    from gateway.replay import iter_log

    return [
        (f.t_s, can.Message(arbitration_id=f.frame_id, is_extended_id=f.extended, data=f.data))
        for f in iter_log(log)
    ]


async def _child(mode: str, log: Path, web_port: int, mqtt_port: int, cells: int) -> None:
    import can

    from gateway.app import Gateway
    from gateway.settings import Settings

    channel = f"bench-obs-{os.getpid()}"
    frames = _frames(log)
    bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    print("ready", flush=True)
    if mode == "feeder":
        # The virtual bus copies each frame into every listener's queue (the work a kernel does
        # for a socket): a listener that keeps nothing, so the feeder alone pays that copy too.
        sink = can.Bus(interface="virtual", channel=channel)

        async def empty_sink() -> None:
            while not stop.is_set():
                await asyncio.sleep(0.5)
                with sink.queue.mutex:  # type: ignore[attr-defined]
                    sink.queue.queue.clear()  # type: ignore[attr-defined]

        async with asyncio.TaskGroup() as tg:
            tg.create_task(empty_sink())
            await _feed(bus, frames, stop)
        return
    s = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="bench-obs-"))
    s = s.model_copy(
        update={
            "pack": s.pack.model_copy(update={"cells": cells, "temp_sensors": cells // 2}),
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "control": s.control.model_copy(update={"min_step_s": 0.1, "tick_s": 0.1}),
            "state": s.state.model_copy(update={"path": str(tmp / "estimator.json")}),
            "mqtt": s.mqtt.model_copy(update={"enabled": mqtt_port > 0, "port": mqtt_port or 1883}),
            "web": s.web.model_copy(update={"enabled": mode == "full", "port": web_port}),
        }
    )
    gw = Gateway(s)

    async def feed() -> None:
        await _feed(bus, frames, stop)

    await gw.run(stop, extra=[feed])


# --- the parent: dashboard client, scraper, measurements ---------------------------------------


async def _dashboard_and_scrapes(port: int, seconds: float) -> dict[str, float]:
    import aiohttp

    pushes = 0
    scrapes: list[tuple[int, float]] = []
    step: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        async with asyncio.timeout(30):
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://127.0.0.1:{port}/api/snapshot") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.2)
        async with http.ws_connect(f"http://127.0.0.1:{port}/ws", max_msg_size=0) as ws:

            async def read() -> None:
                nonlocal pushes
                async for msg in ws:
                    json.loads(msg.data)
                    pushes += 1

            reader = asyncio.create_task(read())
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                t = time.perf_counter()
                async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                    body = await r.read()
                scrapes.append((len(body), time.perf_counter() - t))
                for line in body.decode().splitlines():
                    for key in ("sum", "count"):
                        if line.startswith(f"bms_control_step_duration_seconds_{key} "):
                            step[key] = float(line.split()[1])
                await asyncio.sleep(SCRAPE_S)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
    n = max(1, len(scrapes))
    return {
        "pushes": pushes,
        "scrapes": len(scrapes),
        "scrape_bytes": sum(b for b, _ in scrapes) / n,
        "scrape_ms": 1000 * sum(t for _, t in scrapes) / n,
        "steps": step.get("count", 0.0),
        "step_ms": 1000 * step.get("sum", 0.0) / max(1.0, step.get("count", 0.0)),
    }


def _run_variant(
    mode: str, log: Path, seconds: float, cells: int, mqtt_port: int
) -> dict[str, float]:
    web_port = _free_port()
    cmd = [sys.executable, __file__, "--child", mode, "--log", str(log), "--web-port",
           str(web_port), "--mqtt-port", str(mqtt_port), "--cells", str(cells)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()  # "ready": frames loaded
        time.sleep(WARMUP_S)
        c0, w0 = _cpu_s(proc.pid), time.monotonic()
        extra: dict[str, float] = {}
        if mode == "full":
            extra = asyncio.run(_dashboard_and_scrapes(web_port, seconds))
        else:
            time.sleep(seconds)
        c1, w1 = _cpu_s(proc.pid), time.monotonic()
        peak, rss = _rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)
    return {"cpu_pct": 100 * (c1 - c0) / (w1 - w0), "peak_mb": peak, "rss_mb": rss, **extra}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cells", type=int, default=512)
    ap.add_argument("--child", choices=("full", "no-web", "feeder"))
    ap.add_argument("--log", type=Path)
    ap.add_argument("--web-port", type=int, default=0)
    ap.add_argument("--mqtt-port", type=int, default=0)
    ap.add_argument("--no-mqtt", action="store_true", help="do not start mosquitto")
    args = ap.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child, args.log, args.web_port, args.mqtt_port, args.cells))
        return 0

    from gateway.sim.log import simulate_to_log
    from gateway.sim.pack import PackSimConfig

    with tempfile.TemporaryDirectory(prefix="bench-obs-") as tmp:
        log = Path(tmp) / "pack.log"
        cfg = PackSimConfig(cells=args.cells, temp_sensors=args.cells // 2, initial_soc_pct=60.0)
        t = time.perf_counter()
        summary = simulate_to_log(
            log, config=cfg, hours=30 / 3600, seed=1, current_source=lambda _t: -20.0
        )
        print(f"log: {summary.frames} frames over 30 s ({summary.frames / 30:.0f} frames/s), "
              f"written in {time.perf_counter() - t:.1f} s")  # fmt: skip
        broker = None
        mqtt_port = 0
        if not args.no_mqtt:
            from gateway.mqtt.broker import find_mosquitto, free_port, mosquitto_conf

            binary = find_mosquitto()
            if binary is not None:
                mqtt_port = free_port("127.0.0.1")
                conf = Path(tmp) / "mosquitto.conf"
                conf.write_text(mosquitto_conf("127.0.0.1", mqtt_port), encoding="utf-8")
                broker = subprocess.Popen(
                    [binary, "-c", str(conf)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
        print(f"MQTT: {'mosquitto on 127.0.0.1:' + str(mqtt_port) if mqtt_port else 'off'}")
        try:
            results = {m: _run_variant(m, log, args.seconds, args.cells, mqtt_port)
                       for m in ("feeder", "no-web", "full")}  # fmt: skip
        finally:
            if broker is not None:
                broker.terminate()
                broker.wait(5)
    feeder = results["feeder"]["cpu_pct"]
    print(f"\n{args.cells} cells, state at 10 Hz, {args.seconds:.0f} s measured per variant "
          f"after {WARMUP_S:.0f} s warm-up; load average {os.getloadavg()[0]:.2f}")  # fmt: skip
    print(f"{'variant':<8} {'CPU % (child)':>13} {'minus feeder':>12} {'peak RSS MB':>11} "
          f"{'RSS MB':>7}")  # fmt: skip
    for mode, r in results.items():
        daemon = r["cpu_pct"] - (feeder if mode != "feeder" else 0.0)
        print(f"{mode:<8} {r['cpu_pct']:>13.2f} {daemon:>12.2f} {r['peak_mb']:>11.1f} "
              f"{r['rss_mb']:>7.1f}")  # fmt: skip
    full = results["full"]
    print(f"dashboard: {full['pushes']:.0f} pushes received; /metrics: {full['scrapes']:.0f} "
          f"scrapes, {full['scrape_bytes'] / 1024:.0f} kB each, {full['scrape_ms']:.1f} ms each")  # fmt: skip  # noqa: E501
    print(
        f"control steps (from the histogram, since start): {full['steps']:.0f}, "
        f"mean {full['step_ms']:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
