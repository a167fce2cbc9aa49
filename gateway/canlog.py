"""Read a CAN log file with python-can's readers, whatever the file is called.

python-can's ``can.LogReader`` picks a reader by the file's suffix from ``can.io.MESSAGE_READERS``
(and opens ``NAME.SUFFIX.gz`` with gzip). Logs arrive with any name (``capture.txt``, ``pack``),
so here the content decides which of those suffixes the file is, and the same table gives the
reader: gzip by its magic bytes (the log inside is sniffed in turn), BLF by its ``LOGG``
signature, PEAK TRC by its ``;`` header, python-can's CSV by its header line, and ``candump -L``
against Vector ASC by which of the two reads frames from the first 64 kB. A file none of these
fits, whose suffix python-can knows all the same (``.db``, ``.mf4``, a plugin's), goes to
``can.LogReader`` itself.

The readers get a file object opened here, not the path: a text reader then reads a stream that
counts lines and decodes bad bytes as U+FFFD (python-can would open it in the locale's encoding
and stop at the first bad byte), a reader that fails on a line is replaced by one that carries
its header state and reads on from the next line, and a BLF with a bad header does not leave its
file open. A frame stamped with a time that cannot be real (not finite, negative, or beyond
``MAX_LOG_TIME_S``) is unreadable and counted like a bad line.
"""

from __future__ import annotations

import gzip
import io
import logging
import math
import re
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

import can
from can.io.blf import BLFParseError
from can.io.generic import MessageReader, TextIOMessageReader

from gateway.errors import GatewayError

__all__ = [
    "MAX_LOG_TIME_S",
    "LogFormat",
    "LogFrame",
    "LogKind",
    "ReadStats",
    "detect_format",
    "iter_log",
]

log = logging.getLogger(__name__)


class LogFormat(StrEnum):
    """A CAN log format recognised by its content; the value is python-can's suffix for it."""

    CANDUMP = ".log"
    """``candump -L`` (python-can's ``CanutilsLogReader``)."""
    ASC = ".asc"
    """Vector ASC."""
    BLF = ".blf"
    """Vector BLF (binary)."""
    TRC = ".trc"
    """PEAK TRC."""
    CSV = ".csv"
    """python-can's CSV (``can.CSVWriter``)."""

    @property
    def reader(self) -> type[MessageReader]:
        """The python-can reader ``can.LogReader`` would use for this suffix."""
        return can.io.MESSAGE_READERS[self.value]


@dataclass(frozen=True, slots=True)
class LogKind:
    """What a log file holds: its format (``None``: the one python-can reads by the file's
    suffix) and whether it is gzip-compressed."""

    format: LogFormat | None
    compressed: bool = False

    @property
    def binary(self) -> bool:
        """Whether it is read in objects, not lines (BLF and the formats read by name)."""
        return self.format is None or self.format is LogFormat.BLF


@dataclass(slots=True)
class ReadStats:
    """What reading a log met, for the summary and the tests."""

    frames: int = 0
    """CAN frames read from the log (all ids)."""
    bad_lines: int = 0
    """Lines (or binary objects) the log reader could not parse."""
    bad_line_numbers: list[int] = field(default_factory=list)
    """The first few bad line numbers."""
    bad_times: int = 0
    """Frames whose timestamp is not finite, negative or absurd (counted in ``bad_lines``)."""
    truncated: str = ""
    """Why the log stopped early (a damaged binary or compressed file), if it did."""
    kind: LogKind | None = None
    """The kind of log read (set by ``iter_log``)."""


@dataclass(frozen=True, slots=True)
class LogFrame:
    """One frame from a log: time (log seconds), id, extended flag, data, remote flag."""

    t_s: float
    frame_id: int
    extended: bool
    data: bytes
    remote: bool = False


#: Log times at or beyond this (seconds; about the year 2286 as a Unix time) are not real: an
#: ``1e17`` would otherwise make one control step span three billion years of ticks.
MAX_LOG_TIME_S = 1e10

_GZIP_MAGIC = b"\x1f\x8b"
_BLF_MAGIC = b"LOGG"
_CSV_HEADER = "timestamp,arbitration_id,extended,remote,error,dlc,data"
_SNIFF_BYTES = 64 * 1024
_SHOWN_BAD_LINES = 5
#: ``candump can0`` and ``candump -t a can0`` lines: ``  can0  123   [8]  11 22 ...``.
_CANDUMP_PLAIN = re.compile(
    r"^\s*(\(\d+\.\d+\)\s+)?\S+\s+[0-9A-Fa-f]{1,8}\s+\[\d+\](\s+[0-9A-Fa-f]{2})*\s*$"
)
#: What python-can's text readers raise on a line they cannot parse (one line, read on).
_LINE_ERRORS = (ValueError, IndexError, TypeError, KeyError)
#: What a damaged binary or compressed file raises (the rest cannot be resynchronised).
_STREAM_ERRORS = (BLFParseError, struct.error, zlib.error, EOFError, OSError, sqlite3.Error)


