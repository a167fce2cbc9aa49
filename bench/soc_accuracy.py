"""State-of-charge accuracy against a physics model, and the estimator's step time.

Ground truth: PyBaMM's SPMe with a lumped thermal model, a 24-hour home-storage day at 1 Hz
(night base load with fridge pulses, a morning peak, PV charge with clouds, an afternoon rest near
full, an evening discharge with cooking pulses, a night rest), for Chen2020 (NMC, LG M50) and
Prada2013 (LFP, A123 26650; thermal parameters borrowed from Chen2020). The true SoC is the
model's own coulomb count ("Discharge capacity [A.h]") against its electrode-balance capacity,
between the same OCV window the shipped tables use.

What the estimator sees is what a real BMS would: voltage with 2 mV noise and 1 mV quantisation,
current with an offset of 0.2 % of full scale (full scale 2C) and a 0.5 % gain error,
temperature to 0.5 degC, a capacity configured 5 % too high and an initial SoC 20 points off (a
stale state file restored; the restore adds its usual uncertainty). Beside it, on the same data:
plain coulomb counting (same wrong start, same wrong capacity) and an OCV lookup of the voltage
corrected by the nominal IR drop.

Needs the ``[bench]`` extra for the simulation (``pip install -e '.[bench]'``)::

    .venv/bin/python bench/soc_accuracy.py              # both chemistries, accuracy table
    .venv/bin/python bench/soc_accuracy.py --fixture    # also rewrite tests/fixtures/soc/*.csv
    .venv/bin/python bench/soc_accuracy.py --timing     # step CPU time, 16 and 512 cells
    .venv/bin/python bench/soc_accuracy.py --matrix     # cross-validation (bench/soc_matrix.py)

Simulations are cached (``--cache``, default under the system temp dir) so re-runs are quick.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.core.chemistry import Chemistry, get_chemistry
from gateway.core.model import PackSnapshot
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator, pack_soc_pct

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "soc"
DAY_S = 24 * 3600

# What the BMS gets wrong (see the module docstring).
V_NOISE_V = 0.002
V_LSB_V = 0.001
FULL_SCALE_C = 2.0
I_OFFSET_FS = 0.002
I_GAIN = 0.005
T_LSB_C = 0.5
CAP_ERROR = 0.05
INIT_ERROR_PCT = 20.0
CONVERGED_PCT = 2.0
STAYS_PCT = 3.0


# --- the day ------------------------------------------------------------------------------


def home_day_c(seed: int = 1) -> list[float]:
    """Cell current (C-rate, positive = charging) for every second of a 24-hour day."""
    rng = random.Random(seed)
    i = [0.0] * DAY_S

    def fill(h0: float, h1: float, c: float) -> None:
        for t in range(int(h0 * 3600), int(h1 * 3600)):
            i[t] = c

    def pulse(h: float, minutes: float, c: float) -> None:
        t0 = int(h * 3600)
        for t in range(t0, min(DAY_S, t0 + int(minutes * 60))):
            i[t] += c

    # 00-06 night base load, the fridge every 50 minutes; a rest when the reserve is reached.
    fill(0.0, 3.0, -0.025)
    fill(4.5, 6.0, -0.025)
    for k in range(7):
        h = 0.2 + k * 0.83
        if not 3.0 <= h < 4.5:
            pulse(h, 8, -0.05)
    # 06-07:30 morning: breakfast, kettle and toaster pulses.
    fill(6.0, 7.5, -0.08)
    pulse(6.4, 3, -0.4)
    pulse(6.9, 4, -0.3)
    pulse(7.2, 2, -0.5)
    # 07:30-08:30 PV covers the house: rest.
    # 08:30-14:30 PV charge, a bell with passing clouds, minus the house.
    for t in range(int(8.5 * 3600), int(14.5 * 3600)):
        x = (t / 3600 - 8.5) / 6.0
        i[t] = 0.245 * math.sin(math.pi * x) - 0.02
    for _ in range(12):
        h = rng.uniform(9.0, 14.0)
        pulse(h, rng.uniform(2, 15), -rng.uniform(0.05, 0.15))
    # 14:30-17:30 rest near full (PV exported).
    # 17:30-22:30 evening discharge with cooking and the washing machine.
    fill(17.5, 22.5, -0.09)
    pulse(18.0, 20, -0.3)
    pulse(18.8, 5, -0.4)
    pulse(19.5, 45, -0.1)
    pulse(20.5, 10, -0.25)
    for _ in range(20):
        pulse(rng.uniform(17.5, 22.3), rng.uniform(0.5, 3), -rng.uniform(0.1, 0.4))
    # 22:30-24:00 rest at the reserve.
    return i


START_SOC = {"nmc": 0.60, "lfp": 0.60}


# --- the simulation (PyBaMM) --------------------------------------------------------------


@dataclass
class Truth:
    """One simulated day at 1 Hz."""

    chemistry: str
    capacity_ah: float
    t_s: list[float]
    current_a: list[float]  # positive = charging
    voltage_v: list[float]
    temp_c: list[float]
    soc_pct: list[float]
    sim_s: float


def _gen_ocv() -> Any:
    spec = importlib.util.spec_from_file_location("gen_ocv", REPO / "scripts" / "gen_ocv.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gen_ocv"] = mod
    spec.loader.exec_module(mod)
    return mod


def simulate(
    name: str,
    cache: Path,
    *,
    cap_factor: float = 1.0,
    start: float | None = None,
    scale: float = 1.0,
    tag: str = "",
) -> Truth:
    """Run (or load from ``cache``) the SPMe + lumped thermal day for chemistry ``name``.

    ``cap_factor`` scales the cell's capacity (electrode width), ``start`` is its initial SoC
    (0..1), ``scale`` scales the day's current (C-rates of the unscaled cell), so that cells of
    one series pack can be simulated one by one with the same current.
    """
    path = cache / f"{name}{tag}_day.csv"
    if path.is_file():
        cached = _read_truth(path, name)
        if charge_mismatch_pct(cached) <= MAX_CHARGE_MISMATCH_PCT:
            return cached
        print(f"{name}{tag}: cached day does not hold its own current's charge; simulating again")
    soc0 = START_SOC[name] if start is None else start
    import numpy as np
    import pybamm

    gen = _gen_ocv()
    spec = gen.CELLS[name]
    p = gen.parameter_values(spec)
    cap_ref = gen.electrode_capacity_ah(p)
    p["Electrode width [m]"] = p["Electrode width [m]"] * cap_factor
    cap = gen.electrode_capacity_ah(p)
    i_c = [scale * c for c in home_day_c()]
    t = np.arange(DAY_S + 1, dtype=float)
    # PyBaMM counts discharge as positive current. Sample k holds over (k, k+1].
    i_pb = -np.asarray([i_c[0], *i_c], dtype=float) * cap_ref
    p["Current function [A]"] = pybamm.Interpolant(t, i_pb, pybamm.t, interpolator="linear")
    model = pybamm.lithium_ion.SPMe(options={"thermal": "lumped"})
    solver = pybamm.IDAKLUSolver(rtol=1e-6, atol=1e-8)
    sim = pybamm.Simulation(model, parameter_values=p, solver=solver)
    t0 = time.perf_counter()
    # Stop at every jump of the current (see current_breakpoints).
    t_eval = np.asarray(current_breakpoints(i_pb, 1e-4 * cap_ref), dtype=float)
    sol = sim.solve(t_eval=t_eval, t_interp=t, initial_soc=soc0)
    sim_s = time.perf_counter() - t0
    ts = sol["Time [s]"].entries
    if ts[-1] < DAY_S - 1:
        raise RuntimeError(f"{name}: simulation stopped at {ts[-1]:.0f} s (voltage cut-off?)")
    q_dis = sol["Discharge capacity [A.h]"].entries
    truth = Truth(
        chemistry=name,
        capacity_ah=cap,
        t_s=[float(x) for x in ts],
        current_a=[-float(x) for x in sol["Current [A]"].entries],
        voltage_v=[float(x) for x in sol["Voltage [V]"].entries],
        temp_c=[float(x) for x in sol["X-averaged cell temperature [C]"].entries],
        soc_pct=[100.0 * (soc0 - float(q) / cap) for q in q_dis],
        sim_s=sim_s,
    )
    mismatch = charge_mismatch_pct(truth)
    if mismatch > MAX_CHARGE_MISMATCH_PCT:
        raise RuntimeError(f"{name}: the true SoC misses {mismatch:.3f} % of the current's charge")
    cache.mkdir(parents=True, exist_ok=True)
    _write_truth(path, truth, step=1)
    return truth


MAX_CHARGE_MISMATCH_PCT = 0.05
"""The most a simulated day's true SoC may differ from its start plus the charge of its own
current column (% of capacity; the 1 Hz trapezoid's error on this day is far below it)."""


def current_breakpoints(i_pb: Any, tol_a: float) -> list[float]:
    """Times (s) where the 1 Hz current ``i_pb`` (linear between samples) jumps by more than
    ``tol_a``: both ends of each such second, and the day's ends. Given to the solver as
    ``t_eval``, they make it stop at each jump instead of stepping over it."""
    n = len(i_pb) - 1
    pts = {0.0, float(n)}
    for k in range(1, n + 1):
        if abs(float(i_pb[k]) - float(i_pb[k - 1])) > tol_a:
            pts.add(float(k - 1))
            pts.add(float(k))
    return sorted(pts)


def charge_mismatch_pct(truth: Truth) -> float:
    """Largest |true SoC - (first SoC + counted charge)| over the day, % of capacity: the
    charge counted from the day's own current column (trapezoids)."""
    t, i, soc = truth.t_s, truth.current_a, truth.soc_pct
    acc = soc[0]
    worst = 0.0
    for k in range(1, len(t)):
        acc += 100.0 * 0.5 * (i[k] + i[k - 1]) * (t[k] - t[k - 1]) / 3600.0 / truth.capacity_ah
        worst = max(worst, abs(soc[k] - acc))
    return worst


def _write_truth(path: Path, tr: Truth, step: int, digits: int = 5) -> None:
    """CSV of the truth every ``step`` s; the current is the mean over each interval."""
    with path.open("w", newline="") as f:
        f.write(
            f"# {tr.chemistry} PyBaMM SPMe+lumped thermal, capacity_ah={tr.capacity_ah:.5f}, "
            f"bench/soc_accuracy.py\n"
        )
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["t_s", "current_a", "voltage_v", "temp_c", "true_soc_pct"])
        w.writerow(
            [
                0,
                f"{tr.current_a[0]:.{digits}f}",
                f"{tr.voltage_v[0]:.{digits}f}",
                f"{tr.temp_c[0]:.2f}",
                f"{tr.soc_pct[0]:.{digits - 1}f}",
            ]
        )
        for k in range(step, len(tr.t_s), step):
            # Mean current over (k - step, k]: trapezoids of the 1 Hz samples.
            # (At 1 s the sample itself, as the estimator sees it in the bench.)
            seg = tr.current_a[k - step : k + 1]
            mean_i = (math.fsum(seg) - 0.5 * (seg[0] + seg[-1])) / step if step > 1 else seg[-1]
            w.writerow(
                [
                    int(tr.t_s[k]),
                    f"{mean_i:.{digits}f}",
                    f"{tr.voltage_v[k]:.{digits}f}",
                    f"{tr.temp_c[k]:.2f}",
                    f"{tr.soc_pct[k]:.{digits - 1}f}",
                ]
            )


