"""Scenarios: the simulated pack drives protection -> limits -> balancing, step by step.

Readings come from ``gateway.sim.pack.PackSim.readings()`` (quantized as on CAN) into a real
``PackState``; the inverter here is a few lines that either follows the limits or ignores them.
The order of calls is the one the Controller uses (see ``Firmware.step``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.core.balancing import BalancingConfig, BalancingPlanner
from gateway.core.freshness import TimeoutsConfig
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import (
    AlarmReport,
    BalancingPlan,
    InverterLink,
    Limits,
    Negotiation,
    Reading,
    Role,
    Severity,
)
from gateway.core.pack import PackConfig, PackState
from gateway.core.protection import Protection, ProtectionConfig
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sunspec.evt1 import evt1_of


@dataclass
class Step:
    """What one step decided."""

    t_s: float
    current_a: float
    alarms: AlarmReport
    limits: Limits
    plan: BalancingPlan
    max_cell_v: float


@dataclass
class Firmware:
    """The pure core for one pack, wired in the Controller's order."""

    pack: PackConfig
    protection_cfg: ProtectionConfig = field(default_factory=ProtectionConfig)
    limits_cfg: LimitsConfig = field(default_factory=LimitsConfig)
    balancing_cfg: BalancingConfig = field(default_factory=BalancingConfig)
    timeouts_cfg: TimeoutsConfig = field(default_factory=TimeoutsConfig)

    def __post_init__(self) -> None:
        self.state = PackState(self.pack)
        # One timeouts section for all three, as in the Controller.
        self.protection = Protection(self.protection_cfg, self.pack, self.timeouts_cfg)
        self.limits = LimitsCalculator(self.limits_cfg, self.pack, self.timeouts_cfg)
        self.balancing = BalancingPlanner(self.balancing_cfg, self.pack, self.timeouts_cfg)
        self.negotiation: Negotiation | None = None

    def step(
        self, now_s: float, readings: list[Reading]
    ) -> tuple[AlarmReport, Limits, BalancingPlan]:
        self.state.apply_all(readings)
        snap = self.state.snapshot(now_s)
        alarms = self.protection.step(snap, None, now_s, self.negotiation)
        limits = self.limits.step(snap, None, alarms, now_s)
        plan = self.balancing.step(snap, None, now_s)
        # What the inverter link would negotiate from these limits (server mode, accepted).
        self.negotiation = Negotiation(
            InverterLink.SERVER, True, limits.ccl_a.value, limits.dcl_a.value
        )
        return alarms, limits, plan


def _run(
    sim: PackSim,
    fw: Firmware,
    seconds: float,
    dt_s: float,
    wanted_a: float,
    obey: bool = True,
    drop: set[int] | None = None,
    t0_s: float = 0.0,
    start_current_a: float = 0.0,
) -> list[Step]:
    """Step the sim and the firmware; the inverter asks ``wanted_a`` (+ charge, - discharge)."""
    out = []
    current = start_current_a
    steps = round(seconds / dt_s)
    for k in range(1, steps + 1):
        if out:  # the balancing command of the last step (the sim obeys it)
            sim.set_bleed(out[-1].plan.bleed)
        sim.step(dt_s, current)
        now = t0_s + k * dt_s
        readings = [
            r
            for r in sim.readings(now)
            if not (drop and r.role is Role.CELL_VOLTAGE and r.index in drop)
        ]
        alarms, limits, plan = fw.step(now, readings)
        out.append(Step(now, current, alarms, limits, plan, max(sim.cell_voltages_v())))
        if obey:
            current = (
                min(wanted_a, limits.ccl_a.value)
                if wanted_a > 0
                else max(wanted_a, -limits.dcl_a.value)
            )
        else:
            current = wanted_a
    return out


def _lfp16(**kw: float) -> tuple[PackSim, PackConfig]:
    cfg = PackSimConfig(cells=16, capacity_spread_pct=2.0, **kw)  # type: ignore[arg-type]
    sim = PackSim(cfg, seed=4)
    pack = PackConfig(cells=16, temp_sensors=cfg.temp_sensor_count, capacity_ah=100.0)
    return sim, pack


def test_overvoltage_during_charge_obedient_inverter_tapers_before_any_alarm() -> None:
    sim, pack = _lfp16()
    socs = [96.0] * 16
    socs[7] = 99.3  # one cell ahead
    sim.set_soc_pct(socs)
    fw = Firmware(pack, limits_cfg=LimitsConfig(ramp_hold_s=5.0))
    steps = _run(sim, fw, 3 * 3600.0, 2.0, wanted_a=50.0)
    assert not any(s.alarms.has("cell_overvoltage", Severity.ALARM) for s in steps)
    assert max(s.max_cell_v for s in steps) < 3.65
    charged = [s for s in steps if s.current_a > 0]
    assert charged, "the pack charged at all"
    late = steps[-1]
    assert late.limits.ccl_a.value < 5.0
    assert late.limits.ccl_a.winner in ("cell_voltage", "imbalance", "ramp")
    # Near the top the high cell bleeds (voltage fallback: no SoC estimate here).
    assert any(s.plan.bleed[7] for s in steps)


