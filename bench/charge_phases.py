"""Adaptive charge phases against "CVL always at the top", on the pack simulator.

A 16S pack (100 Ah, LFP or NMC, capacity spread 1.5 %, initial SoC 50 % with a 2-point spread,
1 mV voltage noise, a 0.1 A current-sensor offset) runs the household profile
(``HomeStorageProfile``: PV around noon, morning and evening loads, load pulses) for simulated
days. Every step goes the daemon's way: the simulator's sensed readings -> ``Controller.step``
(estimator, protection, charge phases, limits, balancing); the bleed mask goes back to the
simulator. The inverter serves the profile within CCL/DCL and obeys CVL as a charger in constant
voltage does: it charges at most ``(CVL - V) / R`` more than it did, ``R`` the pack's R0 + R1.
Load the pack cannot serve is taken from the grid (counted as not delivered).

Printed per chemistry and strategy (``top``: ``[charge] strategy = "top"``; ``adaptive``: the
defaults):

* hours per day with the true mean cell SoC above 95 % (days 2..N; day 1 starts at 50 %);
* energy delivered to the loads (kWh) and its ratio to ``top``, and the load energy the pack did
  not serve (taken from the grid). The loads draw current (C-rates), so a pack that cycles lower
  on its voltage curve delivers a little less energy for the same charge even when it serves
  every load;
* usable capacity at the end (``min(q) + min(cap - q)`` of the true cell charges against
  ``min(cap)``): what balancing reached;
* the estimator: RMSE of the pack mean SoC against the truth, and the worst cell's SoC sigma
  (``mean/max`` over days 2..N, and the share of that time it is above 3 points);
* whether the sigma is honest: the largest error of any cell's SoC estimate against its true SoC
  (``cell err``, points) and the share of cell-steps whose error exceeds twice the cell's sigma
  (``>2sig``; about 5 % for a Gaussian error with that sigma, much less when sigma is
  pessimistic);
* full charges completed (absorption ends) and the reasons they were requested;
* the worst cell's largest sigma on each day, day 0 included (a line per run): when the peaks
  that the priors and the cold start give fall below 3 points.

Run: ``.venv/bin/python bench/charge_phases.py`` (``--days 30 --seeds 2 3``; ``--quick`` = 3 days;
``--dt 30`` steps every 30 s instead of 10 s, a third of the time; ``--trace FILE`` writes a CSV
row every 10 simulated minutes: phase, request, SoC true and estimated, sigma, limits, balancing;
``--adaptive-only`` skips the ``top`` runs, which no ``[charge]`` setting but the strategy changes;
``--set full_charge_below_soc_pct=20`` overrides a ``[charge]`` setting of the adaptive runs).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from gateway.control import Controller
from gateway.core.model import ChargePhase, ControlOutput
from gateway.core.pack import PackConfig
from gateway.core.phases import ChargeConfig, ChargeStrategy
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import HomeStorageProfile

CELLS = 16
CAPACITY_AH = 100.0
DT_S = 10.0
DAY_S = 86400.0


@dataclass
class Result:
    """What one run achieved."""

    hours_above_95_per_day: float = 0.0
    delivered_kwh: float = 0.0
    unserved_kwh: float = 0.0
    usable_pct: float = 0.0
    soc_rmse_pct: float = 0.0
    worst_sigma_pct: float = 0.0
    mean_worst_sigma_pct: float = 0.0
    sigma_over_3_pct: float = 0.0  # share of the time the worst cell's sigma is above 3 points
    worst_cell_err_pct: float = 0.0  # largest |estimate - truth| of any cell (days 2..N)
    z_over_2_pct: float = 0.0  # share of cell-steps with |estimate - truth| > 2 sigma
    z_over_3_pct: float = 0.0  # share of cell-steps with |estimate - truth| > 3 sigma
    full_charges: int = 0
    # The worst cell's largest sigma on each day (day 0 first; points): when the peaks fall.
    daily_worst_sigma_pct: list[float] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0


def usable_pct(sim: PackSim) -> float:
    """Charge between the first full and the first empty cell, against the smallest capacity."""
    caps = sim.capacities_ah()
    q = [s / 100.0 * c for s, c in zip(sim.true_soc_pct(), caps, strict=True)]
    return 100.0 * (min(q) + min(c - x for c, x in zip(caps, q, strict=True))) / min(caps)


PROFILES = {
    # The household profile as the simulator ships it: the pack cycles deeply every sunny day.
    "household": {},
    # A household that uses a third of that: the pack cycles shallowly.
    "light": {"morning_c": 0.02, "evening_c": 0.03, "pulses_per_day": 3},
}


def run(
    chemistry: str,
    strategy: ChargeStrategy,
    days: float,
    seed: int,
    profile_name: str,
    trace: TextIO | None = None,
    dt_s: float = DT_S,
    overrides: dict[str, str] | None = None,
) -> Result:
    """One simulated run; see the module docstring. ``trace``: a CSV row every 10 minutes;
    ``overrides``: ``[charge]`` settings by name (strings, validated by the section)."""
    settings = Settings(
        pack=PackConfig(cells=CELLS, capacity_ah=CAPACITY_AH, chemistry=chemistry),
        charge=ChargeConfig.model_validate({**(overrides or {}), "strategy": strategy}),
    )
    ctrl = Controller(settings)
    sim = PackSim(
        PackSimConfig(
            cells=CELLS,
            chemistry=chemistry,
            capacity_ah=CAPACITY_AH,
            initial_soc_pct=50.0,
            voltage_noise_mv=1.0,
            current_offset_a=0.1,
        ),
        seed=seed,
    )
    profile = HomeStorageProfile(
        capacity_ah=CAPACITY_AH,
        seed=seed,
        **PROFILES[profile_name],  # type: ignore[arg-type]
    )
    r_pack = math.fsum(p.r0_ohm + p.r1_ohm for p in sim.params)
    res = Result()
    steps = round(days * DAY_S / dt_s)
    above_s = 0.0
    sq_err = 0.0
    n_err = 0
    sigma_sum = 0.0
    n_over_3 = 0
    n_z2 = 0
    n_z3 = 0
    phase = None
    started = time.perf_counter()
    current = 0.0
    for k in range(steps):
        t = k * dt_s
        ctrl.ingest(sim.readings(t))
        out = ctrl.step(t)
        sim.set_bleed(out.balancing.bleed)
        demand = profile(t)
        lim = out.limits
        if demand < 0:
            current = -min(-demand, lim.dcl_a.value)
            served = -current * sim.pack_voltage_v() * dt_s / 3.6e6
            res.delivered_kwh += served
            res.unserved_kwh += (-demand + current) * sim.pack_voltage_v() * dt_s / 3.6e6
        else:
            cv = current + (lim.cvl_v.value - sim.pack_voltage_v()) / r_pack
            current = max(0.0, min(demand, lim.ccl_a.value, cv))
        sim.step(dt_s, current)
        truth = sim.true_soc_pct()
        mean_true = sum(truth) / len(truth)
        worst = math.nan
        if out.soc is not None:
            worst = max(c.soc_sigma_pct for c in out.soc.cells)
            day = int(t // DAY_S)
            daily = res.daily_worst_sigma_pct
            daily.extend([0.0] * (day + 1 - len(daily)))
            daily[day] = max(daily[day], worst)
        if t >= DAY_S:
            if mean_true > 95.0:
                above_s += dt_s
            if out.soc is not None:
                sq_err += (out.soc.soc_mean_pct - mean_true) ** 2
                n_err += 1
                res.worst_sigma_pct = max(res.worst_sigma_pct, worst)
                sigma_sum += worst
                n_over_3 += worst > 3.0
                for c, x in zip(out.soc.cells, truth, strict=True):
                    e = abs(c.soc_pct - x)
                    res.worst_cell_err_pct = max(res.worst_cell_err_pct, e)
                    n_z2 += e > 2.0 * c.soc_sigma_pct
                    n_z3 += e > 3.0 * c.soc_sigma_pct
        charge = out.charge
        if charge is not None:
            if (
                phase is ChargePhase.ABSORPTION
                and charge.phase is ChargePhase.FLOAT
                and strategy is ChargeStrategy.ADAPTIVE
            ):
                res.full_charges += 1
            if phase is not ChargePhase.ABSORPTION and charge.phase is ChargePhase.ABSORPTION:
                # Grouped by kind: the numbers taken out ("SoC uncertainty N % >= N %").
                kind = re.sub(r"\d+(\.\d+)?", "N", charge.full_charge_reason.split(" (")[0])
                res.reasons[kind.split(":")[0]] += 1
            phase = charge.phase
        if trace is not None and k % max(1, round(TRACE_S / dt_s)) == 0:
            tag = f"{profile_name},{chemistry},{seed},{strategy.value}"
            _trace_row(trace, tag, t, demand, current, sim, out, ctrl)
    res.wall_s = time.perf_counter() - started
    counted_days = max(days - 1.0, 1e-9)
    res.hours_above_95_per_day = above_s / 3600.0 / counted_days
    res.usable_pct = usable_pct(sim)
    res.soc_rmse_pct = math.sqrt(sq_err / n_err) if n_err else float("nan")
    res.mean_worst_sigma_pct = sigma_sum / n_err if n_err else float("nan")
    res.sigma_over_3_pct = 100.0 * n_over_3 / n_err if n_err else float("nan")
    res.z_over_2_pct = 100.0 * n_z2 / (n_err * CELLS) if n_err else float("nan")
    res.z_over_3_pct = 100.0 * n_z3 / (n_err * CELLS) if n_err else float("nan")
    return res


TRACE_S = 600.0
TRACE_HEADER = (
    "strategy,day,hour,demand_a,current_a,true_mean_pct,true_max_pct,est_pack_pct,est_mean_pct,"
    "worst_sigma_pct,worst_rel_sigma_pct,phase,full_request,due_in_h,cvl_v,ccl_a,dcl_a,bleeding,"
    "reason,balancing,worst_cell,worst_err_pct,rc_sd,sc,sg,si,sx,sb,count_sd,offset_a,offset_sd_a,filter_sd,count_err_sd,bias_m,"
    "p00_sd,bias_sd,crand_sd,c_off,c_sg,c_si,c_sx,c_d"
)


def _trace_row(
    f: TextIO,
    tag: str,
    t: float,
    demand: float,
    current: float,
    sim: PackSim,
    out: ControlOutput,
    ctrl: Controller,
) -> None:
    truth = sim.true_soc_pct()
    soc = out.soc
    charge = out.charge
    cells = soc.cells if soc is not None else ()
    sig = max((c.soc_sigma_pct for c in cells), default=math.nan)
    rel = max((c.soc_rel_sigma_pct for c in cells), default=math.nan)
    f.write(
        f"{tag},{int(t // DAY_S)},{(t % DAY_S) / 3600:.2f},{demand:.1f},{current:.1f},"
        f"{sum(truth) / len(truth):.2f},{max(truth):.2f},"
        f"{soc.soc_pct if soc else math.nan:.2f},{soc.soc_mean_pct if soc else math.nan:.2f},"
        f"{sig:.2f},{rel:.2f},{charge.phase.value if charge else ''},"
        f"{int(bool(charge and charge.full_charge_requested))},"
        f"{(charge.full_charge_due_in_s or 0.0) / 3600.0 if charge else 0.0:.2f},"
        f"{out.limits.cvl_v.value:.2f},"
        f"{out.limits.ccl_a.value:.1f},{out.limits.dcl_a.value:.1f},{sum(out.balancing.bleed)},"
        f'"{(charge.full_charge_reason if charge else "")[:60]}",'
        f'"{out.balancing.idle_reason[:90]}",{_parts(ctrl, truth)}\n'
    )


def _parts(ctrl: Controller, truth: list[float]) -> str:
    """The worst-sigma cell's number, signed error and variance parts (sigmas, %), for the trace."""
    est = ctrl.soc
    if est is None or not all(c.initialised for c in est.cells):
        return ",,,,,,,,,,,,,,,,,,,,,,"
    j = max(range(len(est.cells)), key=lambda k: est.cells[k].sigma_pct())
    c = est.cells[j]
    off_a = getattr(c, "off_c", 0.0) * CAPACITY_AH  # the learned current offset, if any
    off_sd_a = math.sqrt(min(getattr(c, "off_var", 1.0), 1.0)) * CAPACITY_AH
    return (
        f"{j},{c.soc_pct - truth[j]:.2f},{math.sqrt(c.rc):.2f},{c.sc:.2f},{c.sg:.2f},{c.si:.2f},"
        f"{c.sx:.2f},{c.sb:.2f},{math.sqrt(c.count_var):.2f},{off_a:.4f},{off_sd_a:.4f},"
        f"{math.sqrt(c.p00 + c.sb * c.sb):.2f},{_count_err_sd(c)},"
        f"{getattr(c, 'bias_m', 1.0):.3f},{_count_parts(c)}"
    )


