"""MQTT load benchmark: a 512-cell pack publishing cells at 1 Hz and state at 10 Hz.

Run: ``.venv/bin/python bench/mqtt_load.py [--seconds 60] [--cells 512] [--sensors 256]``

Starts its own mosquitto on a free loopback port (``gateway.mqtt.broker.LocalBroker``, never a
system broker), a subscriber to ``bms/#`` in a child process (it counts what the broker
delivered), and in this process an ``MqttPublisher`` fed a new ``ControlOutput`` at the state rate
by a stand-in control loop. Home Assistant discovery (per-cell entities included) goes out first
and is timed apart; then the steady state is measured for ``--seconds``:

- messages/s published and delivered, payload bytes/s;
- CPU share of one core of this process (process time / wall time: publisher, payload building,
  aiomqtt/paho, the stand-in loop) and of the broker;
- peak RSS of this process.

Target (issue 6): under 10 % of one core.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

from gateway.core.model import (
    AlarmReport,
    BalancingAction,
    BalancingMode,
    BalancingPlan,
    CellEstimate,
    Command,
    CommandResult,
    ControlOutput,
    Limit,
    Limits,
    LimitTerm,
    Negotiation,
    PackSnapshot,
    SocReport,
)
from gateway.mqtt.broker import LocalBroker
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.payloads import cells_payload, state_payload
from gateway.mqtt.publisher import MqttPublisher

REPO = Path(__file__).resolve().parent.parent

_SUBSCRIBER = """
import asyncio, signal, sys
import aiomqtt

async def main(port):
    n = 0
    nbytes = 0
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.subscribe("bms/#", qos=0)
        print("ready", flush=True)
        async def count():
            nonlocal n, nbytes
            async for m in c.messages:
                n += 1
                nbytes += len(m.payload)
                if m.payload == b"mark":
                    print("mark", n, nbytes, flush=True)
        task = asyncio.create_task(count())
        await stop.wait()
        task.cancel()
    print("total", n, nbytes, flush=True)

