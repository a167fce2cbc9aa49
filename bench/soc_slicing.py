"""Does weighing a large pack in slices (``soc.cells_per_step``) cost accuracy? And what it saves.

One simulated pack (``gateway.sim.pack``, NMC by default; 2 mV voltage noise, a 0.3 A current
offset, 3 % initial SoC spread, cold start from the first voltages) is stepped at 10 Hz through a
discharge, a rest, a charge with PV-like swings and a rest. The same snapshots go to two
estimators: one weighing every cell every step (``cells_per_step`` = cells) and one weighing a
slice per step (``cells_per_step`` = cells / 8 by default, as a 512-cell pack with the default
64). Prints, per estimator, the RMSE and max |error| after 30 min against the simulator's true
SoC (every cell, every 10 s), the final error, and the CPU time of a step.

Run: ``.venv/bin/python bench/soc_slicing.py [--cells 128] [--slices 8] [--chemistry nmc]
[--seed 7]``.
"""

from __future__ import annotations

import argparse
import math
import time

from gateway.core.chemistry import get_chemistry
from gateway.core.pack import PackConfig, PackState
from gateway.core.soc import SocConfig, SocEstimator
from gateway.sim.pack import PackSim, PackSimConfig


def _current(t_s: float, q_ah: float) -> float:
    """The day in two hours: 40 min discharge, 20 min rest, 40 min PV charge, 20 min rest."""
    if t_s < 2400.0:
        return -0.3 * q_ah * (1.0 + 0.3 * math.sin(t_s / 97.0))
    if t_s < 3600.0:
        return 0.0
    if t_s < 6000.0:
        return 0.25 * q_ah * (0.6 + 0.4 * abs(math.sin(t_s / 300.0)))
    return 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=128)
    ap.add_argument("--slices", type=int, default=8, help="groups the sliced estimator uses")
    ap.add_argument("--chemistry", choices=("nmc", "lfp"), default="nmc")
    ap.add_argument("--hours", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=7, help="the simulated pack's draw")
    args = ap.parse_args(argv)
    n = args.cells
    chem = get_chemistry(args.chemistry)
    sim_cfg = PackSimConfig(
        cells=n,
        chemistry=args.chemistry,
        initial_soc_pct=70.0,
        initial_soc_spread_pct=3.0,
        voltage_noise_mv=2.0,
        current_offset_a=0.3,
    )
    sim = PackSim(sim_cfg, seed=args.seed)
    pack = PackConfig(
        cells=n,
        temp_sensors=sim_cfg.temp_sensor_count,
        chemistry=args.chemistry,
        capacity_ah=sim_cfg.capacity_ah,
    )
    state = PackState(pack)
    per = {"whole": n, "sliced": max(1, -(-n // args.slices))}
    ests = {k: SocEstimator(SocConfig(cells_per_step=v), pack, chem) for k, v in per.items()}
    cpu = dict.fromkeys(per, 0.0)
    sq = dict.fromkeys(per, 0.0)
    worst = dict.fromkeys(per, 0.0)
    count = 0
    steps = int(args.hours * 36000)
    final: dict[str, float] = {}
    for j in range(steps):
        t = 0.1 * j
        sim.step(0.1, _current(t, sim_cfg.capacity_ah))
        state.apply_all(sim.readings())
        snap = state.snapshot(sim.t_s)
        reports = {}
        for k, est in ests.items():
            t0 = time.process_time()
            reports[k] = est.step(snap, sim.t_s)
            cpu[k] += time.process_time() - t0
        if j % 100 == 0 and t >= 1800.0:
            truth = sim.true_soc_pct()
            count += n
            for k, rep in reports.items():
                if rep is None:
                    continue
                errs = [abs(c.soc_pct - s) for c, s in zip(rep.cells, truth, strict=True)]
                sq[k] += sum(e * e for e in errs)
                final[k] = max(errs)
                worst[k] = max(worst[k], final[k])
    print(
        f"{n} {args.chemistry} cells (seed {args.seed}), {args.hours:g} h at 10 Hz; errors in "
        "% SoC over every cell every 10 s after 30 min"
    )
    print(f"{'estimator':<24} {'RMSE':>6} {'max':>6} {'final max':>9} {'ms/step':>8}")
    for k, cells_per_step in per.items():
        label = f"{k} ({cells_per_step} cells/step)"
        print(
            f"{label:<24} {math.sqrt(sq[k] / max(count, 1)):6.2f} {worst[k]:6.2f} "
            f"{final.get(k, math.nan):9.2f} {1e3 * cpu[k] / steps:8.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
