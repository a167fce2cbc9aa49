"""Balancing quality on the pack simulator: ours (passive, active) against two peer strategies.

A 16S LFP pack (100 Ah, capacity spread sigma 2 %, initial SoC spread over a 10 % range) runs a
home-storage profile for simulated days. Every step goes the way of the daemon: the simulator's
sensed readings -> ``PackState`` -> protection -> limits -> balancing; the "inverter" follows the
profile within CCL/DCL, and the simulator obeys the bleed mask (active transfers are applied by
an ideal bus converter model here, as the simulator has bleed resistors only).

Printed per strategy:
  * usable capacity as a fraction of the physical limit, at the end of each day. Passive and the
    peers: ``min(q) + min(cap - q)`` of the true cell charges against ``min(cap)``. Active: a full
    0.2 C capacity test (charge until the first cell is full, discharge until the first is empty,
    balancer running) on a copy of the state, against ``mean(cap)``;
  * hours until that fraction is >= 99 %, and until the true SoC spread (max - min) is < 1 %;
  * charge dissipated in bleed resistors (or lost in the converter) against the minimum needed
    (the sum of every cell's excess over the band that gives ``min(cap)``, at the start).

Strategies: ``ours-passive`` and ``ours-active`` (``BalancingPlanner``), ``peer-10mV-top`` (bleed
every cell more than 10 mV above the lowest while near the top of charge) and
``peer-200mV-rest`` (at rest, bleed cells 200 mV above the lowest until back within 0 mV, i.e. a
200 mV threshold with 200 mV hysteresis).

SoC input: ``--soc truth`` gives the planner the simulator's true SoC and capacity (with a 0.3 %
sigma); ``--soc estimator`` runs the project's ``SocEstimator`` on the sensed readings, counting
the planner's per-cell balancing currents (``cell_extra_current_a``, as the Controller is to wire
it); the planner weighs each cell's excess against the report's ``soc_rel_sigma_pct`` and, for
the passive band, ``capacity_sigma_ah``. ``--soc estimator-abs`` strips those two fields (the
planner falls back to the absolute ``soc_sigma_pct`` and exact capacities, as before they
existed); ``--soc estimator-nobal`` does not
pass the balancing currents (the estimator as wired before); ``--soc none`` gives it no estimate
(its voltage fallback, near the top of charge only). ``--truth-from-h H`` gives the truth only
from hour ``H`` on (a bound for an estimator that can tell the cells apart only from then on;
``--days 0`` prints just the first active cycle).

Run: ``.venv/bin/python bench/balancing.py`` (``--days 4 --soc truth``; ``--quick`` for 1 day).
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.core.balancing import BalancingConfig, BalancingPlanner, band_excess_ah
from gateway.core.chemistry import get_chemistry
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import (
    BalancingMode,
    BalancingPlan,
    CellEstimate,
    PackSnapshot,
    SocReport,
)
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import Protection, ProtectionConfig
from gateway.core.soc import SocConfig, SocEstimator
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import HomeStorageProfile

CELLS = 16
CAPACITY_AH = 100.0
DT_S = 10.0
HOUR_S = 3600.0
DAY_S = 86400.0


def usable_ah(soc_pct: list[float], caps_ah: list[float]) -> float:
    """Charge the string delivers between its first full and its first empty cell."""
    q = [s / 100.0 * c for s, c in zip(soc_pct, caps_ah, strict=True)]
    return min(q) + min(c - x for c, x in zip(caps_ah, q, strict=True))


def truth_report(sim: PackSim, sigma_pct: float) -> SocReport:
    """The simulator's true per-cell SoC and capacity as an estimator report."""
    socs = sim.true_soc_pct()
    caps = sim.capacities_ah()
    # The planner weighs cell differences against ``soc_rel_sigma_pct``; the capacities are
    # exact.
    cells = tuple(
        CellEstimate(s, sigma_pct, c, 0.5, soc_rel_sigma_pct=sigma_pct, capacity_sigma_ah=0.0)
        for s, c in zip(socs, caps, strict=True)
    )
    lo, hi = min(socs), max(socs)
    return SocReport((lo + hi) / 2, sum(socs) / len(socs), min(caps), cells)


# --- the peers' strategies (voltage based, as their firmware does it) -----------------------


