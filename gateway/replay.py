"""Replay a CAN log (candump ``-L``, ASC or BLF) through the live pipeline, as fast as it can.

The frames go through the very same ``Decoder`` and ``Controller`` as on the bus; the log's own
timestamps are the clock. One control step runs per second of log time and each step becomes one
JSON Lines record (``gateway.report.record``; schema in docs/REPLAY.md).

Bad input never stops a replay: a line the log reader cannot parse is counted as a dropped frame,
and the file and line numbers are logged once at the end. A missing file or an unknown format is
a one-line error.
"""

from __future__ import annotations

import json
import logging
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO, cast

import can
from can.io.blf import BLFParseError

from gateway.canbus.decode import Decoder, FrameDecodeError, load_decoder
from gateway.control import Controller
from gateway.core.model import ControlOutput
from gateway.errors import GatewayError
from gateway.report import record
from gateway.settings import Settings

__all__ = ["FORMATS", "LogFrame", "ReplayStats", "iter_log", "replay", "replay_to_jsonl"]

log = logging.getLogger(__name__)

#: File suffix -> log format.
FORMATS = {".log": "candump", ".asc": "asc", ".blf": "blf"}

#: Gaps in the log longer than this are not filled with one record per second (a logger that was
#: paused overnight would otherwise produce tens of thousands of identical records).
MAX_FILLED_GAP_S = 3600.0

_SHOWN_BAD_LINES = 5


@dataclass(slots=True)
class ReplayStats:
    """What a replay read, for the summary and the tests."""

    frames: int = 0
    """CAN frames read from the log (all ids)."""
    bad_lines: int = 0
    """Lines (or BLF objects) the log reader could not parse."""
    bad_line_numbers: list[int] = field(default_factory=list)
    """The first few bad line numbers."""
    records: int = 0
    truncated: str = ""
    """Why a binary log stopped early, if it did."""


@dataclass(frozen=True, slots=True)
class LogFrame:
    """One frame from a log: time (log seconds), id, extended flag, data, remote flag."""

    t_s: float
    frame_id: int
    extended: bool
    data: bytes
    remote: bool = False


class _Lines:
    """A text file as an iterator of lines that knows the current line number.

    python-can's text readers iterate ``self.file``; when one raises on a bad line, a new reader
    on the same ``_Lines`` continues with the next line.
    """

    def __init__(self, f: IO[str]) -> None:
        self._f = f
        self.line_no = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = next(self._f)
        self.line_no += 1
        return line

    def close(self) -> None:
        """Close the file (python-can readers call this when done)."""
        self._f.close()


class _ResumedASCReader(can.ASCReader):
    """An ASC reader that continues after a bad line: the header was read by the first one."""

    def _extract_header(self) -> None:
        return


def _bad(stats: ReplayStats, path: Path, line_no: int, exc: BaseException) -> None:
    stats.bad_lines += 1
    if len(stats.bad_line_numbers) < _SHOWN_BAD_LINES:
        stats.bad_line_numbers.append(line_no)
    if stats.bad_lines == 1:
        log.debug("%s:%d: unreadable line (%s)", path, line_no, exc)


def _text_messages(path: Path, fmt: str, stats: ReplayStats) -> Iterator[can.Message]:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        lines = _Lines(f)
        source = cast(TextIO, lines)  # python-can only iterates it and closes it
        reader: can.CanutilsLogReader | can.ASCReader
        reader = can.CanutilsLogReader(source) if fmt == "candump" else can.ASCReader(source)
        while True:
            try:
                yield from reader
                return
            except (ValueError, IndexError, TypeError, KeyError) as e:
                # python-can parses one line per step; a bad one ends that reader only.
                _bad(stats, path, lines.line_no, e)
                if isinstance(reader, can.ASCReader):
                    resumed = _ResumedASCReader(source)
                    resumed.base = reader.base
                    resumed._converted_base = reader._converted_base
                    resumed.start_time = reader.start_time
                    reader = resumed
                else:
                    reader = can.CanutilsLogReader(source)


def _open_blf(path: Path) -> can.BLFReader:
    f = path.open("rb")  # opened here: python-can leaves its own file open when the header is bad
    try:
        return can.BLFReader(f)
    except (BLFParseError, struct.error, OSError, ValueError) as e:
        f.close()
        raise GatewayError(f"{path}: not a readable BLF file: {e or type(e).__name__}") from None


def _blf_messages(reader: can.BLFReader, path: Path, stats: ReplayStats) -> Iterator[can.Message]:
    with reader:
        try:
            yield from reader
        except (BLFParseError, struct.error, zlib.error, ValueError, EOFError) as e:
            # A binary log cannot be resynchronised after a corrupt object: stop here.
            _bad(stats, path, stats.frames + 1, e)
            stats.truncated = f"unreadable after frame {stats.frames}: {e or type(e).__name__}"


def iter_log(path: Path, stats: ReplayStats | None = None) -> Iterator[LogFrame]:
    """The data frames of a log file in order; error frames are skipped.

    Raises:
        GatewayError: the file is missing or its format is unknown (one line), at the call.
    """
    stats = stats if stats is not None else ReplayStats()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise GatewayError(
            f"{path}: unknown log format {path.suffix or '(no suffix)'!r} "
            "(expected .log candump -L, .asc or .blf)"
        )
    if not path.is_file():
        raise GatewayError(f"{path}: no such log file")
    if fmt == "blf":
        messages = _blf_messages(_open_blf(path), path, stats)
    else:
        messages = _text_messages(path, fmt, stats)
    return _frames(messages, stats)


def _frames(messages: Iterator[can.Message], stats: ReplayStats) -> Iterator[LogFrame]:
    for msg in messages:
        if msg.is_error_frame:
            continue
        stats.frames += 1
        yield LogFrame(
            msg.timestamp,
            msg.arbitration_id,
            msg.is_extended_id,
            bytes(msg.data or b""),
            msg.is_remote_frame,
        )


