"""SoC estimator: start from OCV, correction, rest, full, capacity, resistance, state, pack SoC."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from gateway.core.chemistry import Chemistry, get_chemistry
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import PackSnapshot, SocReport
from gateway.core.pack import PackConfig
from gateway.core.soc import STATE_VERSION, SocConfig, SocEstimator, pack_soc_pct

# --- a small equivalent-circuit pack to drive the estimator -------------------------------


@dataclass
class EcmPack:
    """Cells as OCV + R0 + R1||C1 (+ the chemistry's slow R2||C2, none for the built-ins), the
    structure the estimator assumes (other values)."""

    chem: Chemistry
    soc_pct: list[float]
    capacity_ah: list[float]
    r0_factor: float = 1.0
    noise_v: float = 0.0
    seed: int = 1
    v1: list[float] = field(default_factory=list)
    v2: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.v1 = [0.0] * len(self.soc_pct)
        self.v2 = [0.0] * len(self.soc_pct)
        self.rng = random.Random(self.seed)

    def step(self, current_a: float, dt_s: float) -> list[float]:
        """Move ``dt_s`` at ``current_a`` (positive = charging); return the cell voltages."""
        chem = self.chem
        a = math.exp(-dt_s / chem.tau1_s)
        a2 = math.exp(-dt_s / chem.tau2_s)
        out = []
        for k, cap in enumerate(self.capacity_ah):
            self.soc_pct[k] += 100.0 * current_a * dt_s / 3600.0 / cap
            self.v1[k] = a * self.v1[k] + chem.r1_ohm(cap) * (1 - a) * current_a
            self.v2[k] = a2 * self.v2[k] + chem.r2_ohm(cap) * (1 - a2) * current_a
            r0 = chem.r0_ohm(cap) * self.r0_factor
            soc = self.soc_pct[k]
            v = chem.ocv.voltage(soc) + self.v1[k] + self.v2[k] + r0 * current_a
            if soc > 100.0:
                v += 0.05 * (soc - 100.0)  # overcharged: the voltage shoots up
            out.append(v + self.rng.gauss(0.0, self.noise_v) if self.noise_v else v)
        return out


def snap(
    t_s: float,
    volts: list[float | None],
    current_a: float | None,
    *,
    temp_c: float | None = 25.0,
    v_age_s: float = 0.0,
    i_age_s: float | None = 0.0,
) -> PackSnapshot:
    """A snapshot of ``len(volts)`` cells with one temperature sensor."""
    n = len(volts)
    return PackSnapshot(
        t_s=t_s,
        cell_voltage_v=tuple(volts),
        cell_voltage_age_s=tuple(None if v is None else v_age_s for v in volts),
        cell_temp_c=(temp_c,),
        cell_temp_age_s=(0.0,),
        current_a=current_a,
        current_age_s=i_age_s if current_a is not None else None,
        pack_voltage_v=None,
        pack_voltage_age_s=None,
        balancing_active=(False,) * n,
        complete=None not in volts and current_a is not None,
    )


def make(
    chem_name: str = "nmc", cells: int = 4, capacity_ah: float = 100.0, **cfg: float
) -> tuple[SocEstimator, Chemistry]:
    chem = get_chemistry(chem_name)
    pack = PackConfig(cells=cells, chemistry=chem_name, capacity_ah=capacity_ah)
    return SocEstimator(SocConfig(**cfg), pack, chem), chem


def drive(
    est: SocEstimator,
    pack: EcmPack,
    currents_a: list[float],
    t0_s: float = 0.0,
    dt_s: float = 1.0,
) -> tuple[SocReport, float]:
    """Run the pack and the estimator through ``currents_a`` (one per ``dt_s``)."""
    t = t0_s
    rep = None
    for i in currents_a:
        volts = pack.step(i, dt_s)
        t += dt_s
        rep = est.step(snap(t, list(volts), i), t)
    assert rep is not None
    return rep, t


# --- tests --------------------------------------------------------------------------------


def test_no_report_until_every_cell_has_a_valid_voltage() -> None:
    est, chem = make(cells=3)
    v = chem.ocv.voltage(50.0)
    assert est.step(snap(0.0, [None, None, None], 0.0), 0.0) is None
    assert est.step(snap(1.0, [v, math.nan, v], 0.0), 1.0) is None
    assert est.step(snap(2.0, [v, None, v], None), 2.0) is None
    rep = est.step(snap(3.0, [v, v, v], 0.0), 3.0)
    assert rep is not None
    assert len(rep.cells) == 3


@pytest.mark.parametrize("soc", [5.0, 20.0, 50.0, 80.0, 96.0])
def test_initial_soc_comes_from_the_ocv_of_the_first_voltages(soc: float) -> None:
    est, chem = make("nmc", cells=2)
    r0 = chem.r0_ohm(100.0)
    # Under a 50 A charge the IR drop is taken out of the voltage.
    volts = [chem.ocv.voltage(soc) + r0 * 50.0, chem.ocv.voltage(soc + 2.0) + r0 * 50.0]
    rep = est.step(snap(0.0, list(volts), 50.0), 0.0)
    assert rep is not None
    assert rep.cells[0].soc_pct == pytest.approx(soc, abs=0.3)
    assert rep.cells[1].soc_pct == pytest.approx(soc + 2.0, abs=0.3)
    for c in rep.cells:
        assert 0.0 < c.soc_sigma_pct < 10.0


def test_flat_lfp_start_is_honestly_uncertain() -> None:
    est, chem = make("lfp", cells=1)
    rep = est.step(snap(0.0, [chem.ocv.voltage(55.0)], 0.0), 0.0)
    assert rep is not None
    assert rep.cells[0].soc_sigma_pct > 10.0


def test_ekf_corrects_a_wrong_restored_soc_on_nmc() -> None:
    est, chem = make("nmc", cells=2)
    pack = EcmPack(chem, [60.0, 40.0], [100.0, 100.0], r0_factor=1.2, noise_v=0.002)
    drive(est, pack, [0.0])
    state = est.export_state()
    state["soc_pct"] = [80.0, 20.0]  # 20 points off each way
    state["soc_var"] = [0.0, 0.0]
    est.restore(state)
    # A correction under load beyond what the count allows needs lasting evidence (the same
    # innovation sign while charging and discharging): a second cycle.
    profile = ([-30.0] * 600 + [0.0] * 300 + [40.0] * 600 + [-60.0] * 300) * 2
    rep, _ = drive(est, pack, profile)
    for c, true in zip(rep.cells, pack.soc_pct, strict=True):
        assert c.soc_pct == pytest.approx(true, abs=1.5)


def test_counting_follows_the_charge_on_the_flat_lfp_middle() -> None:
    est, chem = make("lfp", cells=1)
    pack = EcmPack(chem, [50.0], [100.0])
    rep0, t = drive(est, pack, [0.0])
    start = rep0.cells[0].soc_pct
    sigma0 = rep0.cells[0].soc_sigma_pct
    # 10 Ah in over an hour: +10 % on the count, the voltage (flat) must not drag it elsewhere.
    rep, _ = drive(est, pack, [10.0] * 3600, t0_s=t)
    assert rep.cells[0].soc_pct - start == pytest.approx(10.0, abs=0.3)
    # Nothing observed the SoC: the uncertainty only grew.
    assert rep.cells[0].soc_sigma_pct > sigma0 - 1e-9


def _rest_after_discharge(
    est: SocEstimator,
    pack: EcmPack,
    discharge_a: float,
    discharge_s: int,
    rest_s: int,
    t0_s: float = 0.0,
) -> SocReport:
    t = t0_s
    rep = None
    for k in range(1 + discharge_s + rest_s):
        i = discharge_a if 0 < k <= discharge_s else 0.0
        volts = pack.step(i, 1.0)
        t += 1.0
        rep = est.step(snap(t, list(volts), i), t)
    assert rep is not None
    return rep


def test_a_long_rest_on_the_steep_is_read_as_its_mean_not_one_noisy_sample() -> None:
    # 2 mV noise, 9 mV per point at 30 % (nmc): one sample says +-0.2 points, 900 of them
    # +-0.01. A 1.5 h rest after a discharge: each rest_s from the second on recalibrates on
    # the mean of its block (before: on its last sample alone, 0.29 points off at worst).
    est, chem = make("nmc", cells=8)
    pack = EcmPack(chem, [60.0] * 8, [100.0] * 8, noise_v=0.002, seed=3)
    rep = _rest_after_discharge(est, pack, -20.0, 5400, 5400)
    errs = [abs(c.soc_pct - s) for c, s in zip(rep.cells, pack.soc_pct, strict=True)]
    assert max(errs) < 0.05
    assert all(e < 3.0 * c.soc_sigma_pct for e, c in zip(errs, rep.cells, strict=True))


def test_a_long_rest_on_the_plateau_keeps_the_count() -> None:
    # On LFP's plateau however long the rest and however precise its mean, the voltage cannot
    # tell 52 % from 58 % once the hysteresis is allowed for: the estimate stays the count's.
    est, chem = make("lfp", cells=2)
    pack = EcmPack(chem, [62.0] * 2, [100.0] * 2, noise_v=0.002, seed=5)
    _, t = drive(est, pack, [0.0])
    st = est.export_state()
    st["soc_pct"] = [68.0, 68.0]  # 6 points above the truth, within the restored sigma
    est.restore(st)
    rep = _rest_after_discharge(est, pack, -20.0, 1800, 7200, t0_s=t)
    for c, s in zip(rep.cells, pack.soc_pct, strict=True):
        assert s == pytest.approx(52.0, abs=0.1)
        assert c.soc_pct == pytest.approx(58.0, abs=1.0)


def test_uncertainty_grows_on_the_flat_and_shrinks_after_a_rest_on_the_steep() -> None:
    # The circuit model here has no OCV hysteresis; with LFP's default 10 mV a rest on the steep
    # low end can only say +-3 points (tested with the restored-SoC case below).
    est, chem = make("lfp", cells=1, rest_s=600.0, restore_sigma_pct=0.0, ocv_hysteresis_mv=0.0)
    pack = EcmPack(chem, [60.0], [100.0])
    _, t = drive(est, pack, [0.0])
    # Start confident: a restored state with small variance.
    st = est.export_state()
    st["soc_var"] = [0.0]
    est.restore(st)
    rep, t = drive(est, pack, [0.0])
    s0 = rep.cells[0].soc_sigma_pct
    rep, t = drive(est, pack, [-20.0] * 2700, t0_s=t)  # 60 -> 45 %: flat
    s_flat = rep.cells[0].soc_sigma_pct
    assert s_flat > 20 * s0
    # On to ~20 % (steep for LFP) and a rest there: recalibrated.
    rep, t = drive(est, pack, [-20.0] * 4500 + [0.0] * 700, t0_s=t)
    assert rep.cells[0].soc_sigma_pct < s_flat
    assert rep.cells[0].soc_pct == pytest.approx(pack.soc_pct[0], abs=1.5)


@pytest.mark.parametrize("chem_name", ["nmc", "lfp"])
def test_full_charge_to_the_upper_voltage_drives_the_top_cell_to_its_table_soc(
    chem_name: str,
) -> None:
    est, chem = make(chem_name, cells=3)
    pack = EcmPack(chem, [70.0, 80.0, 75.0], [100.0, 95.0, 105.0])
    _, t = drive(est, pack, [0.0])
    # CC at 0.3C until the top cell reaches the upper voltage, then CV on that cell (taper).
    i = 30.0
    for _ in range(4 * 3600):
        volts = pack.step(i, 1.0)
        t += 1.0
        rep = est.step(snap(t, list(volts), i), t)
        if max(volts) >= chem.max_v:
            i *= 0.97  # taper
        if i < 1.0:
            break
    assert rep is not None
    top = max(range(3), key=lambda k: volts[k])
    # The tapered voltage at the top through the OCV table (soc_top), not a flat 100 %: the
    # table's SoC at the upper voltage less the tapered current's IR drop (NMC: 99.8 %).
    cell = rep.cells[top]
    truth = min(100.0, pack.soc_pct[top])
    assert cell.soc_pct == pytest.approx(truth, abs=2.0 * cell.soc_sigma_pct)
    assert cell.soc_sigma_pct < 0.6
    assert rep.soc_pct == pytest.approx(cell.soc_pct, abs=0.1)  # no cell can take more
    assert rep.soc_mean_pct < rep.soc_pct  # the others are not full


def test_capacity_is_learned_between_full_and_a_rest() -> None:
    est, chem = make("nmc", cells=2, capacity_ah=100.0, rest_s=600.0)
    # The cells really hold 90 and 104 Ah.
    pack = EcmPack(chem, [95.0, 95.0], [90.0, 104.0])
    _, t = drive(est, pack, [0.0])
    for _ in range(3):
        # Charge to full (CC then taper at the upper voltage), rest, discharge deep, rest.
        i = 30.0
        while i > 2.0:
            volts = pack.step(i, 1.0)
            t += 1.0
            est.step(snap(t, list(volts), i), t)
            if max(volts) >= chem.max_v:
                i *= 0.98
        _, t = drive(est, pack, [0.0] * 700 + [-40.0] * int(3600 * 1.5) + [0.0] * 700, t0_s=t)
    rep = est.report()
    assert rep is not None
    assert rep.cells[0].capacity_ah == pytest.approx(90.0, rel=0.03)
    assert rep.cells[1].capacity_ah == pytest.approx(104.0, rel=0.03)
    assert rep.soh_pct == pytest.approx(90.0, abs=3.0)  # the weakest cell


def test_r0_is_learned_from_current_steps() -> None:
    est, chem = make("nmc", cells=1)
    pack = EcmPack(chem, [50.0], [100.0], r0_factor=1.6, noise_v=0.0005)
    _, t = drive(est, pack, [0.0])
    profile: list[float] = []
    for _ in range(60):
        profile += [0.0] * 20 + [-50.0] * 20 + [25.0] * 20
    rep, _ = drive(est, pack, profile, t0_s=t)
    r_true = chem.r0_ohm(100.0) * 1.6 * 1000.0
    assert rep.cells[0].resistance_mohm == pytest.approx(r_true, rel=0.1)


def test_cold_cells_use_the_temperature_factor_for_r0() -> None:
    est, chem = make("nmc", cells=1)
    cap = 100.0
    soc = 50.0
    # A 0 degC cell under a 50 A charge: voltage includes the cold (larger) IR drop.
    r0_cold = chem.r0_ohm(cap, 0.0)
    v = chem.ocv.voltage(soc) + r0_cold * 50.0
    rep = est.step(snap(0.0, [v], 50.0, temp_c=0.0), 0.0)
    assert rep is not None
    assert rep.cells[0].soc_pct == pytest.approx(soc, abs=0.5)


def test_pack_soc_blends_toward_the_extreme_cells() -> None:
    assert pack_soc_pct(40.0, 40.0) == pytest.approx(40.0)
    assert pack_soc_pct(80.0, 100.0) == pytest.approx(100.0)  # one cell full
    assert pack_soc_pct(0.0, 30.0) == pytest.approx(0.0)  # one cell empty
    assert pack_soc_pct(0.0, 100.0) == 0.0
    mid = pack_soc_pct(40.0, 60.0)
    assert 40.0 < mid < 60.0
    near_full = pack_soc_pct(85.0, 98.0)
    assert near_full > 90.0  # closer to the top cell than to the mean


def test_state_round_trip_restores_soc_capacity_resistance_and_cycles() -> None:
    est, chem = make("nmc", cells=3, restore_sigma_pct=0.0)
    pack = EcmPack(chem, [40.0, 50.0, 60.0], [100.0, 100.0, 100.0])
    _, _t = drive(est, pack, [-20.0] * 600 + [20.0] * 300)
    state = est.export_state()
    assert state["version"] == STATE_VERSION
    assert state["cells"] == 3
    assert state["chemistry"] == "nmc"
    est2, _ = make("nmc", cells=3, restore_sigma_pct=0.0)
    est2.restore(state)
    a, b = est.report(), est2.report()
    assert a is not None
    assert b is not None
    for x, y in zip(a.cells, b.cells, strict=True):
        assert y.soc_pct == x.soc_pct
        assert y.capacity_ah == x.capacity_ah
        assert y.resistance_mohm == x.resistance_mohm
        assert y.r1_mohm == x.r1_mohm
        assert y.tau1_s == x.tau1_s == chem.tau1_s
        assert y.soc_sigma_pct == pytest.approx(x.soc_sigma_pct)
    assert est2.cycles == pytest.approx(est.cycles)
    assert est.cycles > 0.0
    # A state written before R1 was identified starts R1 from the chemistry.
    old = {k: v for k, v in state.items() if k != "r1_ohm_25c"}
    est4, _ = make("nmc", cells=3)
    est4.restore(old)
    d = est4.report()
    assert d is not None
    assert d.cells[0].r1_mohm == pytest.approx(chem.r1_ohm(100.0) * 1000.0)
    # The restore inflates the variance when configured to (default 5 %).
    est3, _ = make("nmc", cells=3)
    est3.restore(state)
    c = est3.report()
    assert c is not None
    # The restore adds restore_sigma_pct (5 %) in variance.
    assert c.cells[0].soc_sigma_pct ** 2 == pytest.approx(a.cells[0].soc_sigma_pct ** 2 + 25.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cells": 4}, "cell count"),
        ({"chemistry": "lfp"}, "chemistry"),
        ({"version": 99}, "version"),
        ({"soc_pct": [50.0, 50.0]}, "soc_pct"),
        ({"soc_pct": [50.0, "x", 50.0]}, "soc_pct"),
        ({"soc_pct": [50.0, 150.0, 50.0]}, "outside"),
        ({"capacity_ah": [100.0, -1.0, 100.0]}, "capacity_ah"),
        ({"initialised": "yes"}, "initialised"),
        ({"cycles": -1}, "cycles"),
        ({"nominal_capacity_ah": 280.0}, "nominal_capacity_ah"),
        # An integer beyond a float was an OverflowError, not a ValueError (main 68e7638).
        ({"knee_lo_wxy": 10**400}, "knee_lo_wxy"),
        ({"slow_xy": 10**400}, "slow_xy"),
        ({"load_bias_weight": 10**400}, "load_bias_weight"),
        ({"cycles": 10**400}, "cycles"),
        ({"soc_pct": [50.0, 10**400, 50.0]}, "soc_pct"),
        ({"knee_mid_w": math.nan}, "knee_mid_w"),
        ({"slow_info": math.inf}, "slow_info"),
        ({"knee_lo_wxx": True}, "knee_lo_wxx"),
    ],
)
def test_mismatched_or_malformed_state_is_refused_and_changes_nothing(
    change: dict[str, object], message: str
) -> None:
    est, chem = make("nmc", cells=3)
    pack = EcmPack(chem, [40.0, 50.0, 60.0], [100.0] * 3)
    drive(est, pack, [0.0])
    before = est.export_state()
    bad = {**before, **change}
    with pytest.raises(ValueError, match=message):
        est.restore(bad)
    assert est.export_state() == before


def test_wrong_cell_count_in_snapshot_is_an_error() -> None:
    est, _ = make(cells=2)
    with pytest.raises(ValueError, match="3 cells"):
        est.step(snap(0.0, [3.7, 3.7, 3.7], 0.0), 0.0)


def test_steps_faster_than_the_minimum_interval_lose_no_charge() -> None:
    est, chem = make("lfp", cells=2, min_interval_s=0.1)
    # On the plateau (the voltage does not steer), with the IR drop of the charge current.
    v = chem.ocv.voltage(55.0) + chem.r0_ohm(100.0) * 100.0
    first = est.step(snap(0.0, [v, v], 100.0), 0.0)
    assert first is not None
    start = first.cells[0].soc_pct
    rep = first
    # 100 A for 36 s, stepped at 500 Hz (every frame): +1 % of 100 Ah, counted once.
    for k in range(1, 18001):
        t = k * 0.002
        rep = est.step(snap(t, [v, v], 100.0), t)
        assert rep is not None
    last = est.step(snap(36.0 + 0.1, [v, v], 0.0), 36.1)  # one more processed step
    assert last is not None
    assert last.cells[0].soc_pct - start == pytest.approx(1.0, abs=0.01)
    # Skipped steps hand back the last report as it was.
    assert est.step(snap(36.15, [v, v], 0.0), 36.15) is last


def test_a_voltage_weighs_the_same_however_often_the_estimator_is_stepped() -> None:
    # The daemon steps the estimator at 10 Hz (control.tick_s) while a BMS may send each cell
    # voltage once a second: a voltage is weighed once, at the first step after it arrives, and
    # what it weighs (the innovation and identification averages, the RC regressor, the start
    # window) must follow the time between samples, not the number of steps between them.
    # Same 1 Hz samples, one estimator stepped at 1 Hz, one at 10 Hz (the readings ageing).
    chem = get_chemistry("nmc")
    profile: list[float] = []
    for _ in range(60):
        profile += [-5.0] * 40 + [-60.0] * 20 + [30.0] * 30 + [-20.0] * 30
    results = []
    for sub in (1, 10):
        est, _ = make("nmc", cells=1)
        pack = EcmPack(chem, [60.0], [100.0], r0_factor=1.8, noise_v=0.002)
        t = 0.0
        for i in profile:
            volts = pack.step(i, 1.0)
            t += 1.0
            for j in range(sub):
                age = j / sub
                est.step(snap(t + age, list(volts), i, v_age_s=age, i_age_s=age), t + age)
        cell = est.cells[0]
        results.append((cell.soc_pct - pack.soc_pct[0], cell.r0_ohm_25c, cell.r1_ohm_25c, cell))
    (e1, r0_1, r1_1, c1), (e10, r0_10, r1_10, c10) = results
    assert e10 == pytest.approx(e1, abs=0.05)
    assert r0_10 == pytest.approx(r0_1, rel=0.02)
    assert r1_10 == pytest.approx(r1_1, rel=0.02)
    assert c10.y2_v2 == pytest.approx(c1.y2_v2, rel=0.05)
    assert c10.rls_w_a == pytest.approx(c1.rls_w_a, rel=0.01)


def _late_current_run(
    current_delay_s: float, period_s: float = 1.0, steps: int = 10
) -> tuple[float, float]:
    """Worst |SoC error| after 10 min and the final R0 (mOhm) of a BMS sampling every
    ``period_s`` whose current frame comes ``current_delay_s`` after the cell-voltage frame of
    the same sample (negative: before it); the estimator stepped ``steps`` times per period
    (like the daemon at 10 Hz), the first at the cell frame."""
    chem = get_chemistry("nmc")
    est, _ = make("nmc", cells=1)
    pack = EcmPack(chem, [70.0], [100.0], r0_factor=1.5, noise_v=0.001)
    profile: list[float] = []
    for _ in range(30):
        profile += [-3.0] * 50 + [-80.0] * 30 + [40.0] * 40
    n = round(len(profile) / period_s)
    samples = [(list(pack.step(profile[int(k * period_s)], period_s)), 0.0) for k in range(n)]
    samples = [(v, profile[int(k * period_s)]) for k, (v, _) in enumerate(samples)]
    true_soc = [70.0]
    for _, i in samples:
        true_soc.append(true_soc[-1] + 100.0 * i * period_s / 3600.0 / 100.0)
    worst = 0.0
    for k in range(1, n):
        for j in range(steps):
            t = (k + j / steps) * period_s
            ki = k if t >= k * period_s + current_delay_s else k - 1
            volts, _ = samples[k]
            i = samples[ki][1]
            i_age = t - (ki * period_s + current_delay_s)
            rep = est.step(snap(t, volts, i, v_age_s=t - k * period_s, i_age_s=i_age), t)
            if rep is not None and k * period_s > 600:
                worst = max(worst, abs(rep.cells[0].soc_pct - true_soc[k + 1]))
    return worst, est.cells[0].r0_ohm_25c * 1000.0


def test_a_voltage_is_weighed_with_the_current_of_its_own_moment() -> None:
    # A voltage frame and the current frame of the same sample 0.3 s apart, in either order:
    # the step that first sees the voltage may still hold the previous sample's current (a
    # second off: across a load step, its whole IR drop). Each voltage must be weighed with the
    # current reading nearest to it in time, whatever the frame order.
    aligned, r0_aligned = _late_current_run(0.0)
    assert aligned < 0.5
    for delay in (0.3, -0.3, 0.05):
        worst, r0 = _late_current_run(delay)
        assert worst < aligned + 0.2, delay
        assert r0 == pytest.approx(r0_aligned, rel=0.05), delay
    # A 10 Hz BMS whose current comes 2 ms after the cells, the estimator stepped as each cell
    # frame arrives: every voltage waits for its current (none may be starved by the next).
    aligned, r0_aligned = _late_current_run(0.0, period_s=0.1, steps=1)
    worst, r0 = _late_current_run(0.002, period_s=0.1, steps=1)
    assert worst < aligned + 0.2
    assert r0 == pytest.approx(r0_aligned, rel=0.05)


def test_chemistry_must_be_the_packs() -> None:
    with pytest.raises(ValueError, match="pack's"):
        SocEstimator(SocConfig(), PackConfig(chemistry="lfp"), get_chemistry("nmc"))


# --- balancing currents and honest uncertainty ----------------------------------------------


def test_a_bleeding_cell_falls_against_the_others_by_the_counted_charge() -> None:
    # LFP plateau at rest: the voltage says nothing, only the count moves the estimate.
    est, chem = make("lfp", cells=4)
    v = chem.ocv.voltage(55.0)
    t = 0.0
    rep0 = est.step(snap(t, [v] * 4, 0.0), t)
    assert rep0 is not None
    bleed = (-0.5, 0.0, 0.0, 0.0)  # 0.5 A out of cell 0
    for _ in range(720):  # 2 h at 10 s (longer than the current's 5 s: held, not gaps)
        t += 10.0
        rep = est.step(snap(t, [v] * 4, 0.0), t, cell_extra_current_a=bleed)
    assert rep is not None
    moved = [c.soc_pct - c0.soc_pct for c, c0 in zip(rep.cells, rep0.cells, strict=True)]
    # 0.5 A for 2 h is 1 Ah: 1 % of 100 Ah, on cell 0 only.
    assert moved[0] - moved[1] == pytest.approx(-1.0, abs=1e-6)
    assert moved[1:] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    # The bleed current's tolerance is the cell's own uncertainty, not the others'.
    rel = est.relative_sigma_pct()
    assert rel is not None
    assert rel[0] > rel[1]


def test_balancing_currents_add_to_the_pack_current_and_follow_a_charge() -> None:
    est, chem = make("nmc", cells=2)
    pack = EcmPack(chem, [50.0, 50.0], [100.0, 100.0])
    _, t = drive(est, pack, [0.0])
    before = est.report()
    assert before is not None
    # 20 A charge for 30 min; cell 1 receives 2 A more from an active balancer.
    for _ in range(1800):
        t += 1.0
        est.step(snap(t, [None, None], 20.0), t, cell_extra_current_a=[0.0, 2.0])
    after = est.report()
    assert after is not None
    d0 = after.cells[0].soc_pct - before.cells[0].soc_pct
    d1 = after.cells[1].soc_pct - before.cells[1].soc_pct
    assert d0 == pytest.approx(10.0, abs=1e-6)
    assert d1 == pytest.approx(11.0, abs=1e-6)


@pytest.mark.parametrize(
    "extra", [[0.0], [0.0, 0.0, 0.0], [0.0, math.nan], [math.inf, 0.0]], ids=str
)
def test_bad_balancing_currents_are_refused(extra: list[float]) -> None:
    est, chem = make("nmc", cells=2)
    v = chem.ocv.voltage(50.0)
    est.step(snap(0.0, [v, v], 0.0), 0.0)
    with pytest.raises(ValueError, match="cell_extra_current_a"):
        est.step(snap(1.0, [v, v], 0.0), 1.0, cell_extra_current_a=extra)


@pytest.mark.parametrize("true_soc", [45.0, 50.0, 55.0, 60.0, 65.0])
@pytest.mark.parametrize("v_err_mv", [-6.0, 0.0, 6.0])
def test_lfp_start_on_the_plateau_reports_a_sigma_that_covers_its_error(
    true_soc: float, v_err_mv: float
) -> None:
    # A few mV of sensor error (or hysteresis) on a 0.2 mV/% plateau are tens of points.
    est, chem = make("lfp", cells=1)
    v = chem.ocv.voltage(true_soc) + v_err_mv / 1000.0
    rep = est.step(snap(0.0, [v], 0.0), 0.0)
    assert rep is not None
    c = rep.cells[0]
    assert abs(c.soc_pct - true_soc) <= 2.0 * c.soc_sigma_pct
    assert c.soc_sigma_pct >= 8.0


def test_steps_longer_than_the_current_timeout_count_all_the_charge() -> None:
    # The estimator stepped every 10 s, a current used up to 5 s: the current known at both ends of
    # each step covers it (it used to count only 5 s of every 10 and call the rest a gap).
    est, chem = make("lfp", cells=1)
    rep0 = est.step(snap(0.0, [chem.ocv.voltage(55.0)], 20.0), 0.0)
    assert rep0 is not None
    t = 0.0
    for _ in range(360):
        t += 10.0
        rep = est.step(snap(t, [None], 20.0), t)  # no voltage: the count alone
    assert rep is not None
    assert rep.cells[0].soc_pct - rep0.cells[0].soc_pct == pytest.approx(20.0, abs=1e-6)


def test_a_current_offset_on_the_flat_stays_within_the_reported_sigma() -> None:
    # 24 h at rest on the LFP plateau with a 0.2 A offset on a 100 Ah pack (0.002 C): the count
    # drifts 4.8 points, the voltage cannot see it; the sigma must have grown to cover it.
    est, chem = make("lfp", cells=1, restore_sigma_pct=0.0)
    v = chem.ocv.voltage(60.0)
    est.step(snap(0.0, [v], 0.2), 0.0)
    state = est.export_state()
    state["soc_pct"] = [60.0]
    state["soc_var"] = [0.01]  # a confident start (e.g. just after full)
    est.restore(state)
    t = 0.0
    for _ in range(24 * 360):
        t += 10.0
        rep = est.step(snap(t, [v], 0.2), t)
    assert rep is not None
    c = rep.cells[0]
    err = c.soc_pct - 60.0
    assert err == pytest.approx(4.8, abs=0.1)
    assert abs(err) <= 3.0 * c.soc_sigma_pct


def test_counting_errors_are_common_so_cell_differences_stay_sharp() -> None:
    # Two cells counted together for a day on the flat: the absolute SoC is uncertain (sensor
    # offset and gain), the difference between them is not (one current through both).
    est, chem = make("lfp", cells=2, restore_sigma_pct=0.0)
    v = chem.ocv.voltage(55.0)
    est.step(snap(0.0, [v, v], 0.0), 0.0)
    state = est.export_state()
    state["soc_var"] = [0.04, 0.04]
    state["soc_var_common"] = [0.0, 0.0]
    est.restore(state)
    t = 0.0
    for k in range(8640):
        t += 10.0
        i = 10.0 if (k // 360) % 2 == 0 else -10.0  # an hour in, an hour out
        est.step(snap(t, [v, v], i), t)
    rep = est.report()
    rel = est.relative_sigma_pct()
    assert rep is not None
    assert rel is not None
    assert rep.cells[0].soc_sigma_pct > 4.0
    assert rel[0] < 0.5
    # Exported and restored, the split survives.
    est2, _ = make("lfp", cells=2, restore_sigma_pct=0.0)
    est2.restore(est.export_state())
    rel2 = est2.relative_sigma_pct()
    assert rel2 is not None
    assert rel2[0] < 0.5


def test_report_carries_the_relative_and_capacity_sigmas() -> None:
    # The counting test above, read from the report: each cell's relative sigma is
    # ``relative_sigma_pct()`` (what balancing weighs differences against), far below the
    # absolute one after a day of common counting errors.
    est, chem = make("lfp", cells=2, restore_sigma_pct=0.0)
    v = chem.ocv.voltage(55.0)
    rep0 = est.step(snap(0.0, [v, v], 0.0), 0.0)
    assert rep0 is not None
    # Nothing measured yet: the capacity prior (10 % of nominal).
    assert [c.capacity_sigma_ah for c in rep0.cells] == pytest.approx([10.0, 10.0])
    t = 0.0
    for k in range(2160):
        t += 10.0
        est.step(snap(t, [v, v], 10.0 if (k // 360) % 2 == 0 else -10.0), t)
    rep = est.report()
    rel = est.relative_sigma_pct()
    assert rep is not None
    assert rel is not None
    assert [c.soc_rel_sigma_pct for c in rep.cells] == pytest.approx(list(rel))
    for c in rep.cells:
        assert 0.0 <= c.soc_rel_sigma_pct < c.soc_sigma_pct


def test_capacity_sigma_shrinks_once_a_capacity_is_measured() -> None:
    est, chem = make("nmc", cells=2, capacity_ah=100.0, rest_s=600.0)
    pack = EcmPack(chem, [95.0, 95.0], [90.0, 104.0])
    _, t = drive(est, pack, [0.0])
    first = est.report()
    assert first is not None
    for _ in range(2):
        i = 30.0
        while i > 2.0:
            volts = pack.step(i, 1.0)
            t += 1.0
            est.step(snap(t, list(volts), i), t)
            if max(volts) >= chem.max_v:
                i *= 0.98
        _, t = drive(est, pack, [0.0] * 700 + [-40.0] * int(3600 * 1.5) + [0.0] * 700, t0_s=t)
    rep = est.report()
    assert rep is not None
    for c, c0, true_ah in zip(rep.cells, first.cells, (90.0, 104.0), strict=True):
        assert c.capacity_sigma_ah < 0.5 * c0.capacity_sigma_ah
        # And it still covers the error (3 sigma).
        assert abs(c.capacity_ah - true_ah) <= 3.0 * c.capacity_sigma_ah


def test_report_fields_are_the_cell_states_own() -> None:
    """Each ``CellEstimate`` field comes from its own place in the cell state (the report
    builds them positionally for speed: a reordered field must fail here)."""
    est, _chem = make("nmc", cells=3)
    est.step(snap(0.0, [3.60, 3.70, 3.80], -20.0), 0.0)
    for k in range(1, 30):
        rep = est.step(snap(float(k), [3.60, 3.70, 3.80], -20.0 + k), float(k))
    assert rep is not None
    rel = est.relative_sigma_pct()
    assert rel is not None
    for k, (c, s) in enumerate(zip(rep.cells, est.cells, strict=True)):
        assert c.soc_pct == s.soc_pct
        assert c.soc_sigma_pct == s.sigma_pct()
        assert c.capacity_ah == s.capacity_ah
        assert c.resistance_mohm == s.r0_ohm_25c * 1000.0
        assert c.soc_rel_sigma_pct == min(50.0, rel[k])
        assert c.capacity_sigma_ah == math.sqrt(s.capacity_var)
        assert c.r1_mohm == s.r1_ohm_25c * 1000.0
        assert c.tau1_s == s.tau1_s
    # The fields differ from one another here, so a swap cannot pass by accident.
    vals = [getattr(rep.cells[0], f) for f in rep.cells[0].__slots__]
    assert len(set(vals)) == len(vals)


def _counts(est: SocEstimator, i_age_s: float) -> bool:
    """Whether the estimator counts 20 A for a second when the current is ``i_age_s`` old."""
    v = est.chemistry.ocv.voltage(55.0)
    rep0 = est.step(snap(0.0, [v], 20.0), 0.0)
    rep = est.step(snap(1.0, [None], 20.0, i_age_s=i_age_s), 1.0)
    assert rep0 is not None
    assert rep is not None
    moved = rep.cells[0].soc_pct - rep0.cells[0].soc_pct
    assert moved == pytest.approx(0.0, abs=1e-9) or moved == pytest.approx(100.0 / 3600 / 5)
    return moved > 0.0


def _soc(timeouts: TimeoutsConfig | None = None, **cfg: float) -> SocEstimator:
    pack = PackConfig(cells=1, chemistry="lfp", capacity_ah=100.0)
    if timeouts is None:
        return SocEstimator(SocConfig(**cfg), pack, get_chemistry("lfp"))
    return SocEstimator(SocConfig(**cfg), pack, get_chemistry("lfp"), timeouts)


def test_the_current_counts_for_the_longer_of_its_timeout_and_the_cell_voltage_timeout() -> None:
    # Defaults: the fail-safe drops a current after 2 s, the estimator counts it up to 5 s (the
    # value soc.stale_s had); timeouts.current_timeout_s past the voltage's moves it.
    assert _counts(_soc(), 4.9)
    assert not _counts(_soc(), 5.1)
    assert _counts(_soc(TimeoutsConfig(current_timeout_s=8.0)), 7.9)
    assert not _counts(_soc(TimeoutsConfig(current_timeout_s=8.0)), 8.1)
    assert _counts(_soc(TimeoutsConfig(cell_voltage_timeout_s=9.0)), 8.9)


def test_the_deprecated_stale_s_works_until_a_timeouts_key_is_set() -> None:
    assert _counts(_soc(stale_s=8.0), 7.9)
    assert not _counts(_soc(stale_s=8.0), 8.1)
    # A new key set: the new keys win (current 3 s, voltage 5 s: the current counts up to 5 s).
    assert not _counts(_soc(TimeoutsConfig(current_timeout_s=3.0), stale_s=8.0), 5.1)
    assert not _counts(_soc(TimeoutsConfig(current_timeout_s=3.0), stale_s=8.0), 7.9)
    assert _counts(_soc(TimeoutsConfig(current_timeout_s=3.0), stale_s=8.0), 4.9)


@pytest.mark.xfail(
    strict=True,
    reason="the capacity is learned from the count between two rests alone, the current "
    "offset's drift taken as capacity (docs/PERFORMANCE.md, follow-up s5-max; the fix "
    "merged in 6204e50 was reverted: it over-bled passive balancing, see the s5-cap revert)",
)
def test_a_current_offset_is_not_learned_as_capacity() -> None:
    """A 0.004 C current offset over two 10-hour counts of opposite sign (40 points down, 40
    up, rests between): the count drifts 4 points each way while the capacity is right. One
    count cannot tell the two apart (after the first: -7.3 %, the priors' split); the second,
    of the other sign, can. Learned apart (the capacity from the count between two rests
    alone) the first was taken as -9.9 % and the capacity was still 2.2 % off after the
    second; learned together, 0.1 % (docs/PERFORMANCE.md, branch s5-max)."""
    est, chem = make("nmc", cells=1, capacity_ah=100.0, rest_s=600.0)
    pack = EcmPack(chem, [80.0], [100.0])
    offset_a = 0.4
    dt = 10.0
    t = 0.0
    est.step(snap(t, list(pack.step(0.0, dt)), offset_a), t)
    state = est.export_state()
    state["soc_pct"] = [80.0]
    state["soc_var"] = [0.0]
    est.restore(state)
    for current_a, hours in ((0.0, 0.5), (-4.0, 10.0), (0.0, 0.5), (4.0, 10.0), (0.0, 0.5)):
        for _ in range(round(hours * 3600.0 / dt)):
            volts = pack.step(current_a, dt)
            t += dt
            est.step(snap(t, list(volts), current_a + offset_a), t)
    assert pack.soc_pct[0] == pytest.approx(80.0)
    rep = est.report()
    assert rep is not None
    assert rep.cells[0].capacity_ah == pytest.approx(100.0, abs=1.0)
    assert 0.002 < est.cells[0].off_c < 0.006
