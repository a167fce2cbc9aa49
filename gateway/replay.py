"""Replay a CAN log through the live pipeline, as fast as it can.

The frames (read by :mod:`gateway.canlog`: candump ``-L``, ASC, BLF, TRC, CSV, plain or gzip,
the format from the content, not the name) go through the very same ``Decoder`` and
``Controller`` as on the bus; the log's own timestamps are the clock. Control steps run the way
the daemon runs them (``gateway.app``): on every frame that brings data, at most one per
``control.min_step_s``, and every ``control.tick_s`` while none arrives, so count-based debounce
behaves the same in both. The step at each whole second of log time becomes one JSON Lines
record (``gateway.report.record``; schema in docs/REPLAY.md).

A frame with an impossible time is unreadable and counted like a bad line; a time that goes
backwards is held at the latest time seen (log time, like the monotonic clock, never goes back).

Bad input never stops a replay: a line the log reader cannot parse is counted as a dropped frame,
and the file and line numbers are logged once at the end. A missing or empty file, a file no
reader understands, and a log without a single CAN frame are one-line errors.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from gateway.canbus.decode import Decoder, FrameDecodeError, load_decoder
from gateway.canlog import (
    MAX_LOG_TIME_S,
    LogFormat,
    LogFrame,
    LogKind,
    ReadStats,
    detect_format,
    iter_log,
)
from gateway.control import Controller
from gateway.core.model import ControlOutput
from gateway.errors import GatewayError
from gateway.profile_check import check_decoder
from gateway.report import record
from gateway.settings import Settings

__all__ = [
    "MAX_FILLED_GAP_S",
    "MAX_LOG_TIME_S",
    "LogFormat",
    "LogFrame",
    "LogKind",
    "ReplayStats",
    "detect_format",
    "iter_log",
    "replay",
    "replay_to_jsonl",
]

log = logging.getLogger(__name__)

#: Gaps in the log longer than this are not filled with one record per second (a logger that was
#: paused overnight would otherwise produce tens of thousands of identical records).
MAX_FILLED_GAP_S = 3600.0


@dataclass(slots=True)
class ReplayStats(ReadStats):
    """What a replay read and ran, for the summary and the tests."""

    records: int = 0
    steps: int = 0
    """Control steps run (data-driven, ticks and records)."""


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


class _Feed:
    """Hands log frames to the decoder and the controller, counting as the CAN link does."""

    def __init__(self, decoder: Decoder, ctrl: Controller, stats: ReplayStats) -> None:
        self.decoder = decoder
        self.stats = stats
        self._handles, self._decode = decoder.handles, decoder.decode
        self._count, self._ingest = ctrl.count_frame, ctrl.ingest
        self._bad_seen = 0

    def lost_lines(self) -> bool:
        """Count the lines the reader could not parse since the last call as frames lost
        (where they happened); whether there were any."""
        lost = self.stats.bad_lines - self._bad_seen
        for _ in range(lost):
            self._count(False)
        self._bad_seen += lost
        return lost > 0

    def frame(self, f: LogFrame, t: float) -> bool:
        """Decode ``f`` at log time ``t`` and ingest its readings; whether it brought any."""
        count = self._count
        if not self._handles(f.frame_id, f.extended):
            self.decoder.counters.ignored += 1
            return False
        if f.remote:
            self.decoder.count_remote()
            count(False)
            return False
        try:
            readings = self._decode(f.frame_id, f.data, t, f.extended)
        except FrameDecodeError:
            count(False)
            return False
        count(True)
        if readings:
            self._ingest(readings)
            return True
        return False


def _step_fn(
    ctrl: Controller, sink: Callable[[ControlOutput], None] | None
) -> Callable[[float], ControlOutput]:
    """The controller's step, with ``sink`` seeing every output when there is one."""
    if sink is None:
        return ctrl.step

    def step(now_s: float) -> ControlOutput:
        out = ctrl.step(now_s)
        sink(out)
        return out

    return step


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
    feed = _Feed(decoder, ctrl, stats)
    step = _step_fn(ctrl, tx(decoder) if tx is not None else None)
    sched: _Stepper | None = None
    now = -math.inf  # log time never goes back
    for f in frames:
        t = max(f.t_s, now)
        if sched is None:
            sched = _Stepper(step, settings, t, stats)
        yield from sched.advance(t)
        now = t
        sched.since_rec = True
        feed.lost_lines()  # lines the reader could not parse: frames lost, counted here
        if feed.frame(f, t):
            sched.data(t)
    if feed.lost_lines() and sched is not None:
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
        what = "object" if stats.kind is not None and stats.kind.binary else "line"
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
