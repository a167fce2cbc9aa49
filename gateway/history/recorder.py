"""Supervisor side of the health history: folds control steps into days, writes, analyses.

The control loop calls ``HistoryRecorder.on_step`` after every step (cheap: at most one sample
per ``sample_s``, in memory). ``run()`` is the side task: it opens the store, resumes today's
partial record after a restart, writes the day so far every ``health.flush_s`` and at midnight,
prunes old days, runs ``analyse`` once a day (and on request) and hands the report to
``on_report`` (the controller's trend warnings and the MQTT ``health`` topic). Database work runs
in a thread. A failing database is logged once and retried with backoff; it never stops the
control step.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gateway.backoff import Jitter, backoff_s
from gateway.core.daily import DayAccumulator, DayRecord
from gateway.core.health import HealthConfig, HealthReport, analyse
from gateway.core.model import ControlOutput
from gateway.errors import HistoryError
from gateway.history.store import HistoryStore

__all__ = ["HistoryRecorder", "history_path", "local_day"]

log = logging.getLogger(__name__)

WallClock = Callable[[], float]


def local_day(wall_s: float) -> int:
    """Day number of a Unix time in local time (proleptic Gregorian ordinal)."""
    return dt.date.fromtimestamp(wall_s).toordinal()


def history_path(health: HealthConfig, state_path: str) -> Path:
    """The history file: ``health.history_path`` or ``history.sqlite`` beside the state file."""
    if health.history_path is not None:
        return Path(health.history_path)
    return Path(state_path).parent / "history.sqlite"


class HistoryRecorder:
    """Daily history of one pack, written from the supervisor.

    Args:
        config: the ``[health]`` settings.
        path: the SQLite file.
        cells / temp_sensors / capacity_ah: the pack.
        cell_sensors: the temperature sensors on cells (``PackConfig.cell_sensors``).
        on_report: called in the event loop with each new ``HealthReport``.
        wall_clock: Unix seconds (the day boundaries are local midnights).
        sample_s: shortest interval between two steps folded in.
    """

    def __init__(
        self,
        config: HealthConfig,
        path: Path,
        *,
        cells: int,
        temp_sensors: int,
        capacity_ah: float,
        on_report: Callable[[HealthReport], None],
        wall_clock: WallClock = time.time,
        sample_s: float = 1.0,
        cell_sensors: Sequence[int] | None = None,
    ) -> None:
        self.config = config
        self.path = path
        self._cells = cells
        self._sensors = temp_sensors
        self._cell_sensors = None if cell_sensors is None else tuple(cell_sensors)
        self._q_nom = capacity_ah
        self._on_report = on_report
        self._wall = wall_clock
        self._sample_s = sample_s
        self._acc: DayAccumulator | None = None
        self._closed: list[DayRecord] = []  # finished days not yet written
        self._last_sample_t: float | None = None
        self._wake = asyncio.Event()
        self._analyse_requested = False
        self.report: HealthReport | None = None
        self.failures = 0

    # --- called by the control loop (never blocks) ------------------------------------------

    def due(self, t_s: float) -> bool:
        """Whether a step at ``t_s`` would be folded in (``sample_s`` since the last one)."""
        last = self._last_sample_t
        return last is None or not 0.0 <= t_s - last < self._sample_s

    def on_step(
        self,
        out: ControlOutput,
        bled_ah: Sequence[float] | None = None,
        moved_ah: Sequence[float] | None = None,
    ) -> None:
        """Fold in one control step (at most one per ``sample_s``; see ``due``).

        ``bled_ah`` / ``moved_ah``: the balancing planner's cumulative counters.
        """
        if not self.due(out.t_s):
            return
        self._last_sample_t = out.t_s
        acc = self._acc
        if acc is None:
            return  # not started yet: run() resumes the day first
        day = local_day(self._wall())
        if day != acc.day:
            self._closed.append(acc.record())
            acc = self._acc = acc.next_day(day)
            self._analyse_requested = True
            self._wake.set()
        acc.add(out, bled_ah=bled_ah, moved_ah=moved_ah)

    def request_report(self) -> None:
        """Analyse and report at once (MQTT ``cmd/health``)."""
        self._analyse_requested = True
        self._wake.set()

    # --- the side task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Open, resume, flush, analyse; retries a failing database with backoff. Never raises
        a ``HistoryError``."""
        attempt = 0
        while True:
            try:
                await self._session()
            except HistoryError as e:
                attempt += 1
                self.failures += 1
                delay = backoff_s(attempt, 300.0, jitter=Jitter.FULL_CLIPPED)
                if attempt == 1:
                    log.warning("health history unavailable: %s; retrying", e)
                else:
                    log.debug("health history retry %d failed: %s", attempt, e)
                await asyncio.sleep(delay)
            else:
                return

    async def _session(self) -> None:
        store = await asyncio.to_thread(HistoryStore, self.path)
        try:
            if self._acc is None:
                today = local_day(self._wall())
                partial = await asyncio.to_thread(store.day, today)
                if partial is not None and len(partial.cells) == self._cells:
                    self._acc = DayAccumulator.resume(
                        self.config,
                        partial,
                        self._sensors,
                        self._q_nom,
                        cell_sensors=self._cell_sensors,
                    )
                else:
                    self._acc = DayAccumulator(
                        self.config,
                        self._cells,
                        self._sensors,
                        self._q_nom,
                        today,
                        cell_sensors=self._cell_sensors,
                    )
                log.info(
                    "health history %s open (%s)", self.path, "resumed" if partial else "new day"
                )
            await self._analyse(store)
            while True:
                try:
                    async with asyncio.timeout(self.config.flush_s):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                self._wake.clear()
                await self._flush(store)
                if self._analyse_requested:
                    self._analyse_requested = False
                    await self._analyse(store)
        finally:
            # Last write on the way out (stop, or a failure: the next session retries).
            try:
                await asyncio.shield(self._flush_and_close(store))
            except HistoryError as e:
                log.warning("health history not written at stop: %s", e)

    async def _flush_and_close(self, store: HistoryStore) -> None:
        try:
            await self._flush(store)
        finally:
            await asyncio.to_thread(store.close)

    async def _flush(self, store: HistoryStore) -> None:
        """Write the closed days and the day so far; prune past the retention."""
        while self._closed:
            await asyncio.to_thread(store.write, self._closed[0])
            self._closed.pop(0)
            keep = local_day(self._wall()) - self.config.retention_days
            await asyncio.to_thread(store.prune, keep)
        if self._acc is not None:
            await asyncio.to_thread(store.write, self._acc.record())

    async def _analyse(self, store: HistoryStore) -> None:
        # Complete days only: a partial day's balancing sums would read as a change of trend.
        last = local_day(self._wall()) - 1
        recs = await asyncio.to_thread(store.read, last - self.config.window_days + 1, last)
        days = await asyncio.to_thread(store.days)
        report = analyse(recs, self.config, self._q_nom, first_day=days[0] if days else None)
        self.report = report
        self._on_report(report)