def _read_truth(path: Path, name: str) -> Truth:
    lines = path.read_text().splitlines()
    cap = float(lines[0].split("capacity_ah=")[1].split(",")[0])
    rows = list(csv.reader(lines[2:]))
    return Truth(
        chemistry=name,
        capacity_ah=cap,
        t_s=[float(r[0]) for r in rows],
        current_a=[float(r[1]) for r in rows],
        voltage_v=[float(r[2]) for r in rows],
        temp_c=[float(r[3]) for r in rows],
        soc_pct=[float(r[4]) for r in rows],
        sim_s=math.nan,
    )


# --- what the BMS sees, and the three estimators ------------------------------------------


def snapshot(
    t_s: float, volts: list[float | None], current_a: float | None, temp_c: float | None
) -> PackSnapshot:
    """A complete, fresh snapshot of a pack of ``len(volts)`` cells."""
    n = len(volts)
    return PackSnapshot(
        t_s=t_s,
        cell_voltage_v=tuple(volts),
        cell_voltage_age_s=(0.0,) * n,
        cell_temp_c=(temp_c,),
        cell_temp_age_s=(0.0,),
        current_a=current_a,
        current_age_s=0.0,
        pack_voltage_v=None,
        pack_voltage_age_s=None,
        balancing_active=(False,) * n,
        complete=True,
    )


