"""Charge/discharge enable and the force-/full-charge requests (pure, no clock)."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.core.model import ChargePhase, ChargeState
from gateway.core.requests import RequestPlanner, RequestThresholds
from tests.inverter_can.outputs import output


def test_enable_flags_follow_the_limits_in_the_same_step() -> None:
    p = RequestPlanner()
    r = p.step(output(ccl_a=50.0, dcl_a=60.0))
    assert (r.charge_enable, r.discharge_enable) == (True, True)
    r = p.step(output(ccl_a=0.0, dcl_a=0.0))  # stale data: both limits 0 A in this step
    assert (r.charge_enable, r.discharge_enable) == (False, False)
    assert not r.force_charge


def test_force_charge_rises_when_low_and_blocked_and_clears_with_hysteresis() -> None:
    p = RequestPlanner(RequestThresholds(force_charge_soc_pct=5, force_charge_clear_soc_pct=10))
    assert not p.step(output(soc_pct=4.0, dcl_a=20.0)).force_charge  # discharge still allowed
    assert p.step(output(soc_pct=4.0, dcl_a=0.0)).force_charge
    assert p.step(output(soc_pct=8.0, dcl_a=0.0)).force_charge  # inside the band: held
    assert p.step(output(soc_pct=8.0, dcl_a=10.0)).force_charge  # still below the clear level
    assert not p.step(output(soc_pct=10.5, dcl_a=10.0)).force_charge
    assert not p.step(output(soc_pct=8.0, dcl_a=10.0)).force_charge  # does not rise again


def test_force_charge_on_the_lowest_cell_and_never_without_charge() -> None:
    p = RequestPlanner()
    assert p.step(output(base_v=2.8, dcl_a=0.0)).force_charge
    assert not p.step(output(base_v=2.8, dcl_a=0.0, ccl_a=0.0)).force_charge
    assert not p.step(output(base_v=3.0, dcl_a=0.0)).force_charge  # not below 2.9 V: no rise


def test_full_charge_when_the_spread_waits_for_the_top() -> None:
    p = RequestPlanner(RequestThresholds(full_charge_spread_pct=5, full_charge_clear_spread_pct=2))
    spread6 = tuple(50.0 + 6.0 * i / 15 for i in range(16))
    spread3 = tuple(50.0 + 3.0 * i / 15 for i in range(16))
    spread1 = tuple(50.0 + 1.0 * i / 15 for i in range(16))
    assert not p.step(output(cell_socs=spread6, bleed=(15,))).full_charge  # balancing already
    assert p.step(output(cell_socs=spread6)).full_charge
    assert p.step(output(cell_socs=spread3, bleed=(15,))).full_charge  # held until 2 %
    assert not p.step(output(cell_socs=spread1)).full_charge
    assert not p.step(output(cell_socs=spread6, soc_pct=None)).full_charge


def test_the_charge_phases_full_and_grid_charge_requests_reach_the_flags() -> None:
    phase = ChargeState(
        phase=ChargePhase.BULK,
        reason="full charge requested",
        since_s=0.0,
        cvl_v=55.2,
        full_charge_requested=True,
        full_charge_reason="SoC uncertainty 2.6 % >= 2.5 %",
        grid_charge_requested=False,
        last_full_age_s=3 * 86400.0,
    )
    p = RequestPlanner()
    r = p.step(dataclasses.replace(output(), charge=phase))
    assert r.full_charge
    assert not r.force_charge
    grid = dataclasses.replace(phase, grid_charge_requested=True)
    r = p.step(dataclasses.replace(output(dcl_a=50.0), charge=grid))
    assert r.force_charge  # a grid full charge asks for it even with discharge allowed
    r = p.step(dataclasses.replace(output(ccl_a=0.0), charge=grid))
    assert not r.force_charge  # never while charging is not allowed
    assert not r.full_charge
    even = tuple([50.0] * 16)
    assert not RequestPlanner().step(output(cell_socs=even)).full_charge  # no request: none


def test_thresholds_out_of_order_are_rejected() -> None:
    with pytest.raises(ValueError, match="force_charge_cell_v"):
        RequestThresholds(force_charge_cell_v=3.2, force_charge_clear_cell_v=3.0)
