"""Pure parts of updates: versions and fits, the image format, the health gate and watch, the
update hold in the control step, and the version store's atomic switch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.control import Controller
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.update.firmware import build_image, image_problem, parse_header
from gateway.update.health import HealthRecord, HealthWatch, Verdict, unsafe_reason
from gateway.update.model import TargetKind, Version, parse_target
from gateway.update.store import VersionStore

# --- versions and targets ---------------------------------------------------------------------


def test_versions_compare_part_by_part() -> None:
    assert Version.parse("1.10.0") > Version.parse("1.9.9")
    assert Version.parse("1.4") == Version.parse("1.4.0")
    assert str(Version.parse("1.4.0")) == "1.4.0"
    for bad in ("", "v1.2", "1..2", "1.2.3.4.5", "-1"):
        with pytest.raises(ValueError, match="dotted integers"):
            Version.parse(bad)


def test_target_custom_metadata_is_checked_and_fits_are_matched() -> None:
    custom = {"kind": "config", "version": "2.0", "fits": {"chemistry": ["lfp"], "cells": [16]}}
    t = parse_target("config/a.tar.gz", 10, {"sha256": "00"}, custom)
    assert t.kind is TargetKind.CONFIG
    assert t.fits_here({"chemistry": "lfp", "cells": "16"}) is None
    assert t.fits_here({"chemistry": "nmc", "cells": "16"}) == "fits chemistry lfp, this one is nmc"
    with pytest.raises(ValueError, match=r"config/x: kind \(='firmware'\) not one of"):
        parse_target("config/x", 1, {}, {"kind": "firmware", "version": "1"})
    with pytest.raises(ValueError, match="unknown fits key 'site'"):
        parse_target("config/x", 1, {}, {"kind": "config", "version": "1", "fits": {"site": 1}})
    with pytest.raises(ValueError, match="no custom metadata"):
        parse_target("config/x", 1, {}, None)
    for bad_path in ("../etc/x", "/abs", "config//x", "config/./x"):
        with pytest.raises(ValueError, match="not a plain relative path"):
            parse_target(bad_path, 1, {}, {"kind": "config", "version": "1"})


# --- the image format -------------------------------------------------------------------------


def test_image_header_round_trip_and_crc() -> None:
    image = build_image(os.urandom(1000), "3.2.1", "bms-a")
    head = parse_header(image)
    assert (str(head.version), head.hardware, head.payload_length) == ("3.2.1", "bms-a", 1000)
    assert image_problem(image) is None
    bad = bytearray(image)
    bad[-1] ^= 1
    assert image_problem(bytes(bad)) == "payload CRC-32 does not match the header"
    assert "shorter than its header" in (image_problem(image[:10]) or "")


# --- the gate and the watch -------------------------------------------------------------------


def _rec(boot: str = "a", t: float = 100.0, seq: int = 10, **kw: object) -> HealthRecord:
    fields: dict[str, object] = {
        "boot_id": boot,
        "written_s": t,
        "seq": seq,
        "complete": True,
        "current_a": 0.5,
        "links": {"can": True},
    }
    fields.update(kw)
    return HealthRecord(**fields)  # type: ignore[arg-type]


def test_safe_to_update_gate() -> None:
    gate = {"stale_s": 5.0, "safe_current_a": 2.0}
    assert unsafe_reason(_rec(), 101.0, **gate) is None
    assert "no health record" in (unsafe_reason(None, 101.0, **gate) or "")
    assert "20 s old" in (unsafe_reason(_rec(), 120.0, **gate) or "")
    assert unsafe_reason(_rec(alarms=("cell_overvoltage",)), 101.0, **gate) == (
        "alarm active: cell_overvoltage"
    )
    assert unsafe_reason(_rec(current_a=-30.0), 101.0, **gate) == (
        "pack current -30.0 A exceeds 2 A"
    )
    assert unsafe_reason(_rec(current_a=None), 101.0, **gate) == "pack current unknown"
    assert HealthRecord.from_json(_rec().to_json()) == _rec()
    with pytest.raises(ValueError, match="malformed"):
        HealthRecord.from_json({"boot_id": "x"})


def test_watch_passes_a_healthy_restart() -> None:
    w = HealthWatch(_rec("old"), started_s=100.0, window_s=3.0, stale_s=2.0, restart_timeout_s=10)
    assert w.observe(_rec("old", 100.5), 100.5).verdict is Verdict.PENDING  # still the old one
    assert w.observe(_rec("new", 102.0, seq=1), 102.0).verdict is Verdict.PENDING
    assert w.observe(_rec("new", 104.0, seq=40), 104.0).verdict is Verdict.PENDING
    assert w.observe(_rec("new", 105.0, seq=50), 105.1).verdict is Verdict.PASSED


@pytest.mark.parametrize(
    ("last", "reason"),
    [
        (_rec("new", 105.0, seq=1), "step count not advancing"),
        (_rec("new", 101.5, seq=50), "last health record 3.6 s old"),
        (_rec("new", 105.0, seq=50, complete=False), "data incomplete"),
        (_rec("new", 105.0, seq=50, links={"can": False}), "link down after the restart"),
        (_rec("new", 105.0, seq=50, alarms=("cell_undervoltage",)), "new alarm"),
    ],
)
def test_watch_fails_and_says_why(last: HealthRecord, reason: str) -> None:
    w = HealthWatch(_rec("old"), started_s=100.0, window_s=3.0, stale_s=2.0)
    w.observe(_rec("new", 101.0, seq=1), 101.0)
    result = w.observe(last, 105.1)
    assert result.verdict is Verdict.FAILED
    assert reason in result.reason


def test_watch_fails_when_the_gateway_never_comes_back() -> None:
    w = HealthWatch(_rec("old"), started_s=100.0, window_s=3.0, stale_s=2.0, restart_timeout_s=5)
    assert w.observe(_rec("old"), 104.0).verdict is Verdict.PENDING
    result = w.observe(_rec("old"), 105.5)
    assert result.verdict is Verdict.FAILED
    assert "did not come back" in result.reason


# --- the hold in the control step -------------------------------------------------------------


def test_update_hold_is_0_a_with_its_reason_and_lifts_through_the_ramp() -> None:
    ctrl = Controller(Settings())
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=50.0), seed=4)

    def run(seconds: int) -> tuple[float, float, str]:
        out = None
        for _ in range(seconds):
            sim.step(1.0, 0.0)
            ctrl.ingest(sim.readings())
            out = ctrl.step(sim.t_s)
        assert out is not None
        return out.limits.ccl_a.value, out.limits.dcl_a.value, out.limits.ccl_a.winner

    assert run(120)[:2] == (100.0, 100.0)
    ctrl.set_hold("update")
    assert run(1) == (0.0, 0.0, "update")  # in the same step
    ctrl.set_hold(None)
    ccl, _, winner = run(1)
    assert ccl == 0.0  # the ramp's hold first, not a jump back
    assert winner == "ramp"
    assert run(120)[:2] == (100.0, 100.0)


# --- the store --------------------------------------------------------------------------------


def test_store_switches_atomically_and_never_exposes_a_partial_version(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "config")

    def good(d: Path) -> None:
        (d / "config.toml").write_text("ok")

    store.install("1.0", good)
    store.switch("1.0")
    store.mark_good()

    def dies_halfway(d: Path) -> None:
        (d / "config.toml").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store.install("1.1", dies_halfway)
    assert store.installed() == ["1.0"]  # no trace of 1.1, partial or otherwise
    assert not list((tmp_path / "config" / "versions").glob(".partial-*"))
    assert (tmp_path / "config" / "current" / "config.toml").read_text() == "ok"
    with pytest.raises(FileNotFoundError):
        store.switch("1.1")
    with pytest.raises(ValueError, match="the one running"):
        store.install("1.0", good)
    store.install("1.1", good)
    assert store.switch("1.1") == "1.0"
    assert store.link("previous") == "1.0"
    assert store.link("last-good") == "1.0"


# --- the daemon's agent -----------------------------------------------------------------------


async def test_agent_holds_from_the_file_and_runs_the_periodic_check(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio
    import json
    import logging

    from gateway.errors import UpdateError
    from gateway.update.agent import UpdateAgent
    from gateway.update.config import UpdateConfig
    from tests.clock import wait_until

    caplog.set_level(logging.INFO, logger="gateway.update.agent")
    holds: list[str | None] = []
    checks: list[int] = []

    def check() -> str:
        checks.append(1)
        if len(checks) == 1:
            return "config: update available: 1.2.0 (installed 1.1.0)"
        raise UpdateError("update metadata refused: metadata expired: timestamp.json")

    cfg = UpdateConfig(
        metadata_url="http://127.0.0.1:9/m/",
        targets_url="http://127.0.0.1:9/t/",
        state_dir=str(tmp_path),
        check_interval_s=0.2,
    )
    agent = UpdateAgent(
        cfg, latest=lambda: None, links=lambda out: {}, set_hold=holds.append, check=check
    )
    (tmp_path / "hold.json").write_text(json.dumps({"reason": "update"}))
    task = asyncio.create_task(agent.run())
    try:
        await wait_until(lambda: holds == ["update"] and "update available" in caplog.text)
        (tmp_path / "hold.json").unlink()
        await wait_until(lambda: len(holds) == 2 and "metadata refused" in caplog.text)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert holds == ["update", None]
    assert len(checks) >= 2
    assert "update check: config: update available: 1.2.0" in caplog.text
    assert "update check: update metadata refused" in caplog.text
    assert not (tmp_path / "health.json").exists()  # no control output yet: nothing to report
