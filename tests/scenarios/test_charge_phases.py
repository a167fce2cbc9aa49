"""Charge phases in the closed loop: the Controller, the pack simulator and a charger obeying CVL.

A 4S LFP pack of 10 Ah cells with one cell 1.5 points above the others charges from 80 % at up to
0.5 C from a charger that obeys CCL and CVL (constant voltage: it adds at most ``(CVL - V) / R``
to the current of the last step). It goes through bulk and absorption to float; there it is held
for hours while the charger keeps offering current.
"""

from __future__ import annotations

import copy
import math

import pytest

from gateway.control import Controller
from gateway.core.model import ChargePhase, ControlOutput
from gateway.core.pack import PackConfig
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

CAP_AH = 10.0
DT_S = 2.0
OFFER_A = 5.0


def _setup() -> tuple[Controller, PackSim]:
    ctrl = Controller(
        Settings(pack=PackConfig(cells=4, capacity_ah=CAP_AH, chemistry="lfp", temp_sensors=1))
    )
    sim = PackSim(
        PackSimConfig(
            cells=4,
            capacity_ah=CAP_AH,
            capacity_spread_pct=0.0,
            initial_soc_pct=80.0,
            initial_soc_spread_pct=0.0,
            temp_sensors=1,
        ),
        seed=3,
    )
    socs = sim.true_soc_pct()
    sim.set_soc_pct([socs[0] + 1.5, *socs[1:]])
    return ctrl, sim


def _charge(ctrl: Controller, sim: PackSim, current_a: float) -> float:
    """The charger's current for this step: the offer within CCL and CVL."""
    out = ctrl.limits.last
    assert out is not None
    r_pack = math.fsum(p.r0_ohm + p.r1_ohm for p in sim.params)
    cv = current_a + (out.cvl_v.value - sim.pack_voltage_v()) / r_pack
    return max(0.0, min(OFFER_A, out.ccl_a.value, cv))


def _run(ctrl: Controller, sim: PackSim, seconds: int, feed: bool = True) -> list[ControlOutput]:
    outs = []
    current = 0.0
    for _ in range(round(seconds / DT_S)):
        t = sim.t_s
        if feed:
            ctrl.ingest(sim.readings(t))
        out = ctrl.step(t)
        outs.append(out)
        sim.set_bleed(out.balancing.bleed)
        current = _charge(ctrl, sim, current) if feed else 0.0
        sim.step(DT_S, current)
    return outs


@pytest.fixture(scope="module")
def cycle() -> tuple[list[ControlOutput], dict[ChargePhase, tuple[Controller, PackSim]]]:
    """Eight simulated hours, and a copy of the loop the first time each phase was seen."""
    ctrl, sim = _setup()
    outs: list[ControlOutput] = []
    seen: dict[ChargePhase, tuple[Controller, PackSim]] = {}
    for _ in range(8 * 60):
        outs.extend(_run(ctrl, sim, 60))
        phase = outs[-1].charge.phase if outs[-1].charge else None
        if phase is not None and phase not in seen and outs[-1].limits.ccl_a.value > 0:
            seen[phase] = (copy.deepcopy(ctrl), copy.deepcopy(sim))
    return outs, seen


def test_the_cycle_goes_bulk_absorption_float(
    cycle: tuple[list[ControlOutput], dict[ChargePhase, tuple[Controller, PackSim]]],
) -> None:
    outs, _ = cycle
    phases = [o.charge.phase for o in outs if o.charge is not None]
    order = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] is not p]
    assert order == [ChargePhase.BULK, ChargePhase.ABSORPTION, ChargePhase.FLOAT]
    # Absorption ended on balancing done and taper, not on the time limit.
    first_float = next(o for o in outs if o.charge and o.charge.phase is ChargePhase.FLOAT)
    assert first_float.charge is not None
    assert first_float.charge.reason.startswith("absorbed: no cell balancing")
    # CVL's winning term names the phase.
    last = outs[-1]
    assert last.limits.cvl_v.winner == "float"
    assert last.limits.cvl_v.value == pytest.approx(4 * ctrl_float_cell_v(), abs=1e-6)


def ctrl_float_cell_v() -> float:
    ctrl, _ = _setup()
    return ctrl.charge.float_cell_v


def test_absorption_bled_the_high_cell_before_it_ended(
    cycle: tuple[list[ControlOutput], dict[ChargePhase, tuple[Controller, PackSim]]],
) -> None:
    outs, seen = cycle
    absorbing = [o for o in outs if o.charge and o.charge.phase is ChargePhase.ABSORPTION]
    assert any(o.balancing.bleed[0] for o in absorbing)
    # It ended after the quiet hold: no cell bled over the last tail_hold_s of absorption ...
    hold_steps = int(seen[ChargePhase.BULK][0].settings.charge.tail_hold_s / DT_S)
    assert not any(any(o.balancing.bleed) for o in absorbing[-hold_steps:])
    # ... and the cells ended within the balancer's stop band (the high cell came down).
    last = absorbing[-1]
    assert last.soc is not None
    socs = [c.soc_pct for c in last.soc.cells]
    assert max(socs) - min(socs) < 0.5


def test_float_never_lets_a_cell_reach_its_warning(
    cycle: tuple[list[ControlOutput], dict[ChargePhase, tuple[Controller, PackSim]]],
) -> None:
    outs, seen = cycle
    warning_v = seen[ChargePhase.BULK][0].protection.thresholds.cell_overvoltage_warning_v
    floating = [o for o in outs if o.charge and o.charge.phase is ChargePhase.FLOAT]
    assert len(floating) * DT_S > 3 * 3600  # hours of float with the charger offering 0.5 C
    for o in floating:
        assert max(v for v in o.pack.cell_voltage_v if v is not None) < warning_v
        assert not o.alarms.has("cell_overvoltage")


@pytest.mark.parametrize("phase", list(ChargePhase))
def test_stale_data_means_0_a_in_every_phase(
    cycle: tuple[list[ControlOutput], dict[ChargePhase, tuple[Controller, PackSim]]],
    phase: ChargePhase,
) -> None:
    _, seen = cycle
    ctrl, sim = copy.deepcopy(seen[phase])
    timeout_s = ctrl.settings.timeouts.cell_voltage_timeout_s
    outs = _run(ctrl, sim, int(timeout_s) + 2, feed=False)
    last = outs[-1]
    assert last.charge is not None
    assert last.charge.phase is phase
    assert last.limits.ccl_a.value == 0.0
    assert last.limits.dcl_a.value == 0.0
    assert last.limits.ccl_a.winner.startswith("stale:")


def test_unfinished_balancing_waits_for_the_pv_day_only_when_balancing_runs_off_the_top() -> None:
    # The default lets passive balancing run in every state: a top's remaining imbalance goes
    # on bleeding after its absorption, so its full charge need not be due at once.
    assert Controller(Settings()).charge.balancing_off_top
    rest_top = Settings.model_validate({"balancing": {"passive_states": ["rest", "top"]}})
    assert not Controller(rest_top).charge.balancing_off_top
