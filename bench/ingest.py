"""CAN ingest benchmark: a 512-cell candump log through decode, mapping and pack-state update.

Run: ``.venv/bin/python bench/ingest.py [--seconds 60] [--cells 512] [--sensors 256]``

Writes a log of the default message set (dbc/bms.dbc, default profile) to a temporary directory,
then times, on one core:

1. ingest: the frames (already read from the file) through ``Decoder.decode`` (DBC decode and
   signal-role mapping) and ``Controller.count_frame``/``ingest`` (pack-state update) - the path
   every received frame takes in the daemon;
2. replay: ``gateway.replay.replay`` end to end - log parsing by python-can, the same ingest, the
   daemon's control steps (per frame with data, bounded by ``control.min_step_s``) and one JSON
   record per second of log time;
3. for reference, python-can's log parsing alone and cantools ``Message.decode`` alone.

Prints frames/s and microseconds per frame for each. Target (issue 2): ingest >= 100,000 frames/s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import can
import cantools

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.control import Controller
from gateway.core.pack import PackConfig
from gateway.replay import ReplayStats, iter_log, replay
from gateway.settings import Settings

REPO = Path(__file__).resolve().parent.parent
DBC = REPO / "dbc" / "bms.dbc"


def frames(
    db: cantools.database.can.Database, cells: int, sensors: int, seconds: float, seed: int
) -> Iterator[can.Message]:
    """The message set at its DBC cycle times: voltages 100 ms, current 20 ms, temps 1 s."""
    rnd = random.Random(seed)
    volts = db.get_message_by_name("BMS_CellVoltages")
    temps = db.get_message_by_name("BMS_CellTemperatures")
    pack = db.get_message_by_name("BMS_PackValues")
    bal = db.get_message_by_name("BMS_BalancingStatus")
    base_mv = [3300 + rnd.randint(-20, 20) for _ in range(cells)]
    steps = int(seconds * 50)  # 20 ms ticks
    for tick in range(steps):
        t = 1_700_000_000.0 + tick * 0.02
        current_ma = int(20_000 * rnd.uniform(-1, 1))
        yield can.Message(
            timestamp=t,
            arbitration_id=pack.frame_id,
            is_extended_id=False,
            data=pack.encode(
                {
                    "PackCurrent": current_ma,
                    "PackVoltage": round(sum(base_mv) / 1000, 2),
                    "PackCurrent_invalidFlag": 0,
                    "PackVoltage_invalidFlag": 0,
                }
            ),
        )
        if tick % 5 == 0:  # 100 ms
            for mux in range(cells // 4):
                values: dict[str, float] = {"CellVoltages_Mux": mux}
                for k in range(4):
                    i = 4 * mux + k
                    values[f"CellVoltage_{i:03d}"] = base_mv[i] + rnd.randint(-2, 2)
                    values[f"CellVoltage_{i:03d}_invalidFlag"] = 0
                yield can.Message(
                    timestamp=t,
                    arbitration_id=volts.frame_id,
                    is_extended_id=False,
                    data=volts.encode(values),
                )
        if tick % 50 == 0:  # 1 s
            for mux in range(sensors // 4):
                values = {"CellTemperatures_Mux": mux}
                for k in range(4):
                    i = 4 * mux + k
                    values[f"CellTemperature_{i:03d}"] = round(25 + rnd.uniform(-2, 2), 1)
                    values[f"CellTemperature_{i:03d}_invalidFlag"] = 0
                yield can.Message(
                    timestamp=t,
                    arbitration_id=temps.frame_id,
                    is_extended_id=False,
                    data=temps.encode(values),
                )
            for mux in range(-(-cells // 56)):
                values = {"BalancingStatus_Mux": mux}
                for k in range(56):
                    i = 56 * mux + k
                    if i < 512:
                        values[f"BalancingStatus_{i:03d}"] = 0
                yield can.Message(
                    timestamp=t,
                    arbitration_id=bal.frame_id,
                    is_extended_id=False,
                    data=bal.encode(values),
                )


def best_of(runs: int, fn: Callable[[], None]) -> tuple[float, float]:
    """The fastest of ``runs`` runs of ``fn()``: (CPU seconds of this process, wall seconds).

    CPU time is the figure for "one core": on a busy machine the wall clock also counts the time
    other processes held the core. Wall time is printed beside it as a check.
    """
    best_cpu = best_wall = float("inf")
    for _ in range(runs):
        c, w = time.process_time(), time.perf_counter()
        fn()
        best_cpu = min(best_cpu, time.process_time() - c)
        best_wall = min(best_wall, time.perf_counter() - w)
    return best_cpu, best_wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="log length in seconds")
    ap.add_argument("--cells", type=int, default=512)
    ap.add_argument("--sensors", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    settings = Settings(pack=PackConfig(cells=args.cells, temp_sensors=args.sensors))
    db: Any = cantools.database.load_file(DBC, strict=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pack512.log"
        t = time.perf_counter()
        with can.CanutilsLogWriter(str(path), channel="can0") as writer:
            for msg in frames(db, args.cells, args.sensors, args.seconds, args.seed):
                writer.on_message_received(msg)
        gen_s = time.perf_counter() - t
        size_mb = path.stat().st_size / 1e6
        log_frames = list(iter_log(path))
        n = len(log_frames)
        print(
            f"log: {n} frames, {args.seconds:.0f} s, {args.cells} cells, {args.sensors} "
            f"sensors, {size_mb:.1f} MB (written in {gen_s:.1f} s)"
        )

        decoder = load_decoder(CanConfig())
        data = [(f.frame_id, f.data, f.t_s, f.extended) for f in log_frames]

        def ingest() -> None:
            ctrl = Controller(settings)
            decode, count, apply = decoder.decode, ctrl.count_frame, ctrl.ingest
            for frame_id, payload, t_s, ext in data:
                readings = decode(frame_id, payload, t_s, ext)
                count(True)
                apply(readings)
            snap = ctrl.pack.snapshot(data[-1][2])
            assert snap.complete, "the benchmark log must yield a complete pack"

        ingest_s = best_of(args.runs, ingest)

        def decode_only() -> None:
            decode = decoder.decode
            for frame_id, payload, t_s, ext in data:
                decode(frame_id, payload, t_s, ext)

        decode_s = best_of(args.runs, decode_only)

        records: list[dict[str, object]] = []

        def full_replay() -> None:
            records.clear()
            stats = ReplayStats()
            for rec in replay(settings, path, stats=stats):
                records.append(rec)
                json.dumps(rec)

        replay_s = best_of(args.runs, full_replay)

        def parse_only() -> None:
            for _ in iter_log(path):
                pass

        parse_s = best_of(args.runs, parse_only)

        messages = {m.frame_id: m for m in db.messages}

        def cantools_only() -> None:
            for frame_id, payload, _t, _e in data:
                messages[frame_id].decode(payload, decode_choices=False)

        cantools_s = best_of(args.runs, cantools_only)

    errors = decoder.counters.dropped
    print(f"python {sys.version.split()[0]}, best of {args.runs} runs, one core")
    print(f"  {'':<56} {'CPU time':>24}  {'wall clock':>12}")
    for label, (cpu, wall) in (
        ("decode + map (Decoder.decode)", decode_s),
        ("ingest (decode + map + pack state)", ingest_s),
        ("replay end to end (parse log + ingest + steps + JSON)", replay_s),
        ("log parsing alone (python-can CanutilsLogReader)", parse_s),
        ("cantools Message.decode alone (reference)", cantools_s),
    ):
        print(
            f"  {label:<56} {n / cpu:>10,.0f} frames/s {cpu / n * 1e6:6.2f} us/frame"
            f"  {n / wall:>10,.0f} frames/s"
        )
    print(f"  records: {len(records)}, decode errors: {errors}")
    ratio = cantools_s[0] / ingest_s[0]
    print(f"  ingest runs at {ratio:.2f}x the speed of cantools Message.decode (CPU time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
