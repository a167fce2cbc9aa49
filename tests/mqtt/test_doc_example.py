"""docs/MQTT.md's ``state`` example is a payload the gateway could send (model, term names)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gateway.control import Controller
from gateway.core.kinds import ChargePhase
from gateway.mqtt.payloads.state import StatePayload
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig

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