def _count_parts(c: object) -> str:
    """The filter's and the count's parts of the worst cell's variance (sigmas, %), if known."""
    if not hasattr(c, "count_rand_var"):
        return ",,,,,,,"
    bv = c.bias_var()  # type: ignore[attr-defined]
    return (
        f"{math.sqrt(c.p00):.2f},{math.sqrt(max(bv, 0.0)):.2f},"  # type: ignore[attr-defined]
        f"{math.sqrt(c.count_rand_var):.2f},{c.count_off_pct:.2f},"  # type: ignore[attr-defined]
        f"{c.count_sg:.2f},{c.count_si:.2f},{c.count_sx:.2f},"  # type: ignore[attr-defined]
        f"{c.soc_pct - c.count_soc_pct:.2f}"  # type: ignore[attr-defined]
    )


def _count_err_sd(c: object) -> str:
    """What the count says of the estimate's error (the reported sigma's other bound), if known."""
    var = getattr(c, "count_err_var", None)
    if var is None:
        return ""
    d = c.soc_pct - c.count_soc_pct  # type: ignore[attr-defined]
    return f"{math.sqrt(var + d * d):.2f}"


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=float, default=30.0, help="simulated days (default 30)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[2, 3], help="pack/profile seeds")
    ap.add_argument("--chemistry", nargs="+", default=["lfp", "nmc"], choices=["lfp", "nmc"])
    ap.add_argument("--profile", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    ap.add_argument("--quick", action="store_true", help="3 days")
    ap.add_argument("--dt", type=float, default=DT_S, help=f"step, s (default {DT_S:g})")
    ap.add_argument("--trace", help="write a CSV row every 10 simulated minutes to this file")
    ap.add_argument(
        "--adaptive-only", action="store_true", help="skip the top runs (no ratio is printed)"
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a [charge] setting for the adaptive runs (repeatable), e.g. full_charge_lead_s=0",
    )
    args = ap.parse_args(argv)
    overrides = dict(kv.split("=", 1) for kv in args.set)
    days = 3.0 if args.quick else args.days
    print(f"{days:g} days, 16S {CAPACITY_AH:g} Ah, dt {args.dt:g} s, seeds {args.seeds}")
    header = (
        f"{'profile':9} {'chem':4} {'seed':>4} {'strategy':9} {'h>95%/d':>8} {'kWh out':>8}"
        f" {'ratio':>6} {'unserved':>8} {'usable%':>8} {'rmse%':>6} {'sigma% mean/max':>13}"
        f" {'>3':>4} {'cell err':>8} {'>2sig':>5} {'>3sig':>5} {'fulls':>5}"
        "  full-charge reasons"
    )
    print(header)
    cases = [(p, c, s) for p in args.profile for c in args.chemistry for s in args.seeds]
    trace = open(args.trace, "w", encoding="utf-8") if args.trace else None  # noqa: SIM115
    if trace is not None:
        trace.write("profile,chem,seed," + TRACE_HEADER + "\n")
    for prof, chem, seed in cases:
        top = (
            None
            if args.adaptive_only
            else run(chem, ChargeStrategy.TOP, days, seed, prof, trace, args.dt)
        )
        ada = run(chem, ChargeStrategy.ADAPTIVE, days, seed, prof, trace, args.dt, overrides)
        runs = (("adaptive", ada),) if top is None else (("top", top), ("adaptive", ada))
        for name, r in runs:
            ratio = r.delivered_kwh / top.delivered_kwh if top and top.delivered_kwh else math.nan
            reasons = ", ".join(f"{k} x{v}" for k, v in r.reasons.most_common())
            print(
                f"{prof:9} {chem:4} {seed:4d} {name:9} {r.hours_above_95_per_day:8.2f}"
                f" {r.delivered_kwh:8.1f} {ratio:6.3f} {r.unserved_kwh:8.1f} {r.usable_pct:8.2f}"
                f" {r.soc_rmse_pct:6.2f} {r.mean_worst_sigma_pct:6.2f}/{r.worst_sigma_pct:6.2f}"
                f" {r.sigma_over_3_pct:3.0f}% {r.worst_cell_err_pct:8.2f}"
                f" {r.z_over_2_pct:4.1f}% {r.z_over_3_pct:4.2f}% {r.full_charges:5d}"
                f"  {reasons if name == 'adaptive' else '-'}"
            )
        for name, r in runs:
            by_day = " ".join(f"{x:.1f}" for x in r.daily_worst_sigma_pct)
            print(f"  {name} worst-cell sigma max by day (day 0 first): {by_day}")
        if top is not None:
            cut = 1.0 - ada.hours_above_95_per_day / max(top.hours_above_95_per_day, 1e-9)
            print(
                f"  -> time above 95 % cut by {100 * cut:.0f} % ({top.wall_s + ada.wall_s:.0f} s)"
            )
        sys.stdout.flush()
    if trace is not None:
        trace.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
