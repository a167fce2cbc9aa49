"""Replay and time: impossible timestamps are unreadable frames, and steps follow the daemon's
schedule (per frame, bounded by ``control.min_step_s``; a tick every ``control.tick_s``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.canbus.config import CanConfig
from gateway.core.pack import PackConfig
from gateway.core.protection import ProtectionConfig
from gateway.replay import ReplayStats, replay
from gateway.settings import ControlConfig, Settings
from tests.canbus.logs import write_log
from tests.test_replay import CELLS, SENSORS, bms_frames, run


@pytest.mark.parametrize("stamp", ["inf", "nan", "-inf", "1e17", "-3.0"])
def test_impossible_log_times_are_counted_and_the_replay_ends(
    tmp_path: Path, stamp: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bad.log"
    write_log(path, bms_frames(30.0))
    lines = path.read_text().splitlines()
    # A current frame mid-log gets the impossible time; so does one near the end.
    for k in (200, len(lines) - 3):
        _, rest = lines[k].split(")", 1)
        lines[k] = f"({stamp}){rest}"
    path.write_text("\n".join(lines) + "\n")
    caplog.set_level(logging.WARNING)
    stats = ReplayStats()
    records = run(path, stats)
    assert stats.bad_times == 2
    assert stats.bad_lines == 2
    assert [r["t"] for r in records] == [float(k) for k in range(1, 31)]
    assert records[-1]["errors"] == 2
    assert all(r["complete"] for r in records)
    assert "impossible timestamp" in caplog.text


def test_nan_time_never_makes_a_value_look_fresh(tmp_path: Path) -> None:
    """``(nan)`` on the last current frame: after 2 s without current the limits are 0 A."""
    path = tmp_path / "nan.log"
    frames = bms_frames(10.0)
    lines_path = tmp_path / "all.log"
    write_log(lines_path, frames)
    lines = lines_path.read_text().splitlines()
    # Keep 10 s of data, then the current frame alone for 10 s more, stamped (nan).
    pack_line = next(line for line in lines if " 120#" in line)
    tail = ["(nan)" + pack_line.split(")", 1)[1]] * 100
    path.write_text("\n".join([*lines, *tail]) + "\n")
    records = list(
        replay(
            Settings(pack=PackConfig(cells=CELLS, temp_sensors=SENSORS), can=CanConfig()),
            path,
            after_end_s=5.0,
        )
    )
    last = records[-1]
    assert last["t"] >= 14.0
    assert last["current_a"] is None
    assert last["limits"]["ccl_a"]["value"] == 0.0
    assert last["limits"]["dcl_a"]["value"] == 0.0


def test_a_time_going_back_is_held_and_a_huge_gap_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "jumps.log"
    write_log(path, bms_frames(3.0) + bms_frames(3.0, t0=1_700_000_000.0 + 1e6))
    lines = path.read_text().splitlines()
    lines.insert(50, lines[0])  # a frame stamped earlier than the ones before it
    path.write_text("\n".join(lines) + "\n")
    stats = ReplayStats()
    records = run(path, stats)
    ts = [r["t"] for r in records]
    assert ts == sorted(ts)
    assert len(records) < 20  # the gap of 11 days is not filled
    assert stats.steps < 2_000


def _burst_settings(count: int) -> Settings:
    return Settings(
        pack=PackConfig(cells=CELLS, temp_sensors=SENSORS),
        control=ControlConfig(tick_s=0.1, min_step_s=0.002),
        protection=ProtectionConfig(
            debounce_count=count,
            debounce_s=0.0,
            overcurrent_discharge_warning_a=5.0,
            overcurrent_discharge_alarm_a=10.0,
            latching=(),
        ),
    )


def test_count_based_debounce_counts_frames_as_the_daemon_does(tmp_path: Path) -> None:
    """A discharge of 12.345 A in 0.1 s cycles: 10 frames a second carry the current.

    With ``debounce_count = 5`` and no time debounce, the alarm is active within the first
    second, as in the daemon that steps on every frame (one step per second of log time would
    need five seconds).
    """
    path = tmp_path / "burst.log"
    write_log(path, bms_frames(3.0))
    stats = ReplayStats()
    records = list(replay(_burst_settings(5), path, stats=stats))
    first = records[0]
    assert any(a["code"] == "overcurrent_discharge" for a in first["alarms"])
    # A step on new data (frames less than min_step_s apart share the next one), ticks while
    # none arrives, and the records: at least one per 0.1 s cycle, never more than the frames,
    # ticks and records together.
    assert 30 <= stats.steps <= stats.frames + 3.0 / 0.1 + len(records) + 1