@dataclass
class Result:
    """Errors of one estimator against the truth."""

    name: str
    rmse_pct: float
    max_after_30min_pct: float
    rmse_after_8h_pct: float  # once the day has passed the steep low end (LFP: observable again)
    first_within_s: float | None  # first time within CONVERGED_PCT
    stays_within_s: float | None  # from when on the error stays within STAYS_PCT
    final_err_pct: float
    # Honesty of the reported sigma, after the first 5 minutes: share of samples with
    # |error| <= 3 sigma, and the worst |error| / sigma.
    covered_pct: float = math.nan
    worst_ratio: float = math.nan


def coverage(t_s: list[float], err: list[float], sigma: list[float]) -> tuple[float, float]:
    """After 5 minutes: % of samples with |err| <= 3 sigma, and the largest |err| / sigma."""
    pairs = [(abs(e), s) for t, e, s in zip(t_s, err, sigma, strict=True) if t >= 300.0]
    ok = sum(1 for e, s in pairs if e <= 3.0 * s)
    return 100.0 * ok / len(pairs), max(e / s for e, s in pairs)


def score(
    name: str,
    t_s: list[float],
    est: list[float],
    truth: list[float],
    sigma: list[float] | None = None,
) -> Result:
    """RMSE over the day, max error after 30 minutes, two convergence times, sigma honesty."""
    err = [e - tr for e, tr in zip(est, truth, strict=True)]
    rmse = math.sqrt(math.fsum(e * e for e in err) / len(err))
    late = [abs(e) for t, e in zip(t_s, err, strict=True) if t >= 1800.0]
    first = next((t for t, e in zip(t_s, err, strict=True) if abs(e) <= CONVERGED_PCT), None)
    stays: float | None = t_s[0]
    for k in range(len(err) - 1, -1, -1):
        if abs(err[k]) > STAYS_PCT:
            stays = t_s[k + 1] if k + 1 < len(t_s) else None
            break
    after8 = [e for t, e in zip(t_s, err, strict=True) if t >= 8 * 3600.0]
    rmse8 = math.sqrt(math.fsum(e * e for e in after8) / len(after8))
    res = Result(name, rmse, max(late), rmse8, first, stays, err[-1])
    if sigma is not None:
        res.covered_pct, res.worst_ratio = coverage(t_s, err, sigma)
    return res