def peer_10mv_top(snap: PackSnapshot, bleeding: list[bool], top_v: float) -> list[bool]:
    """Bleed every cell more than 10 mV above the lowest while near the top of charge."""
    volts = [v or 0.0 for v in snap.cell_voltage_v]
    if max(volts) < top_v or (snap.current_a or 0.0) < -2.0:
        return [False] * len(volts)
    lo = min(volts)
    return [v - lo > 0.010 for v in volts]


def peer_200mv_rest(snap: PackSnapshot, bleeding: list[bool], top_v: float) -> list[bool]:
    """At rest, bleed cells 200 mV above the lowest, until they are back within 0 mV."""
    volts = [v or 0.0 for v in snap.cell_voltage_v]
    if abs(snap.current_a or 0.0) > 2.0:
        return [False] * len(volts)
    lo = min(volts)
    return [
        (v - lo > 0.200) or (was and v - lo > 0.0) for v, was in zip(volts, bleeding, strict=True)
    ]


# --- one run ----------------------------------------------------------------------------------


@dataclass
class Result:
    """What one strategy achieved."""

    name: str
    limit: str
    daily_fraction: list[float] = field(default_factory=list)
    hours_to_99: float | None = None
    hours_to_spread_1: float | None = None
    dissipated_ah: float = 0.0
    moved_ah: float = 0.0
    minimum_ah: float = 0.0
    wall_s: float = 0.0


class Rig:
    """Simulator + firmware (protection, limits, SoC source, balancing) stepped together."""

    def __init__(
        self,
        seed: int,
        bleed_ohm: float,
        soc_source: str,
        mode: BalancingMode | None,
        peer: Callable[[PackSnapshot, list[bool], float], list[bool]] | None,
        capacity_sigma_factor: float | None = None,
        truth_from_h: float = 0.0,
    ) -> None:
        sim_cfg = PackSimConfig(
            cells=CELLS,
            capacity_ah=CAPACITY_AH,
            capacity_spread_pct=2.0,
            initial_soc_pct=50.0,
            bleed_resistance_ohm=bleed_ohm,
        )
        self.sim = PackSim(sim_cfg, seed=seed)
        # SoC spread: evenly over a 10 % range, in a seeded random order.
        socs = [45.0 + 10.0 * k / (CELLS - 1) for k in range(CELLS)]
        random.Random(seed).shuffle(socs)
        self.sim.set_soc_pct(socs)
        self.pack = PackConfig(
            cells=CELLS, temp_sensors=sim_cfg.temp_sensor_count, capacity_ah=CAPACITY_AH
        )
        self.state = PackState(self.pack)
        self.protection = Protection(ProtectionConfig(), self.pack)
        self.limits = LimitsCalculator(LimitsConfig(), self.pack)
        bleed_a = get_chemistry("lfp").nominal_v / bleed_ohm
        self.planner = BalancingPlanner(
            BalancingConfig(
                mode=mode or BalancingMode.OFF,
                bleed_current_a=bleed_a,
                **(
                    {}
                    if capacity_sigma_factor is None
                    else {"capacity_sigma_factor": capacity_sigma_factor}
                ),
            ),
            self.pack,
        )
        self.estimator = (
            SocEstimator(SocConfig(), self.pack, get_chemistry("lfp"))
            if soc_source.startswith("estimator")
            else None
        )
        self.soc_source = soc_source
        self.truth_from_s = truth_from_h * HOUR_S
        self.peer = peer
        self.profile = HomeStorageProfile(capacity_ah=CAPACITY_AH, seed=seed)
        self.t_s = 0.0
        self.current_a = 0.0
        self.bleeding = [False] * CELLS
        self.moved_ah = 0.0
        self.lost_ah = 0.0

    def soc(self, snap: PackSnapshot) -> SocReport | None:
        est = self.estimator
        if est is not None:
            extra = None
            if self.soc_source != "estimator-nobal" and self.peer is None:
                # The plan that ran since the last step (the Controller's order: SoC first).
                extra = self.planner.cell_currents_a()
            rep = est.step(snap, self.t_s, cell_extra_current_a=extra)
            if self.soc_source == "estimator-abs" and rep is not None:
                # The report without its relative and capacity sigmas (the planner as before).
                cells = tuple(
                    CellEstimate(c.soc_pct, c.soc_sigma_pct, c.capacity_ah, c.resistance_mohm)
                    for c in rep.cells
                )
                rep = SocReport(rep.soc_pct, rep.soc_mean_pct, rep.soh_pct, cells)
            return rep
        if self.soc_source == "none" or self.t_s < self.truth_from_s:
            return None
        return truth_report(self.sim, 0.3)

    def step(self, wanted_a: float | None = None) -> BalancingPlan | None:
        """Advance one ``DT_S`` with the profile (or ``wanted_a``) within the limits."""
        sim = self.sim
        sim.step(DT_S, self.current_a)
        self.t_s += DT_S
        self.state.apply_all(sim.readings(self.t_s))
        snap = self.state.snapshot(self.t_s)
        soc = self.soc(snap)
        alarms = self.protection.step(snap, soc, self.t_s)
        lim = self.limits.step(snap, soc, alarms, self.t_s)
        plan = None
        if self.peer is not None:
            self.bleeding = self.peer(snap, self.bleeding, self.planner.top_cell_v)
            sim.set_bleed(self.bleeding)
        elif self.planner.mode is BalancingMode.PASSIVE:
            plan = self.planner.step(snap, soc, self.t_s)
            sim.set_bleed(plan.bleed)
        elif self.planner.mode is BalancingMode.ACTIVE:
            plan = self.planner.step(snap, soc, self.t_s)
            self._transfer(plan)
        want = self.profile(self.t_s) if wanted_a is None else wanted_a
        self.current_a = min(want, lim.ccl_a.value) if want > 0 else max(want, -lim.dcl_a.value)
        return plan

    def _transfer(self, plan: BalancingPlan) -> None:
        """An ideal bus converter: donors give their current, receivers get it less the loss."""
        socs = self.sim.true_soc_pct()
        caps = self.sim.capacities_ah()
        h = DT_S / HOUR_S
        changed = False
        for a in plan.actions:
            if a.action == "donate":
                socs[a.cell] -= a.current_a * h / caps[a.cell] * 100.0
                self.moved_ah += a.current_a * h
                self.lost_ah += a.current_a * h * (1.0 - self.planner.config.active_efficiency)
                changed = True
            elif a.action == "receive":
                socs[a.cell] += a.current_a * h / caps[a.cell] * 100.0
                changed = True
        if changed:
            self.sim.set_soc_pct([min(100.0, max(0.0, s)) for s in socs])


