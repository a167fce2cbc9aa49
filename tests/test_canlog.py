"""gateway/canlog.py: the formats python-can reads, sniffed from the content, plain or gzip."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest

from gateway.canlog import LogFormat, LogKind, ReadStats, detect_format, iter_log
from gateway.errors import GatewayError
from tests.canbus.logs import write_log
from tests.test_replay import PER_CYCLE, ReplayStats, _gen, bms_frames, check_values, run

#: Every format python-can writes and this module reads, with the kind it must be read as.
WRITTEN = {
    ".log": LogKind(LogFormat.CANDUMP),
    ".asc": LogKind(LogFormat.ASC),
    ".blf": LogKind(LogFormat.BLF),
    ".trc": LogKind(LogFormat.TRC),
    ".csv": LogKind(LogFormat.CSV),
    ".db": LogKind(None),  # python-can's SQLite log: read by can.LogReader, by its name
    ".log.gz": LogKind(LogFormat.CANDUMP, compressed=True),
    ".asc.gz": LogKind(LogFormat.ASC, compressed=True),
    ".trc.gz": LogKind(LogFormat.TRC, compressed=True),
    ".csv.gz": LogKind(LogFormat.CSV, compressed=True),
}


@pytest.mark.parametrize("suffix", list(WRITTEN))
def test_every_format_python_can_writes_replays_the_same(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pack{suffix}"
    frames = bms_frames(3.0)
    write_log(path, frames)
    assert detect_format(path) == WRITTEN[suffix]
    stats = ReplayStats()
    records = run(path, stats)
    assert [r["t"] for r in records] == [1.0, 2.0, 3.0]
    assert stats.frames == len(frames) == 30 * PER_CYCLE
    assert stats.bad_lines == 0
    check_values(records[-1], _gen())


@pytest.mark.parametrize("suffix", [".trc", ".csv", ".log.gz", ".asc.gz"])
def test_the_content_decides_whatever_the_name(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"pack{suffix}"
    write_log(path, bms_frames(2.0))
    expected = run(path)
    renamed = tmp_path / "capture.txt"
    renamed.write_bytes(path.read_bytes())
    assert detect_format(renamed) == WRITTEN[suffix]
    assert run(renamed) == expected


def test_a_gzip_compressed_blf_is_read(tmp_path: Path) -> None:
    # python-can writes no .blf.gz; a user's gzip of a BLF reads like the BLF.
    blf = tmp_path / "pack.blf"
    write_log(blf, bms_frames(2.0))
    packed = tmp_path / "pack.bin"
    packed.write_bytes(gzip.compress(blf.read_bytes()))
    assert detect_format(packed) == LogKind(LogFormat.BLF, compressed=True)
    assert run(packed) == run(blf)


@pytest.mark.parametrize("suffix", [".csv", ".trc"])
def test_a_bad_line_in_csv_or_trc_is_counted_and_the_reading_goes_on(
    tmp_path: Path, suffix: str
) -> None:
    path = tmp_path / f"dirty{suffix}"
    frames = bms_frames(2.0)
    write_log(path, frames)
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if line.strip() and line[0] not in ";t")
    for k in (first + 3, first + 10):  # two data lines with a bad field
        cols = lines[k].split(",") if suffix == ".csv" else lines[k].split()
        cols[1] = "ZZ"  # the CSV id, the TRC time offset
        lines[k] = ",".join(cols) if suffix == ".csv" else " ".join(cols)
    path.write_text("\n".join(lines) + "\n")
    stats = ReadStats()
    read = list(iter_log(path, stats))
    assert stats.bad_lines == 2
    assert stats.bad_line_numbers == [first + 4, first + 11]
    assert len(read) == len(frames) - 2
    assert {f.frame_id for f in read} == {f.frame_id for f in frames}


def test_a_truncated_gzip_keeps_what_was_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cut.log.gz"
    write_log(path, bms_frames(60.0))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    caplog.set_level(logging.WARNING)
    stats = ReplayStats()
    records = run(path, stats)
    assert stats.bad_lines == 1
    assert "unreadable after line" in stats.truncated
    assert 0 < stats.frames < 60 * 10 * PER_CYCLE
    assert records[-1]["errors"] == 1
    check_values(records[0], _gen())
    assert "1 unreadable line(s)" in caplog.text


def test_files_no_reader_understands_are_one_line_errors(tmp_path: Path) -> None:
    not_gzip = tmp_path / "pack.log"
    not_gzip.write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    with pytest.raises(GatewayError, match=r"pack\.log: cannot read") as e:
        detect_format(not_gzip)
    assert "\n" not in str(e.value)
    text = tmp_path / "notes.trc"
    text.write_text("; a comment\nnot a frame\n")
    with pytest.raises(GatewayError, match="not a CAN log python-can can read"):
        detect_format(text)
    odd = tmp_path / "x.db"  # by name: python-can's SQLite reader, on a file that is none
    odd.write_bytes(b"\x00\x01 not sqlite " * 100)
    stats = ReadStats()
    assert list(iter_log(odd, stats)) == []
    assert stats.bad_lines == 1
    assert "unreadable after frame 0" in stats.truncated
