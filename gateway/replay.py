"""Replay a CAN log (candump ``-L``, ASC or BLF) through the live pipeline, as fast as it can.

The frames go through the very same ``Decoder`` and ``Controller`` as on the bus; the log's own
timestamps are the clock. Control steps run the way the daemon runs them (``gateway.app``): on
every frame that brings data, at most one per ``control.min_step_s``, and every
``control.tick_s`` while none arrives, so count-based debounce behaves the same in both. The step
at each whole second of log time becomes one JSON Lines record (``gateway.report.record``; schema
in docs/REPLAY.md).

A frame stamped with a time that cannot be real (not finite, negative, or beyond
``MAX_LOG_TIME_S``) is unreadable and counted like a bad line; a time that goes backwards is held
at the latest time seen (log time, like the monotonic clock, never goes back).

The format comes from the content, not the file name: BLF by its ``LOGG`` signature, text logs
by which of python-can's readers (``CanutilsLogReader`` for ``candump -L``, ``ASCReader``) reads
frames from the first lines. A plain ``candump can0`` log (no ``-L``) is recognised and named, with
the command that records a readable one.

Bad input never stops a replay: a line the log reader cannot parse is counted as a dropped frame,
and the file and line numbers are logged once at the end. A missing or empty file, a file no
reader understands, and a log without a single CAN frame are one-line errors.
"""

from __future__ import annotations

import io
import json
import logging
import math
import re
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, TextIO, cast

import can
from can.io.blf import BLFParseError

from gateway.canbus.decode import Decoder, FrameDecodeError, load_decoder
from gateway.control import Controller, check_decoder
from gateway.core.model import ControlOutput
from gateway.errors import GatewayError
from gateway.report import record
from gateway.settings import Settings

__all__ = [
    "FORMATS",
    "LogFormat",
    "LogFrame",
    "ReplayStats",
    "detect_format",
    "iter_log",
    "replay",
    "replay_to_jsonl",
]

log = logging.getLogger(__name__)


class LogFormat(StrEnum):
    """A CAN log format python-can reads."""

    CANDUMP = "candump"
    """``candump -L`` (python-can's ``CanutilsLogReader``)."""
    ASC = "asc"
    """Vector ASC."""
    BLF = "blf"
    """Vector BLF (binary)."""


#: The usual file suffix of each format (for documentation: the content decides).
FORMATS = {".log": LogFormat.CANDUMP, ".asc": LogFormat.ASC, ".blf": LogFormat.BLF}

_BLF_MAGIC = b"LOGG"
_SNIFF_BYTES = 64 * 1024
#: ``candump can0`` and ``candump -t a can0`` lines: ``  can0  123   [8]  11 22 ...``.
_CANDUMP_PLAIN = re.compile(
    r"^\s*(\(\d+\.\d+\)\s+)?\S+\s+[0-9A-Fa-f]{1,8}\s+\[\d+\](\s+[0-9A-Fa-f]{2})*\s*$"
)

#: Gaps in the log longer than this are not filled with one record per second (a logger that was
#: paused overnight would otherwise produce tens of thousands of identical records).
MAX_FILLED_GAP_S = 3600.0

#: Log times at or beyond this (seconds; about the year 2286 as a Unix time) are not real: an
#: ``1e17`` would otherwise make one control step span three billion years of ticks.
MAX_LOG_TIME_S = 1e10

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
    bad_times: int = 0
    """Frames whose timestamp is not finite, negative or absurd (counted in ``bad_lines``)."""
    records: int = 0
    steps: int = 0
    """Control steps run (data-driven, ticks and records)."""
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


def _text_messages(path: Path, fmt: LogFormat, stats: ReplayStats) -> Iterator[can.Message]:
    with path.open("r", encoding="utf-8", errors="replace") as f:
        yield from _read_text(f, path, fmt, stats)


def _read_text(f: IO[str], path: Path, fmt: LogFormat, stats: ReplayStats) -> Iterator[can.Message]:
    lines = _Lines(f)
    source = cast(TextIO, lines)  # python-can only iterates it and closes it
    reader: can.CanutilsLogReader | can.ASCReader
    reader = can.CanutilsLogReader(source) if fmt is LogFormat.CANDUMP else can.ASCReader(source)
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