asyncio.run(main(int(sys.argv[1])))
"""


def make_output(seq: int, t_s: float, cells: int, sensors: int) -> ControlOutput:
    """A plausible 512-cell step; values move a little with ``seq`` so payloads differ."""
    wob = (seq % 10) * 0.0001
    volts = tuple(3.30 + 0.0005 * (i % 37) + wob for i in range(cells))
    pack = PackSnapshot(
        t_s=t_s,
        cell_voltage_v=volts,
        cell_voltage_age_s=tuple(0.01 * (i % 10) for i in range(cells)),
        cell_temp_c=tuple(25.0 + 0.1 * (i % 20) for i in range(sensors)),
        cell_temp_age_s=(0.4,) * sensors,
        current_a=-42.0 + wob,
        current_age_s=0.01,
        pack_voltage_v=sum(volts),
        pack_voltage_age_s=0.01,
        balancing_active=tuple(i % 50 == 0 for i in range(cells)),
        complete=True,
        frames=seq * 140,
    )
    soc = SocReport(
        soc_pct=61.2,
        soc_mean_pct=62.0,
        soh_pct=96.5,
        cells=tuple(
            CellEstimate(60.0 + 0.01 * (i % 97), 1.2, 100.0 - 0.01 * (i % 13), 0.75)
            for i in range(cells)
        ),
    )

    def lim(value: float, winner: str, **terms: float) -> Limit:
        return Limit(value, winner, tuple(LimitTerm(k, v) for k, v in terms.items()))

    limits = Limits(
        ccl_a=lim(90.0, "temperature", configured=100.0, temperature=90.0, soc_taper=100.0),
        dcl_a=lim(100.0, "configured", configured=100.0, temperature=150.0),
        cvl_v=lim(3.5 * cells, "configured", configured=3.5 * cells),
        dvl_v=lim(2.9 * cells, "configured", configured=2.9 * cells),
    )
    bleed = tuple(i % 50 == 0 for i in range(cells))
    plan = BalancingPlan(
        mode=BalancingMode.PASSIVE,
        bleed=bleed,
        actions=tuple(
            BalancingAction(i, BalancingMode.PASSIVE, "bleed", "soc above mean", 0.08, 0.001)
            for i in range(cells)
            if bleed[i]
        ),
    )
    return ControlOutput(
        seq=seq,
        t_s=t_s,
        pack=pack,
        soc=soc,
        alarms=AlarmReport(),
        limits=limits,
        balancing=plan,
        negotiation=Negotiation("server", True, 90.0, 100.0, 90.0, 100.0),
    )


def _refuse(cmd: Command) -> CommandResult:
    return CommandResult(False, "benchmark")


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def payload_costs(cells: int, sensors: int) -> None:
    """Print the size and build time (pydantic model + JSON) of the state and cells payloads."""
    out = make_output(5, 1.0, cells, sensors)
    for name, build in (("state", state_payload), ("cells", cells_payload)):
        n = 200
        t0 = time.perf_counter()
        for _ in range(n):
            text = build(out, "bench", 1.0).model_dump_json()
        ms = (time.perf_counter() - t0) / n * 1e3
        print(f"payload {name}: {len(text):,} bytes, built in {ms:.2f} ms")
    # What the control step pays: publish_output stores the output and compares alarm and
    # balancing keys (skipped when the step reuses the report and plan objects).
    pub = MqttPublisher(MqttConfig(), "bench", _refuse)
    same = [replace(out, seq=i) for i in range(2000)]
    fresh = [replace(out, seq=i, balancing=replace(out.balancing)) for i in range(2000)]
    for label, outs in (("same plan object", same), ("new, equal plan", fresh)):
        t0 = time.perf_counter()
        for o in outs:
            pub.publish_output(o)
        us = (time.perf_counter() - t0) / len(outs) * 1e6
        print(f"publish_output ({label}, {len(out.balancing.actions)} actions): {us:.2f} us")


async def run(seconds: float, cells: int, sensors: int, state_hz: float, cells_hz: float) -> None:
    """Run the benchmark and print its figures."""
    broker = LocalBroker(0, reuse_existing=False, prefer="mosquitto")
    async with broker as info:
        print(f"broker: {info.description}")
        sub = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _SUBSCRIBER,
            str(info.port),
            stdout=asyncio.subprocess.PIPE,
        )
        assert sub.stdout is not None
        assert (await sub.stdout.readline()).strip() == b"ready"
        config = MqttConfig(
            enabled=True,
            port=info.port,
            state_interval_s=1.0 / state_hz,
            cells_interval_s=1.0 / cells_hz,
        )
        pub = MqttPublisher(config, "bench", _refuse)
        base = make_output(1, 0.0, cells, sensors)
        pub.publish_output(base)
        task = asyncio.create_task(pub.run(), name="bench.mqtt")

        # Discovery burst first (timed apart): wait until the message count settles.
        t0 = time.perf_counter()
        last, stable_since = -1, time.perf_counter()
        while time.perf_counter() - stable_since < 0.5:
            await asyncio.sleep(0.05)
            sent = pub.status.messages_sent
            if sent - last > 2:  # more than the steady trickle in 50 ms
                stable_since = time.perf_counter()
            last = sent
        discovery_s = stable_since - t0
        print(
            f"discovery: {pub.status.messages_sent} messages in {discovery_s:.2f} s "
            f"({cells} cells, {sensors} sensors, per-cell entities)"
        )

        # Steady state: a stand-in control loop hands over a new output at the state rate.
        sent0 = pub.status.messages_sent
        cpu0, wall0 = time.process_time(), time.perf_counter()
        broker_pid = broker.pid
        bcpu0 = _proc_cpu_s(broker_pid) if broker_pid else 0.0
        seq = 1
        period = 1.0 / state_hz
        next_t = wall0
        while (now := time.perf_counter()) - wall0 < seconds:
            seq += 1
            pub.publish_output(make_output(seq, now - wall0, cells, sensors))
            next_t += period
            await asyncio.sleep(max(0.0, next_t - time.perf_counter()))
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        bcpu = (_proc_cpu_s(broker_pid) - bcpu0) if broker_pid else float("nan")
        sent = pub.status.messages_sent - sent0

        # Time spent only building outputs in the stand-in loop, to subtract for the MQTT share.
        b0 = time.process_time()
        for i in range(int(seconds * state_hz)):
            make_output(i, 0.0, cells, sensors)
        build_cpu = time.process_time() - b0

        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sub.terminate()
        out, _ = await sub.communicate()
        total = [line for line in out.decode().splitlines() if line.startswith("total")]
        delivered = int(total[0].split()[1]) if total else -1
        nbytes = int(total[0].split()[2]) if total else -1

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"steady state: {wall:.1f} s, state {state_hz:g} Hz, cells {cells_hz:g} Hz")
    print(f"  published : {sent} messages, {sent / wall:.1f} messages/s")
    print(
        f"  delivered : {delivered} messages on bms/# to the subscriber over the whole run, "
        f"{nbytes / 1e6:.1f} MB payload"
    )
    print(f"  CPU (this process)         : {cpu:.2f} s = {100 * cpu / wall:.2f} % of one core")
    print(
        f"  CPU (stand-in output build): {build_cpu:.2f} s = {100 * build_cpu / wall:.2f} % "
        f"-> MQTT share about {100 * (cpu - build_cpu) / wall:.2f} % of one core"
    )
    print(f"  CPU (mosquitto)            : {100 * bcpu / wall:.2f} % of one core")
    print(f"  peak RSS (this process)    : {rss_mb:.1f} MB")
    target = "met" if 100 * cpu / wall < 10 else "MISSED"
    print(f"target < 10 % of one core: {target}")


def main() -> None:
    """Parse arguments and run."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cells", type=int, default=512)
    ap.add_argument("--sensors", type=int, default=256)
    ap.add_argument("--state-hz", type=float, default=10.0)
    ap.add_argument("--cells-hz", type=float, default=1.0)
    a = ap.parse_args()
    payload_costs(a.cells, a.sensors)
    asyncio.run(run(a.seconds, a.cells, a.sensors, a.state_hz, a.cells_hz))


if __name__ == "__main__":
    main()