def run(
    truth: Truth, seed: int = 7, config: SocConfig | None = None, cold: bool = False
) -> dict[str, Any]:
    """Feed the BMS view of ``truth`` to the estimator and the two baselines; score them.

    ``cold``: start from the OCV of the first sample instead of the wrong restored state.
    """
    rng = random.Random(seed)
    chem = get_chemistry(truth.chemistry)
    cap_true = truth.capacity_ah
    cap_cfg = cap_true * (1.0 + CAP_ERROR)
    pack = PackConfig(cells=1, temp_sensors=1, chemistry=truth.chemistry, capacity_ah=cap_cfg)
    est = SocEstimator(config or SocConfig(), pack, chem)
    offset_a = I_OFFSET_FS * FULL_SCALE_C * cap_true

    def measure(k: int) -> tuple[float, float, float]:
        v = truth.voltage_v[k] + rng.gauss(0.0, V_NOISE_V)
        v = round(v / V_LSB_V) * V_LSB_V
        i = truth.current_a[k] * (1.0 + I_GAIN) + offset_a
        tc = round(truth.temp_c[k] / T_LSB_C) * T_LSB_C
        return v, i, tc

    # A stale state: the right pack, the SoC 20 points off (towards the middle of the range).
    v0, i0, tc0 = measure(0)
    est.step(snapshot(truth.t_s[0], [v0], i0, tc0), truth.t_s[0])
    state = est.export_state()
    true0 = truth.soc_pct[0]
    wrong0 = true0 + INIT_ERROR_PCT if true0 < 50.0 else true0 - INIT_ERROR_PCT
    if cold:
        wrong0 = state["soc_pct"][0]
    else:
        state["soc_pct"] = [wrong0]
        state["soc_var"] = [0.0]
        est.restore(state)

    cc = wrong0
    ekf: list[float] = []
    count: list[float] = []
    ocv: list[float] = []
    sigma: list[float] = []
    r0_nom = chem.r0_ohm(cap_cfg)
    last_t = truth.t_s[0]
    step_time = 0.0
    for k, t in enumerate(truth.t_s):
        v, i, tc = measure(k)
        t0 = time.perf_counter()
        rep = est.step(snapshot(t, [v], i, tc), t)
        step_time += time.perf_counter() - t0
        assert rep is not None
        ekf.append(rep.cells[0].soc_pct)
        sigma.append(rep.cells[0].soc_sigma_pct)
        cc = min(100.0, max(0.0, cc + 100.0 * i * (t - last_t) / 3600.0 / cap_cfg))
        last_t = t
        count.append(cc)
        ocv.append(chem.ocv_soc(v - r0_nom * chem.r_temp_factor(tc) * i, tc))
    final = est.report()
    assert final is not None
    return {
        "results": [
            score("estimator (EKF)", truth.t_s, ekf, truth.soc_pct, sigma),
            score("coulomb counting", truth.t_s, count, truth.soc_pct),
            score("OCV lookup (IR-corrected)", truth.t_s, ocv, truth.soc_pct),
        ],
        "capacity_ah": final.cells[0].capacity_ah,
        "capacity_true_ah": cap_true,
        "capacity_cfg_ah": cap_cfg,
        "r0_mohm": final.cells[0].resistance_mohm,
        "r0_nominal_mohm": chem.r0_ohm(cap_true) * 1000.0,
        "sigma_final_pct": sigma[-1],
        "us_per_step": 1e6 * step_time / len(truth.t_s),
        "series": (ekf, count, ocv, sigma),
    }