def detect_format(path: Path) -> LogFormat:
    """The format of the log at ``path``, from its content (the suffix does not matter).

    Text logs are tried with python-can's readers on their first 64 kB; the reader that reads
    the most frames with the fewest unreadable lines wins.

    Raises:
        GatewayError: one line: the file is missing, empty, a plain ``candump`` log without
            ``-L`` (with the command to record a readable one), or not a log python-can reads.
    """
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
    except FileNotFoundError:
        raise GatewayError(f"{path}: no such log file") from None
    except OSError as e:
        raise GatewayError(f"{path}: cannot read: {e.strerror}") from None
    if not head.strip():
        raise GatewayError(f"{path}: the file is empty: no CAN frames to replay")
    if head.startswith(_BLF_MAGIC):
        return LogFormat.BLF
    text = head.decode("utf-8", errors="replace")
    if len(head) == _SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # whole lines only
    scores: dict[LogFormat, tuple[int, int]] = {}
    for fmt in (LogFormat.CANDUMP, LogFormat.ASC):
        stats = ReplayStats()
        read = sum(1 for _ in _read_text(io.StringIO(text), path, fmt, stats))
        scores[fmt] = (read, -stats.bad_lines)
    best = max(scores, key=lambda k: scores[k])
    if scores[best][0] > 0:
        return best
    lines = [line for line in text.splitlines() if line.strip()][:20]
    if lines and sum(bool(_CANDUMP_PLAIN.match(line)) for line in lines) * 2 > len(lines):
        raise GatewayError(
            f"{path}: this looks like candump without -L: record with "
            f"`candump -L can0 > {path.name}` (python-can reads only the -L form)"
        )
    raise GatewayError(
        f"{path}: not a CAN log python-can can read (candump -L, ASC or BLF): "
        f"no frame in the first {len(text.splitlines())} line(s)"
    )


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
        GatewayError: the file is missing, empty or not a log python-can reads (one line, see
            ``detect_format``), at the call.
    """
    stats = stats if stats is not None else ReplayStats()
    fmt = detect_format(path)
    if fmt is LogFormat.BLF:
        messages = _blf_messages(_open_blf(path), path, stats)
    else:
        messages = _text_messages(path, fmt, stats)
    return _frames(messages, stats)


def _frames(messages: Iterator[can.Message], stats: ReplayStats) -> Iterator[LogFrame]:
    for msg in messages:
        if msg.is_error_frame:
            continue
        stats.frames += 1
        t = msg.timestamp
        if not (math.isfinite(t) and 0.0 <= t < MAX_LOG_TIME_S):
            # An impossible time makes the frame unreadable: counted, never the clock.
            stats.bad_lines += 1
            stats.bad_times += 1
            if stats.bad_times == 1:
                log.debug("frame %d: impossible timestamp %r", stats.frames, t)
            continue
        yield LogFrame(
            msg.timestamp,
            msg.arbitration_id,
            msg.is_extended_id,
            bytes(msg.data or b""),
            msg.is_remote_frame,
        )


class _Stepper:
    """The daemon's step schedule on log time: a step on new data (at most one per
    ``min_step_s``), a tick every ``tick_s`` without data, and a recorded step at every whole
    second since ``t0``."""

    def __init__(
        self,
        step: Callable[[float], ControlOutput],
        settings: Settings,
        t0: float,
        stats: ReplayStats,
    ) -> None:
        self.step_fn = step
        self.tick_s = settings.control.tick_s
        self.min_step_s = settings.control.min_step_s
        self.t0 = t0
        self.stats = stats
        self.next_rec = t0 + 1.0
        self.pending = False  # new data since the last step (the daemon's event)
        self.since_rec = False  # frames since the last record
        self.last = t0
        self._step(t0)  # the daemon's first step, before any data

    def _step(self, t: float) -> dict[str, Any] | None:
        out = self.step_fn(t)
        self.stats.steps += 1
        self.last = t
        self.pending = False
        if t == self.next_rec:
            self.next_rec += 1.0
            self.since_rec = False
            self.stats.records += 1
            return record(out, self.t0)
        return None

    def run_until(self, t: float) -> Iterator[dict[str, Any]]:
        """Every step due before ``t`` and every record due at or before ``t``."""
        while True:
            due = self.last + (self.min_step_s if self.pending else self.tick_s)
            if self.next_rec <= t and self.next_rec <= due:
                rec = self._step(self.next_rec)
                if rec is not None:
                    yield rec
            elif due < t:
                self._step(due)
            else:
                return

    def advance(self, t: float) -> Iterator[dict[str, Any]]:
        """Run the schedule up to ``t``; a gap longer than ``MAX_FILLED_GAP_S`` is skipped after
        one record (whole seconds, so the record times stay on the grid)."""
        if t - self.last > MAX_FILLED_GAP_S:
            yield from self.run_until(self.next_rec)
            skip = math.floor(t - self.next_rec)
            if skip > 0:
                self.next_rec += skip
                self.last += skip
        yield from self.run_until(t)

    def data(self, t: float) -> None:
        """New readings at ``t``: step now, or as soon as ``min_step_s`` allows."""
        self.pending = True
        if t - self.last >= self.min_step_s:
            self._step(t)

    def close(self) -> Iterator[dict[str, Any]]:
        """The record that closes the last, partial second (when frames came after the last)."""
        if self.since_rec:
            yield from self.run_until(self.next_rec)


def replay(
    settings: Settings,
    log_path: Path,
    *,
    decoder: Decoder | None = None,
    stats: ReplayStats | None = None,
    after_end_s: float = 0.0,
    tx: Callable[[Decoder], Callable[[ControlOutput], None]] | None = None,
) -> Iterator[dict[str, Any]]:
    """Run ``log_path`` through decoder and controller; yield one record per second of log time.

    The last record closes the last (partial) second. Garbage lines count as dropped frames.
    ``after_end_s`` keeps the clock running that long after the last frame, as the daemon's
    would if the bus fell silent (records continue; stale values turn unknown).
    ``tx(decoder)`` returns a sink that sees every step's output (``--tx-out``).

    Raises:
        ConfigError: the profile or DBC is wrong (before any record).
        GatewayError: the log is missing or of an unknown format (before any record).
    """
    stats = stats if stats is not None else ReplayStats()
    frames = iter_log(log_path, stats)  # a missing log fails here, before the slower DBC load
    decoder = decoder if decoder is not None else load_decoder(settings.can)
    check_decoder(settings, decoder)
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

    sched: _Stepper | None = None
    now = -math.inf  # log time never goes back
    bad_seen = 0
    for f in frames:
        t = max(f.t_s, now)
        if sched is None:
            sched = _Stepper(step, settings, t, stats)
        yield from sched.advance(t)
        now = t
        sched.since_rec = True
        # Lines the reader could not parse are frames lost: count them where they happened.
        while bad_seen < stats.bad_lines:
            count(False)
            bad_seen += 1
        if not handles(f.frame_id, f.extended):
            decoder.counters.ignored += 1
            continue
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
        if readings:
            ingest(readings)
            sched.data(t)
    while bad_seen < stats.bad_lines:
        count(False)
        bad_seen += 1
        if sched is not None:
            sched.since_rec = True
    if sched is not None:
        if after_end_s > 0:
            yield from sched.run_until(now + after_end_s)
        yield from sched.close()
    _summarise(log_path, stats, decoder, errors_before)
    if ctrl.pack.implausible:
        log.warning(
            "%s: %d implausible reading(s) counted as measurement faults (not used; 0 A while "
            "they lasted)",
            log_path,
            ctrl.pack.implausible,
        )


def _summarise(
    log_path: Path, stats: ReplayStats, decoder: Decoder, errors_before: dict[str, int]
) -> None:
    if stats.bad_lines:
        shown = ", ".join(str(n) for n in stats.bad_line_numbers)
        more = "" if stats.bad_lines <= len(stats.bad_line_numbers) else ", ..."
        what = "object" if stats.truncated or log_path.suffix.lower() == ".blf" else "line"
        times = f"; {stats.bad_times} with an impossible timestamp" if stats.bad_times else ""
        log.warning(
            "%s: %d unreadable %s(s) skipped and counted as errors (%s %s%s)%s%s",
            log_path,
            stats.bad_lines,
            what,
            what,
            shown or "-",
            more,
            times,
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
    settings: Settings,
    log_path: Path,
    out_path: Path | None,
    tx_out: Path | None = None,
    after_end_s: float = 0.0,
) -> int:
    """Write the replay of ``log_path`` as JSON Lines to ``out_path`` (stdout when None).

    ``tx_out``: also write every frame the gateway would send (candump -L; see
    ``gateway.txlog``).

    Returns:
        The exit status: 0 (bad lines and frames are counted in the records, not fatal).

    Raises:
        ConfigError, GatewayError: see ``replay``; raised before anything is written.
        GatewayError: not one CAN frame could be read from the log (after reading it).
    """
    stats = ReplayStats()
    txlog: Any = None

    def open_tx(decoder: Decoder) -> Callable[[ControlOutput], None]:
        nonlocal txlog
        from gateway.txlog import TxLog

        assert tx_out is not None
        txlog = TxLog(settings, decoder, tx_out)
        return txlog  # type: ignore[no-any-return]

    records = replay(
        settings,
        log_path,
        stats=stats,
        after_end_s=after_end_s,
        tx=open_tx if tx_out else None,
    )
    try:
        # Pull the first record before opening the output, so a missing log leaves no empty file.
        first = next(records, None)
        if first is None and stats.frames - stats.bad_times <= 0:
            # The generator has finished: not one frame in the whole log. Nothing is written.
            raise GatewayError(
                f"{log_path}: no CAN frame could be read"
                + (f" ({stats.bad_lines} unreadable line(s))" if stats.bad_lines else "")
            )
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
