"""Mean CCL with the highest cell near a taper knee under measurement noise.

Before issue 11 every dip restarted the 30 s ramp hold, so noise ratcheted CCL down to the noise
minimum. This prints, per noise level and seed, the mean CCL (after a 100 s settle) with the hold
restarting on every drop (``ramp_deadband_pct = 0``, the old behaviour), with the default
deadband, and with no hold at all (the bound set by the ramp rate alone, since cuts still apply
at once and rises ramp), against the noise-free target.

The limits calculator is driven directly (pure core, injected clock): highest cell at
``--cell-v`` plus Gaussian noise quantised to 1 mV (as ``dbc/bms.dbc`` carries it), the others at
3.30 V, steps at ``--hz``.

Run: ``.venv/bin/python bench/ramp_noise.py`` (``--seeds 1 2 3 --noise-mv 1 2 3``).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import (
    AlarmReport,
    Reading,
    Role,
)
from gateway.core.pack import PackConfig, PackState

PACK = PackConfig(cells=4, temp_sensors=1)


def mean_ccl(
    cfg: LimitsConfig, seed: int, noise_mv: float, cell_v: float, hz: float, s: float
) -> float:
    rng = random.Random(seed)
    calc = LimitsCalculator(cfg, PACK)
    state = PackState(PACK)
    seen: list[float] = []
    steps = int(s * hz)
    for i in range(steps):
        t = i / hz
        v = round(cell_v + rng.gauss(0.0, noise_mv / 1000.0), 3)
        for k, x in enumerate((v, 3.30, 3.30, 3.30)):
            state.apply(Reading(Role.CELL_VOLTAGE, k, x, t))
        state.apply(Reading(Role.CELL_TEMPERATURE, 0, 25.0, t))
        state.apply(Reading(Role.PACK_CURRENT, 0, 0.0, t))
        state.apply(Reading(Role.PACK_VOLTAGE, 0, v + 9.9, t))
        lim = calc.step(state.snapshot(t), None, AlarmReport(), t)
        if t >= 100.0:
            seen.append(lim.ccl_a.value)
    return math.fsum(seen) / len(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--noise-mv", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--cell-v", type=float, default=3.41)
    ap.add_argument("--hz", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=900.0)
    args = ap.parse_args()
    target = LimitsCalculator(LimitsConfig(), PACK).tables.charge_cell(args.cell_v) * 100.0
    print(
        f"highest cell {args.cell_v} V, target CCL {target:.2f} A, {args.hz:g} Hz, "
        f"{args.seconds:g} s (mean after 100 s)"
    )
    print("noise_mv seed  hold-every-drop  deadband-5%  no-hold")
    for noise in args.noise_mv:
        for seed in args.seeds:
            old = mean_ccl(LimitsConfig(ramp_deadband_pct=0.0), seed, noise, args.cell_v,
                           args.hz, args.seconds)  # fmt: skip
            new = mean_ccl(LimitsConfig(), seed, noise, args.cell_v, args.hz, args.seconds)
            free = mean_ccl(LimitsConfig(ramp_hold_s=0.0), seed, noise, args.cell_v,
                            args.hz, args.seconds)  # fmt: skip
            print(f"{noise:8.1f} {seed:4d} {old:16.2f} {new:12.2f} {free:8.2f}")


if __name__ == "__main__":
    main()