# --- a pack of unequal cells --------------------------------------------------------------

PACK_CELLS = ((1.00, 0.60), (0.95, 0.63), (1.04, 0.57), (0.92, 0.61))  # capacity factor, start


def run_pack(name: str, cache: Path, seed: int = 11) -> dict[str, Any]:
    """Four unequal cells in series (one current), from a cold start (SoC from OCV)."""
    truths = [
        simulate(name, cache, cap_factor=f, start=s0, scale=0.9, tag=f"_pack{k}")
        for k, (f, s0) in enumerate(PACK_CELLS)
    ]
    rng = random.Random(seed)
    chem = get_chemistry(name)
    cap_ref = truths[0].capacity_ah / PACK_CELLS[0][0]
    cap_cfg = cap_ref * (1.0 + CAP_ERROR)
    n = len(truths)
    pack = PackConfig(cells=n, temp_sensors=1, chemistry=name, capacity_ah=cap_cfg)
    est = SocEstimator(SocConfig(), pack, chem)
    offset_a = I_OFFSET_FS * FULL_SCALE_C * cap_ref
    t_s = truths[0].t_s
    err: list[list[float]] = [[] for _ in range(n)]
    sig: list[list[float]] = [[] for _ in range(n)]
    rel_err: list[list[float]] = [[] for _ in range(n)]
    rel_sig: list[list[float]] = [[] for _ in range(n)]
    pack_err: list[float] = []
    for k, t in enumerate(t_s):
        volts: list[float | None] = [
            round((tr.voltage_v[k] + rng.gauss(0.0, V_NOISE_V)) / V_LSB_V) * V_LSB_V
            for tr in truths
        ]
        i = truths[0].current_a[k] * (1.0 + I_GAIN) + offset_a
        tc = round(truths[0].temp_c[k] / T_LSB_C) * T_LSB_C
        rep = est.step(snapshot(t, volts, i, tc), t)
        assert rep is not None
        true = [tr.soc_pct[k] for tr in truths]
        rel = est.relative_sigma_pct()
        assert rel is not None
        errs = [rep.cells[j].soc_pct - true[j] for j in range(n)]
        for j in range(n):
            err[j].append(errs[j])
            sig[j].append(rep.cells[j].soc_sigma_pct)
            # A cell against the others: its error less the others' mean error (what a
            # balancing decision sees), against its relative sigma (+ the others', averaged).
            others = [errs[x] for x in range(n) if x != j]
            rel_err[j].append(errs[j] - math.fsum(others) / len(others))
            rel_sig[j].append(
                math.sqrt(
                    rel[j] ** 2 + math.fsum(rel[x] ** 2 for x in range(n) if x != j) / (n - 1) ** 2
                )
            )
        true_pack = pack_soc_pct(min(true), max(true))
        pack_err.append(rep.soc_pct - true_pack)
    final = est.report()
    assert final is not None
    cells = []
    for j, tr in enumerate(truths):
        r = score(
            f"cell {j}",
            t_s,
            [e + x for e, x in zip(err[j], tr.soc_pct, strict=True)],
            tr.soc_pct,
            sig[j],
        )
        rel_cov = coverage(t_s, rel_err[j], rel_sig[j])
        rel_rms = math.sqrt(math.fsum(e * e for e in rel_err[j]) / len(rel_err[j]))
        cells.append((r, tr.capacity_ah, final.cells[j].capacity_ah, rel_cov, rel_rms))
    true_soh = 100.0 * min(tr.capacity_ah for tr in truths) / cap_cfg
    return {
        "cells": cells,
        "pack_rmse_pct": math.sqrt(math.fsum(e * e for e in pack_err) / len(pack_err)),
        "pack_max_after_30min_pct": max(
            abs(e) for t, e in zip(t_s, pack_err, strict=True) if t >= 1800.0
        ),
        "soh_pct": final.soh_pct,
        "true_soh_pct": true_soh,
        "cap_cfg_ah": cap_cfg,
    }