def test_overvoltage_during_charge_disobedient_inverter_latches_and_cuts_at_once() -> None:
    sim, pack = _lfp16()
    socs = [96.0] * 16
    socs[7] = 99.8
    sim.set_soc_pct(socs)
    fw = Firmware(pack, limits_cfg=LimitsConfig(ramp_hold_s=5.0))
    steps = _run(sim, fw, 1800.0, 1.0, wanted_a=50.0, obey=False, start_current_a=50.0)
    first = next(i for i, s in enumerate(steps) if s.alarms.has("cell_overvoltage", Severity.ALARM))
    alarm_step = steps[first]
    assert alarm_step.limits.ccl_a.value == 0.0  # the same step
    assert "protection:cell_overvoltage" in [t.name for t in alarm_step.limits.ccl_a.terms]
    assert evt1_of(alarm_step.alarms) & (1 << 9)  # OVER_VOLT_ALARM
    # The cell-voltage taper had cut the limit long before the alarm debounced.
    assert steps[first - 1].limits.ccl_a.term("cell_voltage") == 0.0
    assert any(s.alarms.has("inverter_overcharge", Severity.WARNING) for s in steps[:first])
    # The inverter finally stops; the cells relax; the latch holds until reset.
    rest = _run(sim, fw, 600.0, 1.0, wanted_a=0.0, t0_s=steps[-1].t_s)
    assert rest[-1].alarms.has("cell_overvoltage", Severity.ALARM)
    assert rest[-1].limits.ccl_a.value == 0.0
    # The full cell rests at 3.60 V, inside the 0.05 V hysteresis band: the cause persists.
    result = fw.protection.reset(rest[-1].t_s)
    assert not result.accepted
    assert "kept cell_overvoltage" in result.message
    # Discharge a little (DCL allows it), then the reset goes through.
    low = _run(sim, fw, 600.0, 1.0, wanted_a=-20.0, t0_s=rest[-1].t_s)
    assert low[-1].max_cell_v < 3.59
    result = fw.protection.reset(low[-1].t_s)
    assert result.accepted, result.message
    after = _run(sim, fw, 60.0, 1.0, wanted_a=0.0, t0_s=low[-1].t_s)
    assert not after[-1].alarms.has("cell_overvoltage")
    assert after[-1].limits.ccl_a.winner != "protection:cell_overvoltage"


def test_cold_morning_no_charge_below_zero_then_the_table_releases_it() -> None:
    sim, pack = _lfp16(initial_temp_c=-6.0, ambient_c=16.0, thermal_time_constant_s=3600.0)
    sim.set_soc_pct([20.0] * 16)
    fw = Firmware(pack, protection_cfg=ProtectionConfig(debounce_s=0.0, debounce_count=1))
    steps = _run(sim, fw, 2.5 * 3600, 5.0, wanted_a=60.0)
    for s in steps:
        t = s.limits.ccl_a.term("temperature")
        assert t is not None
        if s.current_a > 0:
            assert t > 0.0, s.t_s
    frozen = [s for s in steps if s.limits.ccl_a.term("temperature") == 0.0]
    assert frozen, "the morning starts below 0 degC"
    assert all(s.limits.ccl_a.value == 0.0 for s in frozen)
    assert all(s.limits.dcl_a.value > 0.0 for s in frozen[10:])  # discharge allowed at -6 degC
    assert frozen[-1].limits.ccl_a.winner in ("temperature", "ramp")
    # Warm again: the table is back at 1 and the full configured current is allowed.
    assert steps[-1].limits.ccl_a.term("temperature") == 100.0
    warm = [s for s in steps if s.limits.ccl_a.term("temperature") == 100.0]
    assert warm
    assert all(s.limits.ccl_a.winner != "temperature" for s in warm)
    assert max(s.current_a for s in steps) == 60.0
    # Charging was never attempted in the cold, so no charge-window alarm.
    assert not any(s.alarms.has("charge_undertemperature") for s in steps)
    # An inverter that charges anyway at -5 degC trips the charge-window warning.
    sim2, _ = _lfp16(initial_temp_c=-5.0, ambient_c=-5.0)
    fw2 = Firmware(pack, protection_cfg=ProtectionConfig(debounce_s=0.0, debounce_count=1))
    forced = _run(sim2, fw2, 60.0, 1.0, wanted_a=20.0, obey=False, start_current_a=20.0)
    assert forced[-1].alarms.has("charge_undertemperature", Severity.WARNING)
    assert forced[-1].limits.ccl_a.value == 0.0


def test_a_cell_that_stops_reporting_zeroes_both_limits_in_the_same_step() -> None:
    sim, pack = _lfp16()
    sim.set_soc_pct([55.0] * 16)
    fw = Firmware(pack, limits_cfg=LimitsConfig(ramp_hold_s=5.0))
    dt = 0.1
    before = _run(sim, fw, 60.0, dt, wanted_a=-40.0)
    assert before[-1].limits.dcl_a.value == 100.0
    lost = _run(
        sim, fw, 30.0, dt, wanted_a=-40.0, drop={5}, t0_s=before[-1].t_s
    )  # index 5 = cell 6
    t_lost = before[-1].t_s  # the last reading of cell 5
    for s in lost:
        age = s.t_s - t_lost
        if age <= 5.0 - 1e-9:
            assert s.limits.dcl_a.value > 0.0, age
        elif age > 5.0 + 1e-9:
            assert s.limits.ccl_a.value == 0.0, age
            assert s.limits.dcl_a.value == 0.0, age
            assert s.limits.dcl_a.winner == "stale:cell_voltage[6]"
            assert s.alarms.has("stale_data", Severity.WARNING)
            assert not any(s.plan.bleed)
    assert lost[-1].alarms.has("stale_data", Severity.ALARM)  # persisted > 10 s
    assert evt1_of(lost[-1].alarms) & 1  # COMMUNICATION_ERROR
    back = _run(sim, fw, 30.0, dt, wanted_a=-40.0, t0_s=lost[-1].t_s)
    assert back[0].limits.dcl_a.value == 0.0  # held after the fault, then ramps
    assert back[-1].limits.dcl_a.value > 0.0
    assert not back[-1].alarms.active