class _Lines:
    """A text file as an iterator of lines that knows the current line number.

    python-can's text readers iterate ``self.file``; when one raises on a bad line, a new reader
    on the same ``_Lines`` continues with the next line.
    """

    def __init__(self, f: IO[str]) -> None:
        self._f = f
        self._pushed: list[str] = []
        self.line_no = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self._pushed:
            return self._pushed.pop()
        line = next(self._f)
        self.line_no += 1
        return line

    def push_header(self) -> None:
        """Give a resumed reader that skips a header line one to skip (not counted)."""
        self._pushed.append("\n")

    def close(self) -> None:
        """Close the file (python-can readers call this when done)."""
        self._f.close()


class _ResumedASCReader(can.ASCReader):
    """An ASC reader that continues after a bad line: the header was read by the first one."""

    def _extract_header(self) -> None:
        return


class _ResumedTRCReader(can.TRCReader):
    """A TRC reader that continues after a bad line: the header was read by the first one."""

    def _extract_header(self) -> str | None:  # type: ignore[override]  # __iter__ takes None
        return None


def _resumed(reader: MessageReader, lines: _Lines) -> MessageReader:
    """A reader that goes on from the line after the one ``reader`` failed on.

    ASC and TRC readers parse a header first (ASC: number base and start time; TRC: version and
    columns): the new one carries that state over (python-can's private state, hence the pin
    below python-can 5 in pyproject.toml). A CSV reader skips one header line.
    """
    source = cast(TextIO, lines)  # python-can only iterates it and closes it
    for base, resumed_type in (
        (can.ASCReader, _ResumedASCReader),
        (can.TRCReader, _ResumedTRCReader),
    ):
        if isinstance(reader, base):
            resumed = resumed_type.__new__(resumed_type)
            vars(resumed).update(vars(reader))
            return resumed
    if isinstance(reader, can.CSVReader):
        lines.push_header()
    return _text_reader(type(reader), source)


def _text_reader(reader_type: type[MessageReader], source: TextIO) -> MessageReader:
    if not issubclass(reader_type, TextIOMessageReader):  # LogFormat names text formats only
        raise TypeError(f"{reader_type.__name__} does not read text")
    return reader_type(source)


def _bad(stats: ReadStats, path: Path, line_no: int, exc: BaseException) -> None:
    stats.bad_lines += 1
    if len(stats.bad_line_numbers) < _SHOWN_BAD_LINES:
        stats.bad_line_numbers.append(line_no)
    if stats.bad_lines == 1:
        log.debug("%s:%d: unreadable line (%s)", path, line_no, exc)


def _read_text(f: IO[str], path: Path, fmt: LogFormat, stats: ReadStats) -> Iterator[can.Message]:
    lines = _Lines(f)
    reader = _text_reader(fmt.reader, cast(TextIO, lines))
    while True:
        try:
            yield from reader
            return
        except _LINE_ERRORS as e:
            # python-can parses one line per step; a bad one ends that reader only.
            _bad(stats, path, lines.line_no, e)
            reader = _resumed(reader, lines)
        except _STREAM_ERRORS as e:
            # A damaged compressed file: what was read stands, the rest is lost.
            _bad(stats, path, lines.line_no + 1, e)
            stats.truncated = f"unreadable after line {lines.line_no}: {e or type(e).__name__}"
            return


def _head(path: Path) -> tuple[bytes, bool]:
    """The first 64 kB of the log (uncompressed) and whether the file is gzip-compressed."""
    try:
        with path.open("rb") as f:
            head = f.read(_SNIFF_BYTES)
            if not head.startswith(_GZIP_MAGIC):
                return head, False
            f.seek(0)
            with gzip.GzipFile(fileobj=f) as z:
                return z.read(_SNIFF_BYTES), True
    except FileNotFoundError:
        raise GatewayError(f"{path}: no such log file") from None
    except (OSError, EOFError, zlib.error) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e) or type(e).__name__
        raise GatewayError(f"{path}: cannot read: {why}") from None


