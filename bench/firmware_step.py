"""Cost of one firmware step (protection -> limits -> balancing) for 16 and 512 cells.

Snapshots come from the pack simulator through ``PackState`` (as in the daemon); the SoC report
is the simulator's truth (the estimator has its own bench). Prints microseconds per step for each
part and the share of a 100 Hz budget. Run: ``.venv/bin/python bench/firmware_step.py``.
"""

from __future__ import annotations

import argparse
import time

from gateway.core.balancing import BalancingConfig, BalancingPlanner
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import CellEstimate, PackSnapshot, SocReport
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import Protection, ProtectionConfig
from gateway.sim.pack import PackSim, PackSimConfig


def _snapshots(cells: int, steps: int) -> tuple[PackConfig, list[PackSnapshot], SocReport]:
    sim_cfg = PackSimConfig(cells=cells, initial_soc_spread_pct=3.0)
    sim = PackSim(sim_cfg, seed=2)
    pack = PackConfig(cells=cells, temp_sensors=sim_cfg.temp_sensor_count)
    state = PackState(pack)
    snaps = []
    for _ in range(steps):
        sim.step(0.1, 0.0)  # at rest: the balancing planner does its full work
        state.apply_all(sim.readings())
        snaps.append(state.snapshot(sim.t_s))
    soc = SocReport(
        50.0,
        50.0,
        100.0,
        tuple(
            CellEstimate(s, 0.3, c, 0.5)
            for s, c in zip(sim.true_soc_pct(), sim.capacities_ah(), strict=True)
        ),
    )
    return pack, snaps, soc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args(argv)
    print(f"{'cells':>5} {'protection us':>14} {'limits us':>10} {'balancing us':>13}"
          f" {'total us':>9} {'of 10 ms':>8}")  # fmt: skip
    for cells in (16, 512):
        pack, snaps, soc = _snapshots(cells, args.steps)
        prot = Protection(ProtectionConfig(), pack)
        lim = LimitsCalculator(LimitsConfig(), pack)
        bal = BalancingPlanner(BalancingConfig(), pack)
        t_p = t_l = t_b = 0.0
        for snap in snaps:
            t0 = time.perf_counter()
            alarms = prot.step(snap, soc, snap.t_s)
            t1 = time.perf_counter()
            lim.step(snap, soc, alarms, snap.t_s)
            t2 = time.perf_counter()
            bal.step(snap, soc, snap.t_s)
            t3 = time.perf_counter()
            t_p += t1 - t0
            t_l += t2 - t1
            t_b += t3 - t2
        n = len(snaps)
        total = (t_p + t_l + t_b) / n * 1e6
        print(
            f"{cells:>5} {t_p / n * 1e6:14.0f} {t_l / n * 1e6:10.0f} {t_b / n * 1e6:13.0f}"
            f" {total:9.0f} {total / 10_000:8.1%}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
