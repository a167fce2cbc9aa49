"""The control step with the simulator's readings: commands, the user cap, modes, replayability."""

from __future__ import annotations

import itertools

import pytest

from gateway.control import Controller
from gateway.core.model import (
    BalancingMode,
    ControlOutput,
    GatewayMode,
    InverterLink,
    Negotiation,
    ResetAlarms,
    SetBalancingMode,
    SetUserCurrentCap,
    TermKind,
)
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig


def _run(ctrl: Controller, sim: PackSim, seconds: float, current_a: float = 0.0) -> ControlOutput:
    out = None
    for _ in range(int(seconds)):
        sim.step(1.0, current_a)
        ctrl.ingest(sim.readings())
        out = ctrl.step(sim.t_s)
    assert out is not None
    return out


@pytest.fixture
def running() -> tuple[Controller, PackSim]:
    ctrl = Controller(Settings())
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=4)
    _run(ctrl, sim, 120)  # past the start-up hold and the ramp
    return ctrl, sim


def test_limits_open_after_the_hold(running: tuple[Controller, PackSim]) -> None:
    ctrl, sim = running
    out = _run(ctrl, sim, 1)
    assert out.mode == "normal"
    assert out.limits.ccl_a.value == pytest.approx(100.0)
    assert out.limits.dcl_a.value == pytest.approx(100.0)
    assert out.soc is not None


def test_user_cap_lowers_and_never_raises(running: tuple[Controller, PackSim]) -> None:
    ctrl, sim = running
    before = _run(ctrl, sim, 1).limits
    res = ctrl.command(SetUserCurrentCap(charge_a=1000.0, discharge_a=1000.0), sim.t_s)
    assert res.accepted
    after = _run(ctrl, sim, 1).limits
    assert after.ccl_a.value == before.ccl_a.value
    assert after.dcl_a.value == before.dcl_a.value
    assert ctrl.command(SetUserCurrentCap(charge_a=7.5, discharge_a=None), sim.t_s).accepted
    capped = _run(ctrl, sim, 1).limits
    assert capped.ccl_a.value == 7.5
    assert capped.ccl_a.winner == "user_cap"
    assert capped.dcl_a.value == before.dcl_a.value


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_bad_user_cap_is_rejected_and_changes_nothing(
    running: tuple[Controller, PackSim], bad: float
) -> None:
    ctrl, sim = running
    assert ctrl.command(SetUserCurrentCap(charge_a=5.0, discharge_a=None), sim.t_s).accepted
    res = ctrl.command(SetUserCurrentCap(charge_a=bad, discharge_a=None), sim.t_s)
    assert not res.accepted
    assert "charge_a" in res.message
    assert _run(ctrl, sim, 1).limits.ccl_a.value == 5.0


def test_balancing_mode_command(running: tuple[Controller, PackSim]) -> None:
    ctrl, sim = running
    assert ctrl.command(SetBalancingMode(BalancingMode.OFF), sim.t_s).accepted
    out = _run(ctrl, sim, 2)
    assert out.balancing.mode is BalancingMode.OFF
    assert not any(out.balancing.bleed)


def test_reset_without_latched_alarms_says_so(running: tuple[Controller, PackSim]) -> None:
    ctrl, sim = running
    res = ctrl.command(ResetAlarms(source="test"), sim.t_s)
    assert res.accepted
    assert "no latched" in res.message


def test_same_inputs_same_outputs() -> None:
    # Clock-injected and pure: two controllers fed the same readings decide the same.
    outs = []
    for _ in range(2):
        settings = Settings()
        pack = settings.pack.model_copy(update={"cells": 8, "temp_sensors": 2})
        ctrl = Controller(settings.model_copy(update={"pack": pack}))
        sim = PackSim(PackSimConfig(cells=8, initial_soc_spread_pct=5.0), seed=9)
        outs.append(_run(ctrl, sim, 200, current_a=20.0))
    a, b = outs
    assert a.pack.complete
    assert a.limits.ccl_a.value > 0
    assert a.limits == b.limits
    assert a.soc == b.soc
    assert a.balancing == b.balancing
    assert a.alarms == b.alarms


@pytest.mark.parametrize("hold", ["controller_heartbeat_lost", "setop_disconnect"])
def test_return_after_a_link_hold_goes_through_the_ramp(
    running: tuple[Controller, PackSim], hold: str
) -> None:
    ctrl, sim = running
    assert _run(ctrl, sim, 1).limits.ccl_a.value == pytest.approx(100.0)
    held = Negotiation(InverterLink.SERVER, True, 100.0, 100.0, 0.0, 0.0, link_hold=hold)
    ctrl.set_negotiation(held)
    out = _run(ctrl, sim, 5)
    assert out.limits.ccl_a.value == 0.0
    assert out.limits.dcl_a.winner == f"link:{hold}"
    ctrl.set_negotiation(Negotiation(InverterLink.SERVER, True, 0.0, 0.0))
    cfg = ctrl.settings.limits
    seen = [_run(ctrl, sim, 1).limits for _ in range(60)]
    # Held for ramp_hold_s, then up at ramp_a_per_s: never from 0 to full in one step.
    ccl = [lim.ccl_a.value for lim in seen]
    assert ccl[: int(cfg.ramp_hold_s) - 1] == [0.0] * (int(cfg.ramp_hold_s) - 1)
    assert all(b - a <= cfg.ramp_a_per_s * 1.0 + 1e-9 for a, b in itertools.pairwise(ccl))
    assert ccl[-1] > 0.0


def test_the_mode_follows_the_winning_terms_kind_not_its_name(
    running: tuple[Controller, PackSim],
) -> None:
    ctrl, sim = running
    # A hold named like a fail-safe term is still a hold: the data are fresh, the mode normal.
    ctrl.set_hold("stale:flash")
    out = _run(ctrl, sim, 1)
    assert (out.limits.ccl_a.value, out.limits.ccl_a.winner) == (0.0, "stale:flash")
    assert out.limits.ccl_a.winner_kind is TermKind.HOLD
    assert out.mode is GatewayMode.NORMAL
    ctrl.set_hold(None)
    # Nothing received for longer than the current's timeout: a stale term wins, mode stale.
    out = ctrl.step(sim.t_s + ctrl.settings.timeouts.current_timeout_s + 1.0)
    assert out.limits.ccl_a.winner_kind is TermKind.STALE
    assert out.limits.ccl_a.winner.startswith("stale:")
    assert out.mode is GatewayMode.STALE