def _sniff_text(text: str, path: Path) -> LogFormat | None:
    """The text format that reads the most frames with the fewest bad lines from ``text``."""
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    candidates = [LogFormat.CANDUMP, LogFormat.ASC]
    if first.startswith(";"):
        candidates.append(LogFormat.TRC)
    if first.startswith(_CSV_HEADER):
        candidates.append(LogFormat.CSV)
    scores: dict[LogFormat, tuple[int, int]] = {}
    for fmt in candidates:
        stats = ReadStats()
        read = sum(1 for _ in _read_text(io.StringIO(text), path, fmt, stats))
        scores[fmt] = (read, -stats.bad_lines)
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best][0] > 0 else None


def _by_name(path: Path) -> bool:
    """Whether python-can reads ``path`` by its suffix in a format not sniffed here."""
    suffix = path.suffix.lower()
    return suffix in can.io.MESSAGE_READERS and suffix not in set(LogFormat)


def detect_format(path: Path) -> LogKind:
    """The kind of log at ``path``, from its content (the suffix matters only for formats
    not recognised by content, which python-can then reads by name).

    Raises:
        GatewayError: one line: the file is missing, empty, a plain ``candump`` log without
            ``-L`` (with the command to record a readable one), or not a log python-can reads.
    """
    head, compressed = _head(path)
    if not head.strip():
        raise GatewayError(f"{path}: the file is empty: no CAN frames to replay")
    if head.startswith(_BLF_MAGIC):
        return LogKind(LogFormat.BLF, compressed)
    text = head.decode("utf-8", errors="replace")
    if len(head) == _SNIFF_BYTES and "\n" in text:
        text = text[: text.rindex("\n") + 1]  # whole lines only
    fmt = _sniff_text(text, path)
    if fmt is not None:
        return LogKind(fmt, compressed)
    if not compressed and _by_name(path):
        return LogKind(None)
    lines = [line for line in text.splitlines() if line.strip()][:20]
    if lines and sum(bool(_CANDUMP_PLAIN.match(line)) for line in lines) * 2 > len(lines):
        raise GatewayError(
            f"{path}: this looks like candump without -L: record with "
            f"`candump -L can0 > {path.name}` (python-can reads only the -L form)"
        )
    raise GatewayError(
        f"{path}: not a CAN log python-can can read (candump -L, ASC, BLF, TRC or CSV, plain or "
        f"gzip): no frame in the first {len(text.splitlines())} line(s)"
    )


def _open(path: Path, kind: LogKind) -> BinaryIO:
    return cast(BinaryIO, gzip.open(path, "rb") if kind.compressed else path.open("rb"))


def _open_binary(path: Path, kind: LogKind) -> MessageReader:
    """The reader of a binary log, opened now so that a bad header fails at the call."""
    if kind.format is None:
        try:
            return can.LogReader(path)
        except (*_STREAM_ERRORS, ValueError, ImportError, NotImplementedError) as e:
            raise GatewayError(f"{path}: python-can cannot read it: {e}") from None
    f = _open(path, kind)  # python-can leaves its own file open when the header is bad
    try:
        return can.BLFReader(f)
    except (*_STREAM_ERRORS, ValueError) as e:
        f.close()
        raise GatewayError(f"{path}: not a readable BLF file: {e or type(e).__name__}") from None


def _binary_messages(reader: MessageReader, path: Path, stats: ReadStats) -> Iterator[can.Message]:
    with reader:
        try:
            yield from reader
        except (*_STREAM_ERRORS, ValueError) as e:
            # A binary log cannot be resynchronised after a corrupt object: stop here.
            _bad(stats, path, stats.frames + 1, e)
            stats.truncated = f"unreadable after frame {stats.frames}: {e or type(e).__name__}"


def _text_messages(path: Path, kind: LogKind, stats: ReadStats) -> Iterator[can.Message]:
    assert kind.format is not None
    raw = _open(path, kind)
    with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
        yield from _read_text(f, path, kind.format, stats)


def iter_log(path: Path, stats: ReadStats | None = None) -> Iterator[LogFrame]:
    """The data frames of a log file in order; error frames are skipped.

    Raises:
        GatewayError: the file is missing, empty or not a log python-can reads (one line, see
            ``detect_format``), at the call.
    """
    stats = stats if stats is not None else ReadStats()
    kind = stats.kind = detect_format(path)
    if kind.binary:
        messages = _binary_messages(_open_binary(path, kind), path, stats)
    else:
        messages = _text_messages(path, kind, stats)
    return _frames(messages, stats)


def _frames(messages: Iterator[can.Message], stats: ReadStats) -> Iterator[LogFrame]:
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
