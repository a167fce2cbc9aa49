"""Replay: logs written with cantools and python-can, through decoder and Controller, to JSONL."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cantools
import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import Decoder, load_decoder
from gateway.cli import main
from gateway.core.pack import PackConfig
from gateway.errors import ConfigError, GatewayError
from gateway.replay import ReplayStats, replay, replay_to_jsonl
from gateway.settings import Settings
from tests.canbus.logs import BmsFrames, Frame, write_log
from tests.conftest import BMS_DBC

CELLS, SENSORS = 8, 4


def settings(**can: Any) -> Settings:
    return Settings(pack=PackConfig(cells=CELLS, temp_sensors=SENSORS), can=CanConfig(**can))


@functools.cache
def _gen() -> BmsFrames:
    return BmsFrames(BMS_DBC, CELLS, SENSORS)


@functools.cache
def _decoder() -> Decoder:
    return load_decoder(CanConfig())


def run(path: Path, stats: ReplayStats | None = None) -> list[dict[str, Any]]:
    """Replay with the default profile (the decoder is compiled once per module, for speed)."""
    return list(replay(settings(), path, decoder=_decoder(), stats=stats))


def bms_frames(seconds: float, period_s: float = 0.1, t0: float = 1_700_000_000.0) -> list[Frame]:
    gen = _gen()
    steps = round(seconds / period_s)
    return [f for k in range(steps) for f in gen.cycle(t0 + k * period_s)]


#: Frames per cycle of the test pack: 2 voltage frames, 1 temperature frame, 1 pack frame.
PER_CYCLE = 4


@pytest.fixture(scope="module")
def gen() -> BmsFrames:
    return _gen()


def check_values(rec: dict[str, Any], gen: BmsFrames) -> None:
    assert [c["v"] for c in rec["cells"]] == pytest.approx(
        [gen.cell_mv(i) / 1000 for i in range(CELLS)]
    )
    assert rec["temps_c"] == pytest.approx([gen.temp_c(i) for i in range(SENSORS)])
    # Two cells per sensor: cell i reports sensor i * 4 // 8.
    assert [c["t_c"] for c in rec["cells"]] == pytest.approx(
        [gen.temp_c(i * SENSORS // CELLS) for i in range(CELLS)]
    )
    assert rec["current_a"] == pytest.approx(gen.current_ma / 1000)
    assert rec["voltage_v"] == pytest.approx(gen.voltage_v)


@pytest.mark.parametrize("suffix", [".log", ".asc", ".blf"])
def test_replay_formats_one_record_per_second(tmp_path: Path, gen: BmsFrames, suffix: str) -> None:
    path = tmp_path / f"pack{suffix}"
    frames = bms_frames(5.0)  # 50 cycles of 3 frames, 0.0 .. 4.9 s
    write_log(path, frames)
    stats = ReplayStats()
    records = run(path, stats)
    assert [r["t"] for r in records] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert stats.frames == len(frames) == 50 * PER_CYCLE
    assert stats.bad_lines == 0
    for rec in records:
        check_values(rec, gen)
        assert rec["complete"] is True
        assert rec["errors"] == 0
    # 10 cycles per second, cumulative; the record at t closes the second before it.
    assert [r["frames"] for r in records] == [10 * PER_CYCLE * k for k in range(1, 6)]


def test_garbage_lines_are_counted_and_the_replay_goes_on(
    tmp_path: Path, gen: BmsFrames, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "dirty.log"
    write_log(path, bms_frames(3.0))
    lines = path.read_text().splitlines()
    lines[4] = "this is not a candump line"
    lines[20] = "(1700000000.5) can0 1G0#0011"  # bad hex id
    lines[40] = "(1700000001.1) can0 120#00112233445566ZZ"  # bad data byte
    lines.insert(60, "")  # blank lines are not errors
    path.write_text("\n".join(lines) + "\n")
    caplog.set_level(logging.WARNING)
    stats = ReplayStats()
    records = run(path, stats)
    assert stats.bad_lines == 3
    assert stats.bad_line_numbers == [5, 21, 41]
    assert records[-1]["errors"] == 3
    assert len(records) == 3
    check_values(records[-1], gen)
    (warning,) = [r for r in caplog.records if "unreadable line" in r.getMessage()]
    assert str(path) in warning.getMessage()
    assert "line 5, 21, 41" in warning.getMessage()


def test_garbage_line_in_asc_is_counted(tmp_path: Path, gen: BmsFrames) -> None:
    path = tmp_path / "dirty.asc"
    write_log(path, bms_frames(2.0))
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if " Rx " in line)
    lines[first + 3] = lines[first + 3].replace(" Rx   d 8 ", " Rx   d 8 ZZ ")
    path.write_text("\n".join(lines) + "\n")
    stats = ReplayStats()
    records = run(path, stats)
    assert stats.bad_lines == 1
    assert records[-1]["errors"] == 1
    assert records[-1]["frames"] == stats.frames == 20 * PER_CYCLE - 1
    check_values(records[-1], gen)


def test_truncated_blf_keeps_what_was_read(tmp_path: Path, gen: BmsFrames) -> None:
    path = tmp_path / "cut.blf"
    write_log(path, bms_frames(3.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] + b"\x00garbage" * 8)
    stats = ReplayStats()
    records = run(path, stats)
    assert stats.bad_lines == 1
    assert "unreadable after frame" in stats.truncated
    assert 0 < stats.frames < 3 * 10 * PER_CYCLE
    assert records[-1]["errors"] == 1
    check_values(records[0], gen)  # what was read before the damage is replayed


def test_bad_frames_in_the_log_are_counted(tmp_path: Path, gen: BmsFrames) -> None:
    frames = bms_frames(2.0)
    frames.insert(5, Frame(frames[5].t_s, 0x100, b"\x00\x01"))  # truncated
    frames.insert(9, Frame(frames[9].t_s, 0x100, bytes([250]) + b"\x00" * 7))  # unknown mux
    frames.insert(12, Frame(frames[12].t_s, 0x555, b"\x00" * 8))  # not ours: ignored
    path = tmp_path / "bad.log"
    write_log(path, frames)
    records = run(path)
    assert records[-1]["errors"] == 2
    assert records[-1]["frames"] == 20 * PER_CYCLE
    check_values(records[-1], gen)


def test_incomplete_pack_and_invalid_flags_show_in_records(tmp_path: Path) -> None:
    gen = _gen()
    frames = [f for f in gen.cycle(10.0) if f.frame_id != 0x120]  # no current yet
    values: dict[str, float] = {"CellVoltages_Mux": 0}
    for i in range(4):
        values[f"CellVoltage_{i:03d}"] = 3000
        values[f"CellVoltage_{i:03d}_invalidFlag"] = int(i == 2)
    late = list(gen.cycle(11.5))
    late[0] = Frame(11.5, 0x100, gen.encode("BMS_CellVoltages", values))
    path = tmp_path / "partial.log"
    write_log(path, frames + late)
    first, second = run(path)
    assert first["complete"] is False
    assert first["current_a"] is None
    assert [c["v"] for c in second["cells"][:4]] == [3.0, 3.0, None, 3.0]
    assert second["complete"] is False  # cell 2 is invalid


def test_long_gaps_are_not_filled_second_by_second(tmp_path: Path) -> None:
    frames = bms_frames(1.5, t0=100.0) + bms_frames(1.5, t0=100.0 + 86_400)
    path = tmp_path / "gap.log"
    write_log(path, frames)
    records = run(path)
    assert len(records) < 10
    assert records[-1]["t"] > 86_400


def test_missing_and_unknown_logs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GatewayError, match="no such log file") as e:
        list(replay(settings(), tmp_path / "absent.log"))
    assert "\n" not in str(e.value)
    odd = tmp_path / "pack.trc"
    odd.write_text("x")
    with pytest.raises(GatewayError, match="not a CAN log python-can can read"):
        list(replay(settings(), odd))
    broken_blf = tmp_path / "broken.blf"
    broken_blf.write_bytes(b"LOGG" + b"\x00" * 10)
    with pytest.raises(GatewayError, match="not a readable BLF"):
        list(replay(settings(), broken_blf))


def test_the_content_decides_the_format_not_the_suffix(tmp_path: Path) -> None:
    frames = bms_frames(2.5)
    candump = tmp_path / "pack.log"
    write_log(candump, frames)
    expected = run(candump)
    for name in ("pack.txt", "pack.blf", "pack"):
        renamed = tmp_path / name
        renamed.write_bytes(candump.read_bytes())
        assert run(renamed) == expected, name


def test_replay_to_jsonl_and_cli(tmp_path: Path, gen: BmsFrames) -> None:
    log_path = tmp_path / "pack.log"
    write_log(log_path, bms_frames(3.0))
    out = tmp_path / "out.jsonl"
    assert replay_to_jsonl(settings(), log_path, out) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["t"] for r in records] == [1.0, 2.0, 3.0]
    check_values(records[-1], gen)

    config = tmp_path / "config.toml"
    config.write_text(f"[pack]\ncells = {CELLS}\ntemp_sensors = {SENSORS}\n")
    out2 = tmp_path / "cli.jsonl"
    assert main(["replay", str(log_path), "--config", str(config), "--out", str(out2)]) == 0
    assert out2.read_text() == out.read_text()
    assert main(["replay", str(tmp_path / "absent.log"), "--out", str(tmp_path / "x")]) == 1
    assert not (tmp_path / "x").exists()  # nothing written for a log that does not exist


def test_replay_with_a_bad_profile_is_a_config_error(tmp_path: Path) -> None:
    log_path = tmp_path / "pack.log"
    write_log(log_path, bms_frames(1.0))
    with pytest.raises(ConfigError, match="no such shipped profile"):
        list(replay(settings(profile="nope"), log_path))


# --- foxBMS 2 ---------------------------------------------------------------------------------


def foxbms_frames(db: Any, cells: int, sensors: int, seconds: float) -> Iterator[Frame]:
    volts = db.get_message_by_name("f_CellVoltages")
    temps = db.get_message_by_name("f_CellTemperatures")
    ivt = db.get_message_by_name("CS_IsabellenhuetteIvtString0Curr")
    p0 = db.get_message_by_name("f_PackValuesP0")
    for k in range(round(seconds * 10)):
        t = 50.0 + k * 0.1
        for mux in range(cells // 4):
            values: dict[str, float] = {"f_CellVoltages_Mux": mux}
            for j in range(4):
                i = 4 * mux + j
                values[f"CellVoltage_{i:03d}"] = 3600 + i
                values[f"CellVoltage_{i:03d}_invalidFlag"] = 1  # DBC: 1 = Valid
            yield Frame(t, volts.frame_id, bytes(volts.encode(values, strict=True)))
        for mux in range(sensors // 6):
            values = {"f_CellTemperatures_Mux": mux}
            for j in range(6):
                i = 6 * mux + j
                values[f"CellTemperature_{i:03d}"] = 20 + i
                values[f"CellTemperature_{i:03d}_invalidFlag"] = 1
            yield Frame(t, temps.frame_id, bytes(temps.encode(values, strict=True)))
        current = {
            "IVT_ID_Result_I": 0,
            "IVT_MsgCount_Result_I": k % 16,
            "IVT_Result_I_OCS": 0,
            "IVT_Result_I_Channel_Error": 0,
            "IVT_Result_I_Measurement_Error": 0,
            "IVT_Result_I_System_Error": 0,
            "IVT_Result_I": 30_000,  # 30 A discharge in foxBMS' convention
        }
        yield Frame(t, ivt.frame_id, bytes(ivt.encode(current, strict=True)))
        yield Frame(
            t,
            p0.frame_id,
            bytes(
                p0.encode(
                    {"Current": 30, "BatteryVoltage": 43.5, "BusVoltage": 43.4, "Power": 1.3},
                    strict=True,
                )
            ),
        )


def test_replay_of_a_foxbms_log(tmp_path: Path, foxbms_dbc: Path) -> None:
    db = cantools.database.load_file(foxbms_dbc, strict=True)
    cells, sensors = 12, 6
    path = tmp_path / "foxbms.log"
    write_log(path, foxbms_frames(db, cells, sensors, 2.0))
    cfg = Settings(
        pack=PackConfig(cells=cells, temp_sensors=sensors),
        can=CanConfig(profile="foxbms", dbc=(str(foxbms_dbc),)),
    )
    records = list(replay(cfg, path))
    assert [r["t"] for r in records] == [1.0, 2.0]
    rec = records[-1]
    assert [c["v"] for c in rec["cells"]] == pytest.approx([3.6 + i / 1000 for i in range(cells)])
    assert rec["temps_c"] == [20 + i for i in range(sensors)]
    assert rec["current_a"] == pytest.approx(-30.0)  # discharge is negative in the gateway
    assert rec["voltage_v"] == pytest.approx(43.5)
    assert rec["complete"] is True
    assert rec["errors"] == 0
