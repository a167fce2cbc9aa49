"""The shared field cases of trust (``../shared/cases``), replayed with their right values.

- ``implausible-cell-reading``: a 2.5 s reading of 0.85 V on an LFP cell is a measurement fault
  (0 A and ``measurement_fault`` while it lasts), never a latched undervoltage; at t = 240 s the
  DCL is back at 100 A with no active alarm.
- ``stale-values-on-mqtt``: after the BMS falls silent, the replay record and the view show the
  current and power as unknown and the data set as incomplete (MQTT: tests/mqtt).
- ``canfd-padded-frame``: an 11-byte CAN FD message padded to 12 bytes decodes.

The case files are read where they are, never copied into the repository.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from gateway.replay import ReplayStats, replay
from gateway.settings import load_settings
from gateway.view import render
from tests.conftest import REPO

CASES = REPO.parent / "shared" / "cases"


def case_dir(name: str) -> Path:
    d = CASES / name
    if not (d / "config.toml").is_file():
        pytest.skip(f"shared case {name} not found at {d} (it lives in ../shared/cases)")
    return d


def run_case(
    name: str, monkeypatch: pytest.MonkeyPatch, *, after_end_s: float = 0.0
) -> tuple[dict[float, dict[str, Any]], ReplayStats]:
    d = case_dir(name)
    monkeypatch.chdir(d)  # a case's config names its files relative to its folder
    stats = ReplayStats()
    settings = load_settings(d / "config.toml")
    recs = {
        r["t"]: r for r in replay(settings, d / "pack.log", stats=stats, after_end_s=after_end_s)
    }
    return recs, stats


def active(rec: dict[str, Any]) -> list[str]:
    return [a["code"] for a in rec["alarms"]]


def test_implausible_cell_reading_is_a_self_clearing_measurement_fault(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    recs, _ = run_case("implausible-cell-reading", monkeypatch)
    # 2.5 s of 0.85 V at 2 frames/s: 5 readings counted as measurement faults.
    assert "5 implausible reading(s)" in caplog.text
    # Right value of the case: at t = 240 s DCL = 100 A and no active alarm.
    assert recs[240.0]["limits"]["dcl_a"]["value"] == 100.0
    assert recs[240.0]["alarms"] == []
    # Before the glitch: normal.
    assert recs[89.0]["limits"]["dcl_a"]["value"] == 100.0
    # While it lasts: the value is not used, 0 A, a measurement-fault alarm.
    during = [recs[t] for t in (91.0, 92.0)]
    for rec in during:
        assert rec["cells"][2]["v"] is None
        # cells[2] in the JSON array is cell 3 in names people read.
        assert [f["input"] for f in rec["faults"]] == ["cell_voltage[3]"]
        assert rec["limits"]["dcl_a"]["value"] == 0.0
        assert rec["limits"]["ccl_a"]["value"] == 0.0
        assert rec["limits"]["dcl_a"]["winner"] == "implausible:cell_voltage[3]"
        alarm = next(a for a in rec["alarms"] if a["code"] == "measurement_fault")
        assert alarm["severity"] == "alarm"
        assert not alarm["latched"]
        assert "0.85 V" in alarm["message"]
    # Never an undervoltage (warning or alarm), never a latch, and it clears by itself.
    assert not any("cell_undervoltage" in active(r) for r in recs.values())
    assert not any(a["latched"] for r in recs.values() for a in r["alarms"])
    cleared = min(t for t, r in recs.items() if t > 92.0 and not r["alarms"])
    assert cleared <= 100.0


def test_stale_values_are_unknown_in_the_record_and_the_view(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    recs, _ = run_case("stale-values-on-mqtt", monkeypatch, after_end_s=15.0)
    live = recs[10.0]
    assert live["current_a"] == pytest.approx(20.0)
    assert live["complete"] is True
    # Right value: from t = 25 s current (and so power) is null and the set incomplete.
    late = [r for t, r in recs.items() if t >= 25.0]
    assert late, "the replay must run on past the last frame"
    for rec in late:
        assert rec["current_a"] is None
        assert rec["complete"] is False
        assert rec["limits"]["ccl_a"]["value"] == 0.0
        assert rec["mode"] != "normal"
        if rec["t"] > 25.5:  # cell voltages (and so the pack voltage) time out after 5 s
            assert all(c["v"] is None for c in rec["cells"])
            assert rec["voltage_v"] is None


def test_view_shows_a_stale_current_as_unknown() -> None:
    from gateway.control import Controller
    from gateway.core.model import Reading, Role
    from gateway.settings import Settings

    ctrl = Controller(Settings())
    ctrl.ingest([Reading(Role.PACK_CURRENT, 0, 20.0, 100.0)])
    fresh = render(ctrl.step(101.0), v_window=(2.5, 3.65))
    stale = render(ctrl.step(125.0), v_window=(2.5, 3.65))
    assert "+20.00 A" in fresh
    assert "+20.00 A" not in stale
    assert " I -- " in stale  # unknown, not the last value


def test_canfd_padded_frame_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    recs, stats = run_case("canfd-padded-frame", monkeypatch)
    rec = recs[20.0]
    assert [c["v"] for c in rec["cells"]] == pytest.approx([3.310, 3.312, 3.313, 3.311])
    assert rec["current_a"] == pytest.approx(-12.5)
    assert rec["temps_c"] == pytest.approx([20.0])
    assert rec["complete"] is True
    assert rec["errors"] == 0
    last = recs[max(recs)]
    assert (last["frames"], last["errors"]) == (stats.frames, 0)  # every frame decoded
    assert stats.bad_lines == 0