def capacity_test(rig: Rig) -> float:
    """Full cycle at 0.2 C on a copy: charge to the first full cell, count the discharge to the
    first empty one, with the balancer running. Returns the Ah delivered."""
    r = copy.deepcopy(rig)
    c = 0.2 * CAPACITY_AH
    for _ in range(int(20 * HOUR_S / DT_S)):
        if max(r.sim.true_soc_pct()) >= 99.999:
            break
        r.current_a = c
        r.step(wanted_a=c)
        r.current_a = c  # the test ignores the taper: it measures the cells, not the limits
    delivered = 0.0
    for _ in range(int(20 * HOUR_S / DT_S)):
        if min(r.sim.true_soc_pct()) <= 0.001:
            break
        r.current_a = -c
        r.step(wanted_a=-c)
        r.current_a = -c
        delivered += c * DT_S / HOUR_S
    return delivered


def run(
    name: str,
    days: float,
    seed: int,
    bleed_ohm: float,
    soc_source: str,
    capacity_sigma_factor: float | None = None,
    truth_from_h: float = 0.0,
) -> Result:
    mode = {"ours-passive": BalancingMode.PASSIVE, "ours-active": BalancingMode.ACTIVE}.get(name)
    peer = {"peer-10mV-top": peer_10mv_top, "peer-200mV-rest": peer_200mv_rest}.get(name)
    rig = Rig(seed, bleed_ohm, soc_source, mode, peer, capacity_sigma_factor, truth_from_h)
    caps = rig.sim.capacities_ah()
    active = mode is BalancingMode.ACTIVE
    limit_ah = sum(caps) / len(caps) if active else min(caps)
    res = Result(name, "mean(cap)" if active else "min(cap)")
    res.minimum_ah = math.fsum(band_excess_ah(rig.sim.true_soc_pct(), caps))
    start = time.perf_counter()
    steps_per_hour = int(HOUR_S / DT_S)
    hours = int(days * 24)
    if active:
        first = capacity_test(rig) / limit_ah
        res.daily_fraction.append(first)
        if first >= 0.99:
            res.hours_to_99 = 0.0
    for hour in range(1, hours + 1):
        for _ in range(steps_per_hour):
            rig.step()
        socs = rig.sim.true_soc_pct()
        if res.hours_to_spread_1 is None and max(socs) - min(socs) < 1.0:
            res.hours_to_spread_1 = float(hour)
        if active:
            if hour % 24 == 0:
                frac = capacity_test(rig) / limit_ah
                res.daily_fraction.append(frac)
                if res.hours_to_99 is None and frac >= 0.99:
                    res.hours_to_99 = float(hour)
        else:
            frac = usable_ah(socs, caps) / limit_ah
            if res.hours_to_99 is None and frac >= 0.99:
                res.hours_to_99 = float(hour)
            if hour % 24 == 0:
                res.daily_fraction.append(frac)
    res.dissipated_ah = math.fsum(rig.sim.bleed_charge_ah) + rig.lost_ah
    res.moved_ah = rig.moved_ah
    res.wall_s = time.perf_counter() - start
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--days", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bleed-ohm", type=float, default=6.8, help="bleed resistor (6.8: ~0.5 A)")
    ap.add_argument(
        "--soc",
        choices=("truth", "estimator", "estimator-abs", "estimator-nobal", "none"),
        default="truth",
    )
    ap.add_argument("--quick", action="store_true", help="one day")
    ap.add_argument(
        "--truth-from-h",
        type=float,
        default=0.0,
        help="--soc truth: no SoC (voltage fallback) before this hour; a bound for an estimator"
        " that knows the cells only from then on",
    )
    ap.add_argument(
        "--capacity-sigma-factor",
        type=float,
        default=None,
        help="balancing.capacity_sigma_factor (default: the config default)",
    )
    ap.add_argument(
        "--only",
        nargs="*",
        default=["ours-passive", "ours-active", "peer-10mV-top", "peer-200mV-rest"],
    )
    args = ap.parse_args(argv)
    days = 1.0 if args.quick else args.days
    z = args.capacity_sigma_factor
    if z is None:
        z = BalancingConfig().capacity_sigma_factor
    print(
        f"16S LFP {CAPACITY_AH:g} Ah, capacity sigma 2 %, SoC spread 10 %, home-storage profile,"
        f" {days:g} days, dt {DT_S:g} s, seed {args.seed}, bleed {args.bleed_ohm:g} ohm,"
        f" SoC from {args.soc}"
        + (f" after {args.truth_from_h:g} h" if args.truth_from_h else "")
        + f", capacity_sigma_factor {z:g}"
    )
    head = (
        f"{'strategy':<17} {'limit':<9} {'usable/limit by day':<34} {'h to 99%':>8}"
        f" {'h to spread<1%':>14} {'dissipated Ah':>13} {'minimum Ah':>10} {'ratio':>6}"
        f" {'wall s':>7}"
    )
    print(head)
    for name in args.only:
        r = run(
            name,
            days,
            args.seed,
            args.bleed_ohm,
            args.soc,
            args.capacity_sigma_factor,
            args.truth_from_h,
        )
        daily = " ".join(f"{f * 100:5.1f}%" for f in r.daily_fraction)
        h99 = "-" if r.hours_to_99 is None else f"{r.hours_to_99:g}"
        hs = "-" if r.hours_to_spread_1 is None else f"{r.hours_to_spread_1:g}"
        # Converter loss is not comparable with the passive minimum: no ratio for active.
        ratio = r.dissipated_ah / r.minimum_ah if r.minimum_ah and not r.moved_ah else math.nan
        extra = f" (moved {r.moved_ah:.1f} Ah)" if r.moved_ah else ""
        print(
            f"{r.name:<17} {r.limit:<9} {daily:<34} {h99:>8} {hs:>14} {r.dissipated_ah:13.2f}"
            f" {r.minimum_ah:10.2f} {ratio:6.2f} {r.wall_s:7.1f}{extra}"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
