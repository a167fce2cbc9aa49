"""Safety state across a restart: latched alarms, user caps, balancing mode and pauses.

A crash and a restart by systemd must never silently clear a latched cell over-voltage: the
controller exports the safety state beside the estimator state, the next one restores it and
comes up latched (0 A charge) until the cause is gone and someone resets it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from gateway.control import Controller
from gateway.core.model import (
    BalancingMode,
    ControlOutput,
    Reading,
    ResetAlarms,
    Role,
    SetBalancingMode,
    SetUserCurrentCap,
)
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.state_store import load_document, remove_orphans, save_state

HIGH_CELL_V = 3.70  # above the LFP over-voltage alarm (3.65 V), a value real cells reach


def _settings() -> Settings:
    s = Settings()
    return s.model_copy(update={"pack": s.pack.model_copy(update={"cells": 8, "temp_sensors": 2})})


def _step(ctrl: Controller, sim: PackSim, high: bool) -> ControlOutput:
    sim.step(1.0, 0.0)
    readings = sim.readings()
    if high:
        volts = [r.value for r in readings if r.role is Role.CELL_VOLTAGE]
        volts[0] = HIGH_CELL_V
        readings += [
            Reading(Role.CELL_VOLTAGE, 0, HIGH_CELL_V, sim.t_s),
            Reading(Role.PACK_VOLTAGE, 0, math.fsum(volts), sim.t_s),
        ]
    ctrl.ingest(readings)
    return ctrl.step(sim.t_s)


def _run(ctrl: Controller, sim: PackSim, seconds: int, high: bool = False) -> ControlOutput:
    out = None
    for _ in range(seconds):
        out = _step(ctrl, sim, high)
    assert out is not None
    return out


def _restart(ctrl: Controller, now_s: float, tmp_path: Path) -> Controller:
    """Save as the daemon does, then a new controller restores from the file."""
    path = tmp_path / "estimator.json"
    save_state(path, ctrl.export_state(), ctrl.export_safety(now_s))
    doc = load_document(path)
    assert doc.safety is not None
    new = Controller(_settings())
    if doc.estimator is not None:
        new.restore_state(doc.estimator)
    new.restore_safety(doc.safety, now_s)
    return new


def test_latched_overvoltage_survives_a_restart(tmp_path: Path) -> None:
    ctrl = Controller(_settings())
    sim = PackSim(PackSimConfig(cells=8, temp_sensors=2, initial_soc_pct=50.0), seed=3)
    _run(ctrl, sim, 120)
    out = _run(ctrl, sim, 5, high=True)
    latched = [a for a in out.alarms.active if a.latched]
    assert [a.code for a in latched] == ["cell_overvoltage"]
    _run(ctrl, sim, 30)  # the cause is gone, the latch holds
    assert ctrl.safety_key()[0] == ("cell_overvoltage",)

    new = _restart(ctrl, sim.t_s, tmp_path)
    # Restored before any data: the first step already carries the latch.
    out = _run(new, sim, 1)
    codes = {a.code: a for a in out.alarms.active}
    assert codes["cell_overvoltage"].latched
    assert "restored after a restart" in codes["cell_overvoltage"].message
    out = _run(new, sim, 120)
    assert out.limits.ccl_a.value == 0.0
    assert out.limits.ccl_a.winner == "protection:cell_overvoltage"
    # Cleared only by a reset once the data shows the cause gone.
    assert new.command(ResetAlarms(source="test"), sim.t_s).accepted
    out = _run(new, sim, 60)
    assert not any(a.latched for a in out.alarms.active)
    assert out.limits.ccl_a.value > 0.0


def test_caps_mode_and_pauses_survive_a_restart(tmp_path: Path) -> None:
    ctrl = Controller(_settings())
    sim = PackSim(PackSimConfig(cells=8, temp_sensors=2, initial_soc_pct=50.0), seed=5)
    _run(ctrl, sim, 10)
    before = ctrl.safety_key()
    ctrl.command(SetUserCurrentCap(charge_a=12.5, discharge_a=None), sim.t_s)
    ctrl.command(SetBalancingMode(BalancingMode.OFF), sim.t_s)
    ctrl.balancing.restore_pauses({3: 600.0}, sim.t_s)  # as the self-check would
    assert ctrl.safety_key() != before
    new = _restart(ctrl, sim.t_s, tmp_path)
    out = _run(new, sim, 120)
    assert out.limits.ccl_a.value == 12.5
    assert out.limits.ccl_a.winner == "user_cap"
    assert out.balancing.mode is BalancingMode.OFF
    assert set(new.balancing.export_pauses(sim.t_s)) == {3}
    left = new.balancing.export_pauses(sim.t_s)[3]
    assert 600.0 - 121.0 <= left <= 600.0 - 119.0  # the pause goes on where it stopped


@pytest.mark.parametrize(
    "bad",
    [
        {"version": 99},
        {"version": 1, "user_cap_charge_a": -5},
        {"version": 1, "user_cap_charge_a": float("nan")},
        {"version": 1, "user_cap_charge_a": True},
        {"version": 1, "balancing_mode": "turbo"},
        {"version": 1, "latched_alarms": [1, 2]},
        {"version": 1, "balancing_pauses_s": {"x": 1}},
    ],
)
def test_malformed_safety_state_is_refused_and_changes_nothing(bad: dict[str, object]) -> None:
    ctrl = Controller(_settings())
    ctrl.command(SetUserCurrentCap(charge_a=3.0, discharge_a=None), 0.0)
    key = ctrl.safety_key()
    with pytest.raises(ValueError):  # noqa: PT011 - every message names its field
        ctrl.restore_safety(bad, 0.0)
    assert ctrl.safety_key() == key


def test_orphaned_temporary_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, {"a": 1}, {"version": 1})
    # What a SIGKILL between mkstemp and rename leaves behind, plus files that are not ours.
    for i in range(5):
        (tmp_path / f".estimator.json.k{i}x.tmp").write_text("{", encoding="utf-8")
    (tmp_path / "notes.tmp").write_text("keep", encoding="utf-8")
    (tmp_path / ".other.json.abc.tmp").write_text("keep", encoding="utf-8")
    assert remove_orphans(path) == 5
    assert sorted(os.listdir(tmp_path)) == [".other.json.abc.tmp", "estimator.json", "notes.tmp"]
    doc = load_document(path)
    assert doc.estimator == {"a": 1}
    assert doc.safety == {"version": 1}


def test_old_files_without_safety_still_load(tmp_path: Path) -> None:
    path = tmp_path / "estimator.json"
    path.write_text(
        json.dumps({"format": "bms-gateway-estimator-state", "state": {"a": 1}}), encoding="utf-8"
    )
    doc = load_document(path)
    assert doc.estimator == {"a": 1}
    assert doc.safety is None
