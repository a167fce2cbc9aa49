"""SoC accuracy on a recorded PyBaMM day (no PyBaMM needed): a looser bound than the bench.

``tests/fixtures/soc/<chem>_day.csv`` is written by ``bench/soc_accuracy.py --fixture``: the
SPMe + lumped thermal model's day every 10 s (current = mean over the interval, voltage and
temperature at the sample, true SoC from the model's coulomb count). The estimator gets the same
errors as in the bench: voltage noise and quantisation, current offset and gain, a capacity 5 %
high, and a start 20 points off.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from pathlib import Path

import pytest

from gateway.core.chemistry import get_chemistry
from gateway.core.freshness import TimeoutsConfig
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from tests.core.test_soc import snap

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "soc"


def _load(name: str) -> tuple[float, list[list[float]]]:
    lines = (FIXTURES / f"{name}_day.csv").read_text().splitlines()
    cap = float(lines[0].split("capacity_ah=")[1].split(",")[0])
    rows = [[float(x) for x in r] for r in csv.reader(lines[2:])]
    return cap, rows


def _run(name: str) -> tuple[list[float], list[float], list[float], float, float]:
    cap_true, rows = _load(name)
    rng = random.Random(5)
    cap_cfg = cap_true * 1.05
    chem = get_chemistry(name)
    pack = PackConfig(cells=1, temp_sensors=1, chemistry=name, capacity_ah=cap_cfg)
    # Samples every 10 s: a value is fresh for that long (the default expects 1 Hz or faster).
    ages = TimeoutsConfig(cell_voltage_timeout_s=15.0, current_timeout_s=15.0)
    est = SocEstimator(SocConfig(), pack, chem, ages)
    offset_a = 0.002 * 2.0 * cap_true  # 0.2 % of a 2C full scale

    def bms(row: list[float]) -> tuple[float, float, float]:
        v = round((row[2] + rng.gauss(0.0, 0.002)) / 0.001) * 0.001
        return v, row[1] * 1.005 + offset_a, round(row[3] * 2) / 2

    v, i, tc = bms(rows[0])
    est.step(snap(rows[0][0], [v], i, temp_c=tc), rows[0][0])
    state = est.export_state()
    true0 = rows[0][4]
    wrong0 = true0 + 20.0 if true0 < 50.0 else true0 - 20.0
    state["soc_pct"] = [wrong0]
    state["soc_var"] = [0.0]
    est.restore(state)
    t_s, ekf, count = [], [], []
    cc = wrong0
    last = rows[0][0]
    for row in rows:
        t = row[0]
        v, i, tc = bms(row)
        rep = est.step(snap(t, [v], i, temp_c=tc), t)
        assert rep is not None
        cc = min(100.0, max(0.0, cc + 100.0 * i * (t - last) / 3600.0 / cap_cfg))
        last = t
        t_s.append(t)
        ekf.append(rep.cells[0].soc_pct - row[4])
        count.append(cc - row[4])
    final = est.report()
    assert final is not None
    return t_s, ekf, count, final.cells[0].capacity_ah, cap_true


def _rmse(err: list[float]) -> float:
    return math.sqrt(math.fsum(e * e for e in err) / len(err))


def charge_mismatch_pct(cap_ah: float, rows: list[list[float]]) -> float:
    """Largest |true SoC - (first true SoC + the charge of the day's own current)|, % of
    capacity. The current of a row is the mean over the interval before it, so the count is
    exact up to the file's rounding: a day whose simulated cell did not see its current (a
    solver that stepped over a pulse) shows here."""
    acc = rows[0][4]
    worst = 0.0
    for prev, row in itertools.pairwise(rows):
        acc += 100.0 * row[1] * (row[0] - prev[0]) / 3600.0 / cap_ah
        worst = max(worst, abs(row[4] - acc))
    return worst


@pytest.mark.parametrize("name", ["nmc", "lfp"])
def test_fixture_day_holds_the_charge_of_its_own_current(name: str) -> None:
    cap, rows = _load(name)
    assert charge_mismatch_pct(cap, rows) <= 0.05


def test_nmc_day_from_pybamm_is_tracked_within_a_loose_bound() -> None:
    t_s, ekf, count, cap_est, cap_true = _run("nmc")
    late = [abs(e) for t, e in zip(t_s, ekf, strict=True) if t >= 1800.0]
    # The bench's targets (RMSE <= 1 %, max <= 3 %), on 10 s data; the bench measures 0.27 % and
    # 0.83 % at 1 Hz (the day simulated with the current's breakpoints, 2026-11-30), this run
    # about 0.3 % and 0.8 %: room for noise, not for a regression.
    assert _rmse(ekf) < 1.0
    assert max(late) < 3.0
    assert _rmse(ekf) < _rmse(count) / 5  # far better than counting coulombs
    # The charge counted between full-ish rests and the evening's end measures the capacity.
    assert cap_est == pytest.approx(cap_true, rel=0.03)


def test_lfp_day_from_pybamm_beats_counting_and_ends_recalibrated() -> None:
    t_s, ekf, count, cap_est, cap_true = _run("lfp")
    # On the flat middle a start 20 points off cannot be seen; once the day has passed the
    # steep ends it is corrected (see docs/PERFORMANCE.md for the honest figures).
    assert _rmse(ekf) < _rmse(count) / 2
    after_morning = [abs(e) for t, e in zip(t_s, ekf, strict=True) if t >= 8 * 3600.0]
    assert _rmse(after_morning) < 3.0
    assert abs(ekf[-1]) < 1.0
    # Issue 12: with the OCV hysteresis allowed for (10 mV, which PyBaMM does not model) this
    # day has no second confident anchor 30 points from the first, so the capacity stays at
    # the configured +5 % (was learned to -1.2 % before); it must not get worse.
    assert cap_est == pytest.approx(cap_true, rel=0.055)


def _cold_run(name: str) -> tuple[list[float], list[float], list[float]]:
    """The same day with the same sensor errors, started from the OCV of the first sample."""
    cap_true, rows = _load(name)
    rng = random.Random(7)
    pack = PackConfig(cells=1, temp_sensors=1, chemistry=name, capacity_ah=cap_true * 1.05)
    # Default timeouts (5 s) on 10 s samples: the estimator must hold the current across steps.
    est = SocEstimator(SocConfig(), pack, get_chemistry(name))
    offset_a = 0.002 * 2.0 * cap_true
    t_s, err, sigma = [], [], []
    for row in rows:
        v = round((row[2] + rng.gauss(0.0, 0.002)) / 0.001) * 0.001
        rep = est.step(snap(row[0], [v], row[1] * 1.005 + offset_a, temp_c=row[3]), row[0])
        assert rep is not None
        t_s.append(row[0])
        err.append(rep.cells[0].soc_pct - row[4])
        sigma.append(rep.cells[0].soc_sigma_pct)
    return t_s, err, sigma


@pytest.mark.parametrize("name", ["nmc", "lfp"])
def test_reported_sigma_covers_the_true_error_all_day(name: str) -> None:
    # Honest uncertainty: after the first minutes, |error| <= 3 sigma at every sample (the
    # balancing planner waits on sigma; a confident wrong estimate would make it act).
    t_s, err, sigma = _cold_run(name)
    late = [(t, e, s) for t, e, s in zip(t_s, err, sigma, strict=True) if t >= 300.0]
    worst = max(late, key=lambda x: abs(x[1]) / x[2])
    assert abs(worst[1]) <= 3.0 * worst[2], (
        f"at {worst[0]:.0f} s: error {worst[1]:.2f} %, sigma {worst[2]:.2f} %"
    )
    # ... and the sigma is not honest by being useless: small once the day passed a steep part.
    after_morning = [e for t, e in zip(t_s, err, strict=True) if t >= 8 * 3600.0]
    # LFP: 0.99 before issue 12, 2.29 since (identified resistances on PyBaMM's LFP, whose
    # diffusion a 1-RC circuit does not hold; see docs/PERFORMANCE.md).
    assert _rmse(after_morning) < (2.5 if name == "lfp" else 1.0)
    assert sigma[-1] < 1.0


def _run_every(name: str, every: int) -> tuple[float, float, float, float]:
    """The day stepped every ``every`` rows (mean current over them, the last voltage), cold
    start; returns RMSE, max |error| after 30 min (% SoC), identified R0 and R1 (ohm)."""
    cap, rows = _load(name)
    agg = [rows[0]]
    for k in range(every, len(rows), every):
        mean_i = math.fsum(r[1] for r in rows[k - every + 1 : k + 1]) / every
        agg.append([rows[k][0], mean_i, rows[k][2], rows[k][3], rows[k][4]])
    dt = agg[1][0] - agg[0][0]
    pack = PackConfig(cells=1, temp_sensors=1, chemistry=name, capacity_ah=cap)
    ages = TimeoutsConfig(cell_voltage_timeout_s=dt, current_timeout_s=dt)
    est = SocEstimator(SocConfig(), pack, get_chemistry(name), ages)
    rng = random.Random(5)
    offset_a = 0.002 * 2.0 * cap
    t_s, err = [], []
    for r in agg:
        v = round((r[2] + rng.gauss(0.0, 0.002)) / 0.001) * 0.001
        rep = est.step(snap(r[0], [v], r[1] * 1.005 + offset_a, temp_c=round(r[3] * 2) / 2), r[0])
        assert rep is not None
        t_s.append(r[0])
        err.append(rep.cells[0].soc_pct - r[4])
    late = max(abs(e) for t, e in zip(t_s, err, strict=True) if t >= 1800.0)
    cell = est.cells[0]
    return _rmse(err), late, cell.r0_ohm_25c, cell.r1_ohm_25c


def test_the_same_day_at_10_s_and_60_s_steps_agree() -> None:
    # No step-size assumption: the filters, the count, the identification and the averages
    # advance by the time between samples. Measured: 0.31 / 1.01, R0 33.0, R1 19.0 mOhm at
    # 10 s; 0.36 / 1.08, 33.3, 18.8 at 60 s (the current the mean over the step, as a BMS
    # that integrates it reports).
    rmse10, max10, r0_10, r1_10 = _run_every("nmc", 1)
    rmse60, max60, r0_60, r1_60 = _run_every("nmc", 6)
    assert abs(rmse60 - rmse10) <= 0.2
    assert abs(max60 - max10) <= 0.5
    assert r0_60 == pytest.approx(r0_10, rel=0.1)
    assert r1_60 == pytest.approx(r1_10, rel=0.15)
