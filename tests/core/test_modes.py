"""``GatewayMode``: an enum in the core, the documented strings in every payload."""

from __future__ import annotations

import json

from gateway.core.model import GatewayMode


def test_the_values_are_the_documented_strings() -> None:
    # docs/MQTT.md: `mode`: `starting`, `normal`, `fault` or `stale`.
    assert [m.value for m in GatewayMode] == ["starting", "normal", "fault", "stale"]


def test_a_mode_serialises_and_formats_as_its_string() -> None:
    for m in GatewayMode:
        assert json.dumps({"mode": m}) == json.dumps({"mode": m.value})
        assert f"{m}" == m.value
        assert f"{m:8s}" == f"{m.value:8s}"  # the terminal view's column
        assert m == m.value  # old comparisons with the strings still hold
        codes: dict[str, int] = {m.value: 1}
        assert codes[m] == 1  # and lookups keyed by them (the CAN heartbeat's code map)
