"""The time the daemon was off: written with the state, counted by the charge phases at start.

A gateway switched off for days (a power cut, a move, a replaced SD card) must not resume the
charge phases as if no time had passed: the days since the last full charge count the time off,
and the learned end of the daily charge keeps its time of day.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from gateway.control import Controller
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.state_store import load_document, save_state
from gateway.state_writer import MAX_OFF_S, StateWriter, time_off_s

DAY_S = 86400.0
SAVED_AT = 1_790_000_000.0  # a Unix time in 2026


def _settings() -> Settings:
    s = Settings()
    return s.model_copy(update={"pack": s.pack.model_copy(update={"cells": 8, "temp_sensors": 2})})


def _run(ctrl: Controller, sim: PackSim, seconds: int) -> None:
    for _ in range(seconds):
        sim.step(1.0, 0.0)
        ctrl.ingest(sim.readings())
        ctrl.step(sim.t_s)


def test_the_write_carries_the_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "estimator.json"
    save_state(path, {"a": 1}, saved_unix_s=SAVED_AT)
    assert load_document(path).saved_unix_s == SAVED_AT
    save_state(path, {"a": 1})  # as earlier versions wrote it
    assert load_document(path).saved_unix_s is None


@pytest.mark.parametrize("bad", ['"yesterday"', "true", "[1]", "1e999", "1" + "0" * 400])
def test_a_bad_write_time_is_no_time(
    tmp_path: Path, bad: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "estimator.json"
    head = '{"format":"bms-gateway-estimator-state","state":{"a":1},"saved_unix_s":'
    text = head + bad + "}"
    path.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        doc = load_document(path)
    assert doc.saved_unix_s is None
    assert doc.estimator == {"a": 1}  # the rest of the file is still used
    assert "is no time" in caplog.text


def test_time_off_refuses_clocks_that_went_back_or_jumped() -> None:
    assert time_off_s(None, SAVED_AT) == (0.0, None)
    assert time_off_s(SAVED_AT, SAVED_AT + 3 * DAY_S) == (3 * DAY_S, None)
    off, why = time_off_s(SAVED_AT, SAVED_AT - 60.0)
    assert off == 0.0
    assert why is not None
    assert "not counted" in why
    off, why = time_off_s(SAVED_AT, SAVED_AT + MAX_OFF_S + 1.0)
    assert off == 0.0
    assert why is not None


def _saved_with_a_full_charge(tmp_path: Path, age_s: float) -> tuple[Path, PackSim]:
    """A state file as a daemon writes it, whose last full charge was ``age_s`` ago."""
    ctrl = Controller(_settings())
    sim = PackSim(PackSimConfig(cells=8, temp_sensors=2, initial_soc_pct=50.0), seed=3)
    _run(ctrl, sim, 30)
    path = tmp_path / "estimator.json"
    StateWriter(ctrl, path, 60.0, clock=lambda: sim.t_s, wall_clock=lambda: SAVED_AT).save_now()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["saved_unix_s"] == SAVED_AT
    doc["state"]["charge_phase"]["last_full_age_s"] = age_s
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path, sim


@pytest.mark.parametrize(
    ("off_s", "counted_s"),
    [(3 * DAY_S, 3 * DAY_S), (-DAY_S, 0.0), (2 * MAX_OFF_S, 0.0)],
)
def test_a_restart_counts_the_time_off_in_the_full_charge_age(
    tmp_path: Path, off_s: float, counted_s: float
) -> None:
    path, sim = _saved_with_a_full_charge(tmp_path, age_s=3600.0)
    new = Controller(_settings())
    wall = SAVED_AT + off_s
    StateWriter(new, path, 60.0, clock=lambda: sim.t_s, wall_clock=lambda: wall).restore()
    _run(new, sim, 10)
    state = new.export_state()
    assert state is not None
    age = state["charge_phase"]["last_full_age_s"]
    assert age == pytest.approx(3600.0 + counted_s + 10.0, abs=2.0)


def test_an_integer_too_long_for_python_is_no_time_and_the_rest_is_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # json.loads alone refuses integers over 4,300 digits with a plain ValueError.
    path = tmp_path / "estimator.json"
    head = '{"format":"bms-gateway-estimator-state","state":{"a":1},"saved_unix_s":'
    path.write_text(head + "1" * 5000 + "}", encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        doc = load_document(path)
    assert doc.estimator == {"a": 1}
    assert doc.saved_unix_s is None
    assert "is no time" in caplog.text


def test_huge_integers_in_the_estimator_and_safety_state_are_refused_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # float(10**400) raises OverflowError, which the restores' ValueError handling missed.
    path, sim = _saved_with_a_full_charge(tmp_path, age_s=3600.0)
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["state"]["soc_pct"][0] = 10**400
    doc["safety"]["user_cap_charge_a"] = 10**400
    doc["safety"]["balancing_pauses_s"] = {"1": 10**400}
    path.write_text(json.dumps(doc), encoding="utf-8")
    new = Controller(_settings())
    with caplog.at_level(logging.WARNING):
        StateWriter(new, path, 60.0, clock=lambda: sim.t_s, wall_clock=lambda: SAVED_AT).restore()
    assert "not used" in caplog.text  # the estimator starts from OCV, the safety state refused
    assert "safety state" in caplog.text
    _run(new, sim, 3)
    assert new.export_state() is not None


def test_a_huge_integer_in_the_charge_state_is_refused_not_raised(tmp_path: Path) -> None:
    # A JSON integer too large for a float: the first step restores the charge phases.
    path, sim = _saved_with_a_full_charge(tmp_path, age_s=3600.0)
    doc = json.loads(path.read_text(encoding="utf-8"))
    phase = doc["state"]["charge_phase"]
    for key in ("last_full_age_s", "sigma_low_age_s", "charge_end_in_s", "lift_slope_a_per_h"):
        phase[key] = 10**400
    path.write_text(json.dumps(doc), encoding="utf-8")
    new = Controller(_settings())
    StateWriter(new, path, 60.0, clock=lambda: sim.t_s, wall_clock=lambda: SAVED_AT).restore()
    _run(new, sim, 3)
    state = new.export_state()
    assert state is not None
    assert state["charge_phase"]["last_full_age_s"] is None
