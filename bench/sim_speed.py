"""Speed of the pack simulator: simulated seconds per wall second, and sim-log throughput.

Run: ``.venv/bin/python bench/sim_speed.py`` (add ``--quick`` for a short run).

Prints, for 16 and 512 cells at 1 s steps, the simulated seconds per wall second with no cell
bleeding and with every other cell bleeding (the slower path), and the time to write a
2-hour candump log of a 16-cell pack at the DBC frame rates (``bms-gateway sim-log``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from gateway.sim.log import simulate_to_log
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import HomeStorageProfile


def step_speed(cells: int, sim_s: float, *, bleeding: bool) -> tuple[float, float]:
    """Wall seconds for ``sim_s`` simulated seconds at 1 s steps, and the speed-up."""
    sim = PackSim(PackSimConfig(cells=cells), seed=1)
    if bleeding:
        sim.set_bleed([k % 2 == 0 for k in range(cells)])
    profile = HomeStorageProfile(capacity_ah=sim.config.capacity_ah, seed=1)
    steps = round(sim_s)
    t0 = time.perf_counter()
    for k in range(steps):
        sim.step(1.0, profile(float(k)))
    wall = time.perf_counter() - t0
    return wall, steps / wall


def main() -> None:
    """Run the benchmark and print its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    args = ap.parse_args()
    day = 3600.0 if args.quick else 86400.0
    print("PackSim.step, 1 s steps, home-storage profile:")
    for cells, sim_s in ((16, day), (512, day / 8)):
        for bleeding in (False, True):
            wall, speed = step_speed(cells, sim_s, bleeding=bleeding)
            tag = "half bleeding" if bleeding else "no bleeding  "
            print(
                f"  {cells:3d} cells, {tag}: {sim_s / 3600:5.1f} h simulated in {wall:6.2f} s"
                f" = {speed:9,.0f} simulated s per wall s"
            )
    hours = 0.25 if args.quick else 2.0
    with tempfile.TemporaryDirectory() as tmp:
        for cells in (16, 512):
            h = hours if cells == 16 else hours / 8
            out = Path(tmp) / f"sim{cells}.log"
            s = simulate_to_log(out, config=PackSimConfig(cells=cells), hours=h, seed=1)
            print(
                f"sim-log {cells:3d} cells, {h:g} h at DBC rates: {s.frames:,} frames in "
                f"{s.wall_s:.2f} s = {s.frames / s.wall_s:,.0f} frames/s, "
                f"{s.sim_s / s.wall_s if s.wall_s > 0 else math.inf:,.0f}x real time, "
                f"{out.stat().st_size / 1e6:.1f} MB"
            )


if __name__ == "__main__":
    main()
