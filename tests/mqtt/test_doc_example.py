"""docs/MQTT.md's examples are payloads the gateway could send: ``state`` (model, term names),
the ``charge_phase`` event (model, data keys, the stated bound)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from gateway.control import Controller
from gateway.core.kinds import ChargePhase
from gateway.core.model import ChargeState
from gateway.mqtt.payloads import EventPayload
from gateway.mqtt.payloads.state import StatePayload
from gateway.phase_events import PER_WINDOW, WINDOW_S, PhaseEvents
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from tests.mqtt.outputs import make_output

DOC = Path(__file__).resolve().parents[2] / "docs" / "MQTT.md"


def _state_example() -> dict[str, object]:
    section = DOC.read_text().split("### `state`", 1)[1]
    block = re.search(r"```json\n(.*?)```", section, re.S)
    assert block is not None
    return json.loads(block.group(1))


def test_the_state_example_validates_and_names_real_limit_terms() -> None:
    example = _state_example()
    StatePayload.model_validate(example)
    # The names a real step publishes (a 4-cell pack charging in the middle), plus the phases.
    ctrl = Controller(Settings.model_validate({"pack": {"cells": 4, "temp_sensors": 2}}))
    sim = PackSim(PackSimConfig(cells=4, temp_sensors=2, initial_soc_pct=50.0), seed=1)
    out = None
    for _ in range(5):
        sim.step(1.0, 20.0)
        ctrl.ingest(sim.readings())
        out = ctrl.step(sim.t_s)
    assert out is not None
    lims = out.limits
    real = {t.name for lim in (lims.ccl_a, lims.dcl_a, lims.cvl_v, lims.dvl_v) for t in lim.terms}
    real |= {p.value for p in ChargePhase}
    for key in ("ccl_a", "dcl_a", "cvl_v", "dvl_v"):
        limit = example[key]
        assert isinstance(limit, dict)
        assert set(limit["terms"]) <= real, key
        # CCL, DCL and CVL are the minimum of their terms, DVL (a lower bound) the maximum.
        pick = max if key == "dvl_v" else min
        assert limit["value"] == limit["terms"][limit["winner"]] == pick(limit["terms"].values())


def test_the_charge_phase_event_example_is_what_the_gateway_sends() -> None:
    section = DOC.read_text().split("### `events`", 1)[1].split("\n## ", 1)[0]
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", section, re.S)]
    (example,) = [b for b in blocks if b["event"] == "charge_phase"]
    EventPayload.model_validate(example)
    sent: list[tuple[str, dict[str, Any]]] = []
    phases = PhaseEvents(lambda name, **data: sent.append((name, data)))
    for seq, (phase, t_s) in enumerate(((ChargePhase.ABSORPTION, 10.0), (ChargePhase.FLOAT, 50.0))):
        charge = ChargeState(phase, "why", t_s, 53.6, False, "", False, None)
        phases.after_step(dataclasses.replace(make_output(seq=seq, t_s=t_s), charge=charge))
    ((name, data),) = sent
    assert name == example["event"]
    assert set(data) == set(example["data"])
    assert {example["data"]["phase"], example["data"]["previous"]} <= {p.value for p in ChargePhase}
    # The bound the text states is the bound in force.
    text = " ".join(section.split())
    assert f"at most {PER_WINDOW} `charge_phase` events pass per {WINDOW_S:g} s" in text
