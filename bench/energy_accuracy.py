"""Energy counters against the integral of the replayed current times voltage.

Run: ``.venv/bin/python bench/energy_accuracy.py [--hours 6] [--seeds 5 6 7]``

For each seed, a simulated home-storage morning (06:00 onwards: the morning load, then PV with
clouds and load pulses; 16 cells) is written as a candump log at 1/20 of the DBC rates (pack
values every 0.4 s), replayed through the controller (one step per second of log time), and
compared with the log integrated on its own: every decoded pack current times the latest pack
voltage, held until the next current frame. Prints both counters and their relative errors.
Target (issue 16): within 0.5 %.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.core.model import Role
from gateway.core.pack import PackConfig
from gateway.replay import iter_log, replay
from gateway.settings import Settings
from gateway.sim.log import simulate_to_log
from gateway.sim.pack import PackSimConfig
from gateway.sim.profiles import HomeStorageProfile


def integral_kwh(log: Path) -> tuple[float, float]:
    """Charged and discharged kWh of the log: current x latest voltage, sample and hold."""
    decoder = load_decoder(CanConfig())
    charged = discharged = 0.0
    i = v = None
    t_i = 0.0
    for f in iter_log(log):
        if not decoder.handles(f.frame_id, f.extended):
            continue
        for r in decoder.decode(f.frame_id, f.data, f.t_s, f.extended):
            if r.role is Role.PACK_VOLTAGE:
                v = r.value
            elif r.role is Role.PACK_CURRENT:
                if i is not None and v is not None:
                    e = i * v * (r.t_s - t_i)
                    charged += max(e, 0.0)
                    discharged += max(-e, 0.0)
                i, t_i = r.value, r.t_s
    return charged / 3.6e6, discharged / 3.6e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--hours", type=float, default=6.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[5, 6, 7])
    args = ap.parse_args(argv)
    print(f"{'seed':>4} {'charged kWh':>12} {'integral':>10} {'error %':>8} "
          f"{'discharged kWh':>15} {'integral':>10} {'error %':>8}")  # fmt: skip
    worst = 0.0
    for seed in args.seeds:
        cfg = PackSimConfig(cells=16, initial_soc_pct=30.0)
        day = HomeStorageProfile(capacity_ah=cfg.capacity_ah, seed=seed, start_hour=6.0)
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "day.log"
            simulate_to_log(
                log, config=cfg, hours=args.hours, seed=seed, rate=0.05, step_s=1.0,
                current_source=day,
            )  # fmt: skip
            want = integral_kwh(log)
            settings = Settings(pack=PackConfig(cells=16, temp_sensors=cfg.temp_sensor_count))
            last = list(replay(settings, log))[-1]
        got = (last["energy_charged_kwh"], last["energy_discharged_kwh"])
        errs = [100 * (g - w) / w for g, w in zip(got, want, strict=True)]
        worst = max(worst, *(abs(e) for e in errs))
        print(f"{seed:>4} {got[0]:>12.4f} {want[0]:>10.4f} {errs[0]:>8.3f} "
              f"{got[1]:>15.4f} {want[1]:>10.4f} {errs[1]:>8.3f}")  # fmt: skip
    print(f"worst relative error: {worst:.3f} % (target: within 0.5 %)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
