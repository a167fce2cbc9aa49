"""Payloads, topics and commands: pure, no broker."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from gateway.core.model import (
    BalancingMode,
    ChargePhase,
    ChargeState,
    CommandResult,
    Negotiation,
    ResetAlarms,
    SetBalancingMode,
    SetUserCurrentCap,
)
from gateway.mqtt.commands import MAX_CAP_A, json_depth, parse_command
from gateway.mqtt.payloads import (
    SCHEMA_VERSION,
    AlarmsPayload,
    BalancingPayload,
    CellsPayload,
    ChargePayload,
    StatePayload,
    alarms_key,
    alarms_payload,
    balancing_key,
    balancing_payload,
    cells_payload,
    command_result_payload,
    state_payload,
)
from gateway.mqtt.topics import Topics
from tests.mqtt.outputs import OVERVOLTAGE, limit, make_output


def test_state_payload_carries_limits_with_their_reasons_and_negotiation() -> None:
    neg = Negotiation("client", True, 80.0, 100.0, accepted_ccl_a=60.0, accepted_dcl_a=None)
    out = make_output(cells=16, negotiation=neg)
    text = state_payload(out, "gw", 1_700_000_000.5).model_dump_json()
    data = json.loads(text)
    assert data["v"] == SCHEMA_VERSION == 1
    assert data["gateway_id"] == "gw"
    assert data["soc_pct"] == 55.0
    assert data["soc_mean_pct"] == 56.5
    assert data["soh_pct"] == 97.0
    assert data["current_a"] == -20.0
    volts = sum(3.3 + 0.001 * i for i in range(16))
    assert data["voltage_v"] == pytest.approx(volts, abs=1e-3)
    assert data["power_w"] == pytest.approx(-20.0 * volts, abs=0.1)
    assert data["cell_spread_mv"] == pytest.approx(15.0)
    assert data["ccl_a"] == {
        "value": 80.0,
        "winner": "temperature",
        "terms": {"configured": 100.0, "temperature": 80.0, "soc_taper": 95.0},
    }
    assert data["dvl_v"]["winner"] == "configured"
    n = data["negotiation"]
    assert (n["requested_ccl_a"], n["accepted_ccl_a"], n["effective_ccl_a"]) == (80.0, 60.0, 60.0)
    assert (n["accepted_dcl_a"], n["effective_dcl_a"]) == (None, 100.0)
    assert data["mode"] == "normal"
    assert data["time"] == 1_700_000_000.5
    # The schema reads back what it wrote.
    assert StatePayload.model_validate_json(text).ccl_a.terms["soc_taper"] == 95.0


def test_unknown_and_non_finite_values_are_null_not_zero() -> None:
    out = make_output(with_soc=False)
    pack = replace(out.pack, current_a=None, pack_voltage_v=math.nan)
    bad = replace(
        out, pack=pack, limits=replace(out.limits, ccl_a=limit(math.nan, "x", x=math.inf))
    )
    data = json.loads(state_payload(bad, "gw", None).model_dump_json())
    assert data["soc_pct"] is None
    assert data["current_a"] is None
    assert data["voltage_v"] is None
    assert data["power_w"] is None
    assert data["ccl_a"] == {"value": None, "winner": "x", "terms": {"x": None}}
    assert "NaN" not in json.dumps(data)


def test_cells_payload_is_columnar_and_does_not_invent_per_cell_temperatures() -> None:
    out = make_output(cells=8, sensors=2, bleed=(3,))
    data = json.loads(cells_payload(out, "gw", None).model_dump_json())
    assert data["count"] == 8
    assert data["voltage_v"][7] == pytest.approx(3.307)
    assert data["soc_pct"][2] == 51.0
    assert data["capacity_ah"][1] == pytest.approx(99.9)
    assert data["resistance_mohm"] == [0.8] * 8
    # Unknown uncertainties (NaN in the model) go out as null, never as a made-up number.
    assert data["soc_rel_sigma_pct"] == [None] * 8
    assert data["capacity_sigma_ah"] == [None] * 8
    assert data["r1_mohm"] == [None] * 8
    assert data["tau1_s"] == [None] * 8
    assert data["balancing"] == [i == 3 for i in range(8)]
    assert data["temp_c"] is None  # 2 sensors for 8 cells: no per-cell temperature made up
    assert data["sensor_temp_c"] == [25.0, 25.1]
    one_each = json.loads(
        cells_payload(make_output(cells=4, sensors=4), "gw", None).model_dump_json()
    )
    assert one_each["temp_c"] == [25.0, 25.1, 25.2, 25.3]
    no_soc = cells_payload(make_output(with_soc=False), "gw", None)
    assert no_soc.soc_pct is None
    assert CellsPayload.model_validate_json(no_soc.model_dump_json()) == no_soc


def test_alarms_change_key_ignores_live_message_text() -> None:
    a = make_output(alarms=(OVERVOLTAGE,))
    b = make_output(alarms=(replace(OVERVOLTAGE, message="cell 3 at 3.72 V"),))
    c = make_output(alarms=(replace(OVERVOLTAGE, latched=False),))
    assert alarms_key(a.alarms) == alarms_key(b.alarms)
    assert alarms_key(a.alarms) != alarms_key(c.alarms)
    assert alarms_key(make_output().alarms) == ()
    data = alarms_payload(a, "gw", None)
    assert data.level == "alarm"
    assert data.active[0].code == "cell_overvoltage"
    assert data.active[0].severity == "alarm"
    assert data.active[0].latched
    assert AlarmsPayload.model_validate_json(data.model_dump_json()) == data


def test_balancing_payload_lists_each_action() -> None:
    out = make_output(cells=8, bleed=(1, 5))
    data = balancing_payload(out, "gw", None)
    assert data.mode == "passive"
    assert data.bleeding == [1, 5]
    assert [(a.cell, a.action, a.reason) for a in data.actions] == [
        (1, "bleed", "soc above mean"),
        (5, "bleed", "soc above mean"),
    ]
    assert BalancingPayload.model_validate_json(data.model_dump_json()) == data
    more = make_output(cells=8, bleed=(1, 5, 6))
    assert balancing_key(out.balancing) != balancing_key(more.balancing)
    # Progress of the same actions (charge moved, a reason quoting live values) is no change.
    later = replace(
        out.balancing,
        actions=tuple(
            replace(a, charge_ah=a.charge_ah + 0.5, reason="excess 1.234 Ah")
            for a in out.balancing.actions
        ),
    )
    assert balancing_key(later) == balancing_key(out.balancing)


def test_command_result_payload_echoes_id() -> None:
    p = command_result_payload("current_cap", "abc", CommandResult(True, "ok"), "gw", None)
    assert json.loads(p.model_dump_json())["id"] == "abc"


# --- topics ---------------------------------------------------------------------------------


def test_topics() -> None:
    t = Topics("bms", "gw-1")
    assert t.state == "bms/gw-1/state"
    assert t.availability == "bms/gw-1/availability"
    assert t.command_filter == "bms/gw-1/cmd/+"
    assert t.command_result == "bms/gw-1/cmd/result"
    assert t.command_name("bms/gw-1/cmd/current_cap") == "current_cap"
    assert t.command_name("bms/gw-2/cmd/current_cap") is None
    assert t.command_name("bms/gw-1/cmd/a/b") is None
    assert t.ha_status == "homeassistant/status"
    assert t.discovery("sensor", "soc") == "homeassistant/sensor/bmsgw_gw_1/soc/config"
    with pytest.raises(ValueError, match="gateway_id"):
        Topics("bms", "a/#")


# --- commands -------------------------------------------------------------------------------


def _parse(name: str, payload: bytes | str, enabled: bool = True, token: str | None = None):  # type: ignore[no-untyped-def]
    raw = payload.encode() if isinstance(payload, str) else payload
    return parse_command(name, raw, enabled=enabled, token=token)


def test_valid_commands_become_model_commands() -> None:
    p = _parse("reset_alarms", b"")
    assert p.command == ResetAlarms(source="mqtt")
    p = _parse("balancing_mode", '{"mode": "active", "id": "r1"}')
    assert p.command == SetBalancingMode(BalancingMode.ACTIVE, source="mqtt:r1")
    assert p.request_id == "r1"
    p = _parse("current_cap", '{"charge_a": 50, "discharge_a": null}')
    assert p.command == SetUserCurrentCap(charge_a=50.0, discharge_a=None, source="mqtt")
    # A cap above any limit is still a valid cap: the controller takes the minimum.
    p = _parse("current_cap", f'{{"charge_a": {MAX_CAP_A}}}')
    assert isinstance(p.command, SetUserCurrentCap)
    assert p.command.charge_a == MAX_CAP_A


@pytest.mark.parametrize(
    ("name", "payload", "reason"),
    [
        ("current_cap", '{"charge_a": -1}', "greater than or equal to 0"),
        ("current_cap", '{"charge_a": NaN}', "finite"),
        ("current_cap", '{"discharge_a": Infinity}', "finite"),
        ("current_cap", '{"charge_a": 1e400}', "finite"),
        ("current_cap", f'{{"charge_a": {MAX_CAP_A + 1}}}', "less than or equal"),
        ("current_cap", '{"charge_a": "50"}', "valid number"),
        ("current_cap", '{"charge_a": true}', "valid number"),
        ("current_cap", '{"charge": 5}', "unknown field"),
        ("current_cap", "[1, 2]", "expected a JSON object"),
        ("current_cap", "{not json", "not JSON"),
        ("current_cap", b"\xff\xfe", "not JSON"),
        ("balancing_mode", '{"mode": "turbo"}', "mode"),
        ("balancing_mode", "{}", "mode: Field required"),
        ("self_destruct", "{}", "unknown command"),
        ("reset_alarms", "x" * 5000, "too long"),
        ("reset_alarms", "[" * 2000 + "]" * 2000, "nested deeper than"),
        ("current_cap", '{"charge_a": [[[[[1]]]]]}', "nested deeper than"),
        ("reset_alarms", "{" * 4000, "nested deeper than"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(
    name: str, payload: str | bytes, reason: str
) -> None:
    p = _parse(name, payload)
    assert p.command is None
    assert reason in p.error


def test_authorisation() -> None:
    off = _parse("reset_alarms", '{"id": "x"}', enabled=False)
    assert off.command is None
    assert off.error.startswith("unauthorised")
    # With commands off the payload is not even decoded, so its id is not known.
    assert off.request_id is None
    token = "s3cret-token"
    assert _parse("reset_alarms", "{}", token=token).error.startswith("unauthorised")
    assert _parse("reset_alarms", '{"token": "nope"}', token=token).error.startswith("unauthorised")
    assert _parse("reset_alarms", '{"token": 12345678}', token=token).command is None
    ok = _parse("reset_alarms", f'{{"token": "{token}"}}', token=token)
    assert ok.command == ResetAlarms(source="mqtt")
    assert token not in repr(ok)


@pytest.mark.parametrize(
    ("payload", "depth"),
    [
        (b"", 0),
        (b"{}", 1),
        (b'{"a": [1, {"b": 2}]}', 3),
        (b'{"a": "[[[[[[[[[["}', 1),  # brackets inside a string do not count
        (rb'{"a": "\\"}', 1),  # an escaped backslash, then the closing quote
        (rb'{"a": "\\"[[[', 4),
        (rb'{"a": "\"[[[["}', 1),  # an escaped quote does not end the string
        (b"[" * 10_000, 5),  # stops counting past the limit
    ],
)
def test_json_depth_scans_before_decoding(payload: bytes, depth: int) -> None:
    assert json_depth(payload, 4) == depth


def test_nested_payload_is_rejected_even_when_commands_are_off() -> None:
    # The 2 KB message that stopped the daemon with a RecursionError.
    bomb = b"[" * 1024 + b"]" * 1024
    assert json.loads(b"[" * 10 + b"]" * 10) is not None  # the decoder itself would accept few
    for enabled in (False, True):
        p = _parse("reset_alarms", bomb, enabled=enabled)
        assert p.command is None
        assert p.error


def test_the_charge_payload_says_how_long_a_full_charge_waits() -> None:
    state = ChargeState(
        phase=ChargePhase.FLOAT,
        reason="float SoC reached (90.1 % >= 90 %)",
        since_s=100.0,
        cvl_v=53.03,
        full_charge_requested=True,
        full_charge_reason="SoC uncertainty 2.60 % >= 2.5 %",
        grid_charge_requested=False,
        last_full_age_s=2.5 * 86400.0,
        full_charge_due_in_s=5400.0,
    )
    p = ChargePayload.of(state)
    assert p.full_charge_due_in_h == 1.5
    assert p.last_full_age_h == 60.0
    assert ChargePayload.of(replace(state, full_charge_due_in_s=None)).full_charge_due_in_h is None
    assert ChargePayload.of(replace(state, full_charge_due_in_s=0.0)).full_charge_due_in_h == 0.0