# --- step time ----------------------------------------------------------------------------


def timing(cells: int, chem: Chemistry, steps: int = 600, per_step: int | None = None) -> float:
    """Mean CPU time of a step in microseconds for ``cells`` cells under a varying current.

    ``per_step``: ``soc.cells_per_step`` (``None``: the default).
    """
    pack = PackConfig(cells=cells, temp_sensors=max(1, cells // 4), chemistry=chem.name)
    # Every step does the full work (no rate limit): the cost of one processed step.
    cfg = SocConfig(min_interval_s=0.0)
    if per_step is not None:
        cfg = SocConfig(min_interval_s=0.0, cells_per_step=per_step)
    est = SocEstimator(cfg, pack, chem)
    rng = random.Random(3)
    base = [chem.ocv.voltage(40.0 + 20.0 * rng.random()) for _ in range(cells)]
    m = pack.temp_sensors
    snaps = []
    for k in range(steps):
        t = 0.1 * k
        cur = 30.0 * math.sin(k / 50.0)
        volts = tuple(b + 0.001 * cur + rng.gauss(0, 0.002) for b in base)
        snaps.append(
            PackSnapshot(
                t_s=t,
                cell_voltage_v=volts,
                cell_voltage_age_s=(0.0,) * cells,
                cell_temp_c=(25.0,) * m,
                cell_temp_age_s=(0.0,) * m,
                current_a=cur,
                current_age_s=0.0,
                pack_voltage_v=None,
                pack_voltage_age_s=None,
                balancing_active=(False,) * cells,
                complete=True,
            )
        )
    est.step(snaps[0], 0.0)
    # CPU time of this process, not wall time: on a shared machine the wall clock also counts
    # the time other processes held the core.
    t0 = time.process_time()
    for s in snaps[1:]:
        est.step(s, s.t_s)
    return 1e6 * (time.process_time() - t0) / (steps - 1)


# --- command line -------------------------------------------------------------------------


def _minutes(t_s: float | None) -> str:
    if t_s is None:
        return "never"
    return f"{t_s:.0f} s" if t_s < 120.0 else f"{t_s / 60:.1f} min"


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chemistry", choices=("nmc", "lfp"), action="append")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "bmsgw-soc-bench")
    ap.add_argument("--fixture", action="store_true", help="rewrite tests/fixtures/soc/*.csv")
    ap.add_argument("--timing", action="store_true", help="only the step time (no PyBaMM)")
    ap.add_argument("--pack", action="store_true", help="also four unequal cells in series")
    ap.add_argument(
        "--matrix",
        action="store_true",
        help="the cross-validation matrix instead (bench/soc_matrix.py; its options follow)",
    )
    args, rest = ap.parse_known_args()
    if args.matrix:
        import soc_matrix

        # The cache option is this parser's; hand it on.
        sys.argv = [str(Path(__file__).parent / "soc_matrix.py"), "--cache", str(args.cache), *rest]
        soc_matrix.main()
        return
    if rest:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")

    if args.timing:
        for name in ("lfp", "nmc"):
            chem = get_chemistry(name)
            for cells, per in ((16, None), (512, None), (512, 512)):
                us = timing(cells, chem, per_step=per)
                default = SocConfig().cells_per_step
                how = "every cell weighed" if per else f"{min(cells, default)} cells weighed"
                print(
                    f"step time {name} {cells:4d} cells ({how}): {us / 1000:7.3f} ms/step "
                    f"({us / cells:5.2f} us/cell; at 10 Hz {us / 1e3:5.2f} % of one core)"
                )
        return

    for name in args.chemistry or ["nmc", "lfp"]:
        t0 = time.perf_counter()
        truth = simulate(name, args.cache)
        wall = time.perf_counter() - t0
        if args.fixture:
            FIXTURES.mkdir(parents=True, exist_ok=True)
            _write_truth(FIXTURES / f"{name}_day.csv", truth, step=10, digits=4)
        out = run(truth)
        if name == "lfp":
            # For information only: the same day with the plateau voltage used. PyBaMM's LFP
            # has no hysteresis, a real cell's 10-30 mV would mislead this by tens of points.
            flat = run(truth, config=SocConfig(min_ocv_slope_mv_per_pct=0.2))["results"][0]
            flat.name = "estimator, plateau used (0.2 mV/%)"
            out["results"].append(flat)
        cold = run(truth, cold=True)["results"][0]
        cold.name = "estimator, cold start from OCV"
        out["results"].append(cold)
        lo, hi = min(truth.soc_pct), max(truth.soc_pct)
        sim = f"{truth.sim_s:.0f} s" if math.isfinite(truth.sim_s) else f"cached, {wall:.1f} s"
        print(
            f"\n{name.upper()} ({get_chemistry(name).source}): 24 h at 1 Hz, true SoC "
            f"{lo:.1f}..{hi:.1f} %, simulation {sim}"
        )
        print(
            f"  {'method':34s} {'RMSE %':>7s} {'max>30min %':>11s} {'RMSE 8-24h':>10s} "
            f"{'within 2 % at':>13s} "
            f"{'stays in 3 % from':>17s} {'final err %':>11s} {'<=3 sigma %':>11s} "
            f"{'worst err/sigma':>15s}"
        )
        for r in out["results"]:
            print(
                f"  {r.name:34s} {r.rmse_pct:7.2f} {r.max_after_30min_pct:11.2f} "
                f"{r.rmse_after_8h_pct:10.2f} "
                f"{_minutes(r.first_within_s):>13s} {_minutes(r.stays_within_s):>17s} "
                f"{r.final_err_pct:11.2f} {r.covered_pct:11.1f} {r.worst_ratio:15.1f}"
            )
        print(
            f"  capacity: true {out['capacity_true_ah']:.3f} Ah, configured "
            f"{out['capacity_cfg_ah']:.3f}, estimated {out['capacity_ah']:.3f}; "
            f"R0 nominal {out['r0_nominal_mohm']:.1f} mOhm, estimated {out['r0_mohm']:.1f}; "
            f"final sigma {out['sigma_final_pct']:.2f} %; {out['us_per_step']:.1f} us/step"
        )
        if args.pack:
            pk = run_pack(name, args.cache)
            print(
                f"  pack of {len(PACK_CELLS)} unequal cells in series (capacity x "
                f"{', '.join(f'{f:g}' for f, _ in PACK_CELLS)}; start "
                f"{', '.join(f'{s0 * 100:g}' for _, s0 in PACK_CELLS)} %), SoC from OCV:"
            )
            for r, cap_true, cap_est, rel_cov, rel_rms in pk["cells"]:
                print(
                    f"    {r.name}: RMSE {r.rmse_pct:.2f} %, max>30min "
                    f"{r.max_after_30min_pct:.2f} %, RMSE 8-24h {r.rmse_after_8h_pct:.2f} %; "
                    f"capacity true {cap_true:.3f} Ah, estimated {cap_est:.3f}; "
                    f"|err| <= 3 sigma {r.covered_pct:.1f} % (worst {r.worst_ratio:.1f} sigma); "
                    f"against the others: RMS {rel_rms:.2f} %, <= 3 rel. sigma "
                    f"{rel_cov[0]:.1f} % (worst {rel_cov[1]:.1f})"
                )
            print(
                f"    pack SoC (blended) against the true cells' blend: RMSE "
                f"{pk['pack_rmse_pct']:.2f} %, max>30min {pk['pack_max_after_30min_pct']:.2f} %; "
                f"SoH estimated {pk['soh_pct']:.1f} %, true {pk['true_soh_pct']:.1f} % "
                f"(of the configured {pk['cap_cfg_ah']:.3f} Ah)"
            )


if __name__ == "__main__":
    main()