def replay(
    settings: Settings,
    log_path: Path,
    *,
    decoder: Decoder | None = None,
    stats: ReplayStats | None = None,
    tx: Callable[[Decoder], Callable[[ControlOutput], None]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run ``log_path`` through decoder and controller; yield one record per second of log time.

    The last record closes the last (partial) second. Garbage lines count as dropped frames.
    ``tx(decoder)`` returns a sink that sees every step's output (``--tx-out``).

    Raises:
        ConfigError: the profile or DBC is wrong (before any record).
        GatewayError: the log is missing or of an unknown format (before any record).
    """
    stats = stats if stats is not None else ReplayStats()
    frames = iter_log(log_path, stats)  # a missing log fails here, before the slower DBC load
    decoder = decoder if decoder is not None else load_decoder(settings.can)
    decoder.check_pack(settings.pack.cells, settings.pack.temp_sensors)
    ctrl = Controller(settings)
    errors_before = dict(decoder.counters.errors)  # a reused decoder keeps counting
    handles, decode = decoder.handles, decoder.decode
    count, ingest, step = ctrl.count_frame, ctrl.ingest, ctrl.step
    if tx is not None:
        sink = tx(decoder)

        def step(now_s: float) -> ControlOutput:
            out = ctrl.step(now_s)
            sink(out)
            return out

    t0: float | None = None
    next_step = 0.0
    pending = False  # frames since the last step
    bad_seen = 0
    for f in frames:
        t = f.t_s
        if t0 is None:
            t0 = t
            next_step = t0 + 1.0
        if t >= next_step:
            # Close every whole second before this frame; a long gap is skipped, not filled.
            if t - next_step > MAX_FILLED_GAP_S:
                yield record(step(next_step), t0)
                stats.records += 1
                next_step += ((t - next_step) // 1.0) * 1.0
            while t >= next_step:
                yield record(step(next_step), t0)
                stats.records += 1
                next_step += 1.0
            pending = False
        # Lines the reader could not parse are frames lost: count them where they happened.
        while bad_seen < stats.bad_lines:
            count(False)
            bad_seen += 1
        if not handles(f.frame_id, f.extended):
            decoder.counters.ignored += 1
            continue
        pending = True
        if f.remote:
            decoder.count_remote()
            count(False)
            continue
        try:
            readings = decode(f.frame_id, f.data, t, f.extended)
        except FrameDecodeError:
            count(False)
            continue
        count(True)
        ingest(readings)
    while bad_seen < stats.bad_lines:
        count(False)
        bad_seen += 1
        pending = True
    if t0 is not None and pending:
        yield record(step(next_step), t0)
        stats.records += 1
    if stats.bad_lines:
        shown = ", ".join(str(n) for n in stats.bad_line_numbers)
        more = "" if stats.bad_lines <= len(stats.bad_line_numbers) else ", ..."
        what = "object" if log_path.suffix.lower() == ".blf" else "line"
        log.warning(
            "%s: %d unreadable %s(s) skipped and counted as errors (%s %s%s)%s",
            log_path,
            stats.bad_lines,
            what,
            what,
            shown,
            more,
            f"; {stats.truncated}" if stats.truncated else "",
        )
    errors = {k: v - errors_before.get(k, 0) for k, v in decoder.counters.errors.items()}
    if any(errors.values()):
        log.warning(
            "%s: frames dropped by the decoder: %s",
            log_path,
            ", ".join(f"{k} {v}" for k, v in errors.items() if v),
        )


def replay_to_jsonl(
    settings: Settings, log_path: Path, out_path: Path | None, tx_out: Path | None = None
) -> int:
    """Write the replay of ``log_path`` as JSON Lines to ``out_path`` (stdout when None).

    ``tx_out``: also write every frame the gateway would send (candump -L; see
    ``gateway.txlog``).

    Returns:
        The exit status: 0 (bad lines and frames are counted in the records, not fatal).

    Raises:
        ConfigError, GatewayError: see ``replay``; raised before anything is written.
    """
    stats = ReplayStats()
    txlog: Any = None

    def open_tx(decoder: Decoder) -> Callable[[ControlOutput], None]:
        nonlocal txlog
        from gateway.txlog import TxLog

        assert tx_out is not None
        txlog = TxLog(settings, decoder, tx_out)
        return txlog  # type: ignore[no-any-return]

    records = replay(settings, log_path, stats=stats, tx=open_tx if tx_out else None)
    try:
        # Pull the first record before opening the output, so a missing log leaves no empty file.
        first = next(records, None)
        _write_records(out_path, first, records)
    finally:
        if txlog is not None:
            txlog.close()
            log.info("%s: %d frames the gateway would send", tx_out, txlog.frames)
    log.info(
        "%s: %d frames, %d records%s",
        log_path,
        stats.frames,
        stats.records,
        f" -> {out_path}" if out_path else "",
    )
    return 0


def _write_records(
    out_path: Path | None, first: dict[str, Any] | None, records: Iterator[dict[str, Any]]
) -> None:
    dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
    if out_path is None:
        _write(sys.stdout, first, records, dumps)
    else:
        try:
            with out_path.open("w", encoding="utf-8") as out:
                _write(out, first, records, dumps)
        except OSError as e:
            raise GatewayError(f"{out_path}: cannot write: {e.strerror}") from None


def _write(
    out: IO[str], first: dict[str, Any] | None, rest: Iterator[dict[str, Any]], dumps: Any
) -> None:
    if first is None:
        return
    write = out.write
    write(dumps(first) + "\n")
    for rec in rest:
        write(dumps(rec) + "\n")
