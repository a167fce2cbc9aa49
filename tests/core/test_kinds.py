"""core/kinds.py: the enums keep the documented payload strings; kinds are carried, not parsed."""

from __future__ import annotations

import json
from enum import StrEnum

import pytest

from gateway.core import kinds, model
from gateway.core.freshness import TimeoutsConfig, stale_inputs
from gateway.core.kinds import (
    BalancingMode,
    CellAction,
    ChargePhase,
    GatewayMode,
    InverterLink,
    StaleKind,
    TermKind,
)
from gateway.core.limits import LimitsCalculator, LimitsConfig
from gateway.core.model import Alarm, AlarmReport, LimitTerm, Severity
from gateway.core.pack import PackConfig, PackState
from gateway.inverter_can.config import InverterProtocol
from tests.core.packdata import feed, snapshot, soc_report

# The strings docs/MQTT.md, docs/LIMITS.md and docs/REPLAY.md document for each enum.
DOCUMENTED: dict[type[StrEnum], set[str]] = {
    GatewayMode: {"starting", "normal", "fault", "stale"},
    CellAction: {"bleed", "donate", "receive", "blocked"},
    InverterLink: {"server", "client", "can:pylon", "can:sma", "can:victron", "can:pylon-hv"},
    StaleKind: {"missing", "stale", "implausible"},
    BalancingMode: {"off", "passive", "active"},
    ChargePhase: {"bulk", "absorption", "float"},
}


@pytest.mark.parametrize("enum", list(DOCUMENTED), ids=lambda e: e.__name__)
def test_values_are_the_documented_strings(enum: type[StrEnum]) -> None:
    assert {m.value for m in enum} == DOCUMENTED[enum]
    for m in enum:
        # What the payloads do with a member: compare, format, serialise.
        assert m == m.value
        assert f"{m}" == m.value
        assert json.dumps({"x": m}) == json.dumps({"x": m.value})


def test_the_model_re_exports_every_enum() -> None:
    for name in ("GatewayMode", "CellAction", "InverterLink", "StaleKind", "TermKind", "Role"):
        assert getattr(model, name) is getattr(kinds, name)
        assert name in model.__all__


def test_every_battery_can_protocol_has_a_link_name() -> None:
    # The inverter CAN link names itself ``InverterLink(f"can:{protocol}")``: a new protocol
    # without a member would fail there, at the first negotiation.
    for protocol in InverterProtocol:
        if protocol is InverterProtocol.OFF:
            continue
        assert InverterLink(f"can:{protocol.value}").value == f"can:{protocol.value}"


def test_stale_inputs_carry_their_kind_and_name_it_in_the_reason() -> None:
    cfg = PackConfig(cells=2, temp_sensors=1)
    state = PackState(cfg)
    feed(state, 0.0, [3.3, None], [25.0], 1.0)
    feed(state, 10.0, [3.3], [25.0])  # the current is 10 s old, cell 2 never came
    found = {
        s.input: s for s in stale_inputs(state.snapshot(10.0), TimeoutsConfig().input_timeouts(cfg))
    }
    assert found["cell_voltage"].kind is StaleKind.MISSING
    assert found["cell_voltage"].name == "missing:cell_voltage[2]"
    assert found["current"].kind is StaleKind.STALE
    assert found["current"].name == "stale:current"


def _kinds(terms: tuple[LimitTerm, ...]) -> dict[str, TermKind]:
    return {t.name: t.kind for t in terms}


def test_every_limit_term_says_what_it_stands_for() -> None:
    pack = PackConfig(cells=4, temp_sensors=1)
    calc = LimitsCalculator(LimitsConfig(), pack)
    snap = snapshot((3.30, 3.31, 3.48, 3.30), (25.0,))
    alarm = Alarm("cell_overvoltage", Severity.ALARM, "high", 0.0)
    lim = calc.step(
        snap,
        soc_report([50.0] * 4, [100.0] * 4),
        AlarmReport((alarm,)),
        0.0,
        inverter_max_charge_a=80.0,
        user_cap_discharge_a=60.0,
        cvl_phase=LimitTerm("bulk", 13.8, TermKind.PHASE),
        link_hold="setop_disconnect",
        hold="update",
    )
    assert _kinds(lim.ccl_a.terms) == {
        "protection:cell_overvoltage": TermKind.PROTECTION,
        "link:setop_disconnect": TermKind.LINK,
        "update": TermKind.HOLD,
        "max": TermKind.CONFIGURED,
        "cell_voltage": TermKind.DERATING,
        "imbalance": TermKind.DERATING,
        "temperature": TermKind.DERATING,
        "soc": TermKind.DERATING,
        "inverter": TermKind.INVERTER,
    }
    assert _kinds(lim.dcl_a.terms)["user_cap"] is TermKind.USER_CAP
    assert _kinds(lim.cvl_v.terms) == {
        "bulk": TermKind.PHASE,
        "max": TermKind.CONFIGURED,
        "cell_high": TermKind.DERATING,
    }
    assert _kinds(lim.dvl_v.terms) == {"min": TermKind.CONFIGURED}
    # The winner's kind rides on the limit: nobody parses the winner's name.
    assert lim.ccl_a.value == 0.0
    assert lim.ccl_a.winner == "protection:cell_overvoltage"
    assert lim.ccl_a.winner_kind is TermKind.PROTECTION
    assert lim.cvl_v.winner_kind is TermKind.DERATING  # cell_high pulls CVL down


def test_fail_safe_and_ramp_terms_carry_their_kinds() -> None:
    pack = PackConfig(cells=2, temp_sensors=1)
    calc = LimitsCalculator(LimitsConfig(ramp_hold_s=0.0, ramp_a_per_s=1.0), pack)
    state = PackState(pack)
    feed(state, 0.0, [3.3, None], [25.0], 0.0)
    lim = calc.step(state.snapshot(0.0), None, AlarmReport(), 0.0)
    assert lim.ccl_a.winner == "missing:cell_voltage[2]"
    assert lim.ccl_a.winner_kind is TermKind.MISSING
    feed(state, 1.0, [3.3, 3.3], [25.0], 0.0)
    lim = calc.step(state.snapshot(1.0), None, AlarmReport(), 1.0)
    assert (lim.ccl_a.winner, lim.ccl_a.winner_kind) == ("ramp", TermKind.RAMP)
    assert _kinds(lim.ccl_a.terms)["ramp"] is TermKind.RAMP
