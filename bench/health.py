"""Cell health trend detection on the pack simulator: leak, fast fade, growing resistance.

A 16S pack (100 Ah) runs the household profile (``HomeStorageProfile``) for simulated days,
accelerated: the simulator and the gateway's ``Controller`` (estimator, protection, limits,
passive balancing) are stepped together every ``--dt`` seconds of simulated time, the inverter
follows the profile within CCL/DCL, the simulator obeys the bleed mask. Each step is folded into
the day's ``DayRecord`` (``DayAccumulator``, as the daemon's history recorder does); at the end
of every simulated day the record joins the history and ``analyse`` runs over it, as the daemon
does once a day.

Faults (``CellFault`` in the simulator), on top of a pack that ages by itself
(``--base-fade`` % of capacity per day, ``--base-growth`` % of R0 per day, the simulator's drawn
self-discharge of 0.05 +- 0.02 %/day):

* cell 4 (index 3): leaks ``--leak`` %/day (default 1);
* cell 8 (index 7): fades ``--fade-factor`` times faster than the rest (default 3);
* cell 12 (index 11): R0 grows ``--growth`` %/day (default 0.5).

Printed per chemistry and seed: the day each faulty cell is first flagged with its own code
(``-`` = never), warnings on any other cell or code (false alarms: cell, code, first day), and
the leak-rate estimate at the end against the truth (the leaky cell's self-discharge minus the
median cell's: a series string cannot see a leak every cell shares). Targets: leak within 7 days,
fade and resistance within 30 days, no healthy cell flagged, leak rate within 30 %.

Simulated histories are kept in ``--cache`` (JSON per chemistry and seed) so thresholds can be
re-evaluated without simulating again (``--analyse-only``).

Run: ``.venv/bin/python bench/health.py --seeds 1 2 3`` (``--days 60``; ``--chem lfp nmc``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gateway.control import Controller
from gateway.core.daily import CellDay, DayAccumulator, DayRecord, PackDay
from gateway.core.health import HealthCode, HealthConfig, analyse
from gateway.settings import Settings
from gateway.sim.pack import CellFault, PackSim, PackSimConfig
from gateway.sim.profiles import HomeStorageProfile

CELLS = 16
CAPACITY_AH = 100.0
DAY_S = 86400.0
FINE_S = 1.0  # the sample after a current step
STEP_C = 0.1  # a current change this large (C-rate) is a step
LEAK_CELL, FADE_CELL, GROWTH_CELL = 3, 7, 11
EXPECTED = {
    LEAK_CELL: HealthCode.CELL_SELF_DISCHARGE,
    FADE_CELL: HealthCode.CELL_CAPACITY_FADE,
    GROWTH_CELL: HealthCode.CELL_RESISTANCE_GROWTH,
}
TARGET_DAYS = {
    HealthCode.CELL_SELF_DISCHARGE: 7,
    HealthCode.CELL_CAPACITY_FADE: 30,
    HealthCode.CELL_RESISTANCE_GROWTH: 30,
}


@dataclass
class Faults:
    leak_pct_per_day: float = 1.0
    fade_factor: float = 3.0
    growth_pct_per_day: float = 0.5
    base_fade_pct_per_day: float = 0.02
    base_growth_pct_per_day: float = 0.01


@dataclass
class Simulated:
    """One simulated history and the truth needed to judge it."""

    chemistry: str
    seed: int
    records: list[DayRecord]
    true_leak_rel_pct_per_day: float
    wall_s: float


@dataclass
class Outcome:
    chemistry: str
    seed: int
    detected: dict[int, int | None] = field(default_factory=dict)  # cell -> first day
    false_alarms: list[tuple[int, str, int]] = field(default_factory=list)
    leak_est: float | None = None
    leak_true: float = 0.0
    stuck_day: int | None = None  # first of the days to the end without charge into the pack


def simulate(chem: str, seed: int, days: int, dt_s: float, faults: Faults) -> Simulated:
    """Run ``days`` simulated days; return the daily records."""
    sim_cfg = PackSimConfig(
        cells=CELLS,
        chemistry=chem,
        capacity_ah=CAPACITY_AH,
        initial_soc_pct=50.0,
        capacity_fade_pct_per_day=faults.base_fade_pct_per_day,
        resistance_growth_pct_per_day=faults.base_growth_pct_per_day,
        voltage_noise_mv=1.0,
        current_noise_a=0.05,
        faults=(
            CellFault(LEAK_CELL, self_discharge_pct_per_day=faults.leak_pct_per_day),
            CellFault(
                FADE_CELL,
                capacity_fade_pct_per_day=faults.fade_factor * faults.base_fade_pct_per_day,
            ),
            CellFault(GROWTH_CELL, resistance_growth_pct_per_day=faults.growth_pct_per_day),
        ),
    )
    sim = PackSim(sim_cfg, seed=seed)
    settings = Settings(
        pack={
            "cells": CELLS,
            "temp_sensors": sim_cfg.temp_sensor_count,
            "chemistry": chem,
            "capacity_ah": CAPACITY_AH,
        }
    )
    ctrl = Controller(settings)
    hcfg = HealthConfig()
    profile = HomeStorageProfile(capacity_ah=CAPACITY_AH, seed=seed)
    acc = DayAccumulator(hcfg, CELLS, sim_cfg.temp_sensor_count, CAPACITY_AH, 0)
    records: list[DayRecord] = []
    t = 0.0
    current = last_current = 0.0
    steps_per_day = round(DAY_S / dt_s)
    start = time.perf_counter()
    for day in range(days):
        for _ in range(steps_per_day):
            # A current step is sampled 1 s after it as well (R0 is measured from a voltage
            # step that answers a current step within soc.r0_max_step_dt_s, as on the bus).
            fine = abs(current - last_current) >= STEP_C * CAPACITY_AH
            last_current = current
            for h in (FINE_S, dt_s - FINE_S) if fine else (dt_s,):
                sim.step(h, current)
                t += h
                ctrl.ingest(sim.readings(t))
                out = ctrl.step(t)
                sim.set_bleed(out.balancing.bleed)
                acc.add(out, bled_ah=ctrl.balancing.dissipated_ah, moved_ah=ctrl.balancing.moved_ah)
            want = profile(t)
            lim = out.limits
            current = min(want, lim.ccl_a.value) if want > 0 else max(want, -lim.dcl_a.value)
        records.append(acc.record())
        acc = acc.next_day(day + 1)
    sd = [a / sim.capacities_ah()[k] * 100.0 * 24.0 for k, a in enumerate(sim.self_discharge_a())]
    others = sorted(x for k, x in enumerate(sd) if k != LEAK_CELL)
    med = 0.5 * (others[len(others) // 2 - 1] + others[len(others) // 2])
    return Simulated(chem, seed, records, sd[LEAK_CELL] - med, time.perf_counter() - start)


def evaluate(s: Simulated, cfg: HealthConfig) -> Outcome:
    """Run the analytics day by day as the daemon would; first detections and false alarms."""
    out = Outcome(
        s.chemistry, s.seed, dict.fromkeys(EXPECTED), leak_true=s.true_leak_rel_pct_per_day
    )
    seen: set[tuple[int, str]] = set()
    report = None
    for d in range(1, len(s.records) + 1):
        report = analyse(s.records[:d], cfg, CAPACITY_AH)
        for w in report.warnings:
            key = (w.cell, w.code.value)
            if EXPECTED.get(w.cell) is w.code:
                if out.detected[w.cell] is None:
                    out.detected[w.cell] = d
            elif key not in seen:
                out.false_alarms.append((w.cell, w.code.value, d))
            seen.add(key)
    if report is not None:
        leak = report.cells[LEAK_CELL].self_discharge
        out.leak_est = leak.per_day if leak is not None else None
    for r in reversed(s.records):
        if r.pack.charge_in_ah >= 0.05 * CAPACITY_AH:
            break
        out.stuck_day = r.day
    return out


def _record_to_json(r: DayRecord) -> dict[str, object]:
    return {"day": r.day, "pack": asdict(r.pack), "cells": [asdict(c) for c in r.cells]}


def _record_from_json(d: dict[str, object]) -> DayRecord:
    pack = d["pack"]
    cells = d["cells"]
    assert isinstance(pack, dict)
    assert isinstance(cells, list)
    return DayRecord(
        int(d["day"]),  # type: ignore[call-overload]
        PackDay(**{k: (math.nan if v is None else v) for k, v in pack.items()}),
        tuple(CellDay(**{k: (math.nan if v is None else v) for k, v in c.items()}) for c in cells),
    )


def _nan_to_none(x: object) -> object:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _nan_to_none(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_nan_to_none(v) for v in x]
    return x


def load_or_simulate(
    cache: Path | None,
    chem: str,
    seed: int,
    days: int,
    dt_s: float,
    faults: Faults,
    analyse_only: bool,
) -> Simulated:
    path = cache / f"health_{chem}_{seed}_{days}d_{dt_s:g}s.json" if cache else None
    if path is not None and path.exists():
        raw = json.loads(path.read_text())
        return Simulated(
            chem,
            seed,
            [_record_from_json(r) for r in raw["records"]],
            raw["true_leak"],
            raw["wall_s"],
        )
    if analyse_only:
        raise SystemExit(f"no cached history {path}")
    s = simulate(chem, seed, days, dt_s, faults)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "records": [_nan_to_none(_record_to_json(r)) for r in s.records],
            "true_leak": s.true_leak_rel_pct_per_day,
            "wall_s": s.wall_s,
        }
        path.write_text(json.dumps(body))
    return s


def store_figures(years: int = 10, cells: int = CELLS) -> None:
    """Size of ``years`` of daily rows in the SQLite store, and the time to write and read."""
    import os
    import random
    import tempfile

    from gateway.history.store import HistoryStore

    rng = random.Random(1)
    days = 365 * years
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.sqlite"
        store = HistoryStore(path)
        recs = [
            DayRecord(
                730000 + d,
                PackDay(*(rng.uniform(0, 100) for _ in range(9))),
                tuple(CellDay(*(rng.uniform(0, 100) for _ in range(11))) for _ in range(cells)),
            )
            for d in range(days)
        ]
        start = time.perf_counter()
        for r in recs:
            store.write(r)
        wrote = time.perf_counter() - start
        start = time.perf_counter()
        store.read(730000 + days - 30, 730000 + days)
        read = time.perf_counter() - start
        store.close()
        size = os.path.getsize(path)
    print(
        f"history store: {years} years x {cells} cells = {size / 1e6:.1f} MB; "
        f"write {wrote / days * 1000:.2f} ms per day record; read of 30 days {read * 1000:.0f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=int, default=60)
    ap.add_argument("--dt", type=float, default=60.0, help="simulated seconds per step")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--chem", nargs="+", default=["lfp", "nmc"], choices=("lfp", "nmc"))
    ap.add_argument("--leak", type=float, default=1.0, help="leaky cell, %% of capacity per day")
    ap.add_argument("--fade-factor", type=float, default=3.0)
    ap.add_argument("--growth", type=float, default=0.5, help="R0 growth of one cell, %%/day")
    ap.add_argument("--base-fade", type=float, default=0.02, help="every cell, %%/day")
    ap.add_argument("--base-growth", type=float, default=0.01, help="every cell, %%/day")
    ap.add_argument("--cache", type=Path, default=Path(".bench-cache"))
    ap.add_argument("--analyse-only", action="store_true", help="use cached histories only")
    ap.add_argument("--set", nargs="*", default=[], help="[health] overrides, key=value")
    ap.add_argument("--store", action="store_true", help="only the history store's size figures")
    args = ap.parse_args(argv)
    if args.store:
        store_figures()
        return 0
    faults = Faults(args.leak, args.fade_factor, args.growth, args.base_fade, args.base_growth)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    cfg = HealthConfig(**overrides)  # type: ignore[arg-type]
    print(f"health bench: {args.days} days, dt {args.dt:g} s, seeds {args.seeds}, {cfg!r}")
    ok = True
    for chem in args.chem:
        for seed in args.seeds:
            s = load_or_simulate(
                args.cache, chem, seed, args.days, args.dt, faults, args.analyse_only
            )
            o = evaluate(s, cfg)
            det = []
            for cell, code in EXPECTED.items():
                d = o.detected[cell]
                hit = d is not None and d <= TARGET_DAYS[code]
                ok = ok and hit
                det.append(f"{code.value.removeprefix('cell_')}={d if d is not None else '-'}")
            err = (
                abs(o.leak_est - o.leak_true) / o.leak_true * 100.0
                if o.leak_est is not None
                else math.inf
            )
            ok = ok and not o.false_alarms and err <= 30.0
            fa = (
                ", ".join(f"cell {c + 1} {code} day {d}" for c, code, d in o.false_alarms) or "none"
            )
            if o.stuck_day is not None:
                fa += f"; the pack took no charge from day {o.stuck_day} on"
            print(
                f"{chem} seed {seed}: first day flagged {' '.join(det)}; "
                f"leak est {o.leak_est if o.leak_est is not None else float('nan'):.3f} "
                f"true {o.leak_true:.3f} %/day (error {err:.0f} %); false alarms: {fa}; "
                f"sim {s.wall_s:.0f} s"
            )
    print("all targets met" if ok else "some targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
