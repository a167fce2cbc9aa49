"""The ``gateway.state`` output: when the daemon writes the state file, and its restore at start.

The file format and the atomic write are ``gateway.state_store``'s; this module decides when:
every ``state.interval_s``, at once when the safety state (latches, user caps, commanded
balancing mode, pauses) changes, and a last time at stop, on the caller's thread. A write that
fails is logged and retried at the next change or interval; the control loop never waits for it.

Each write carries the wall-clock time; at the next start the time the daemon was off (the
wall clock now less that time) is handed to the restore, so that the charge phases' ages (days
since the last full charge, ...) count it and the learned time of day of the daily charge end
stays at its time of day. A wall clock that went back, or jumped more than ``MAX_OFF_S`` ahead
(an edge device without a battery-backed clock, before NTP), counts no time off: the ages then
resume as saved, as they did before the time was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from gateway.control import Controller
from gateway.state_store import load_document, remove_orphans, save_state

__all__ = ["MAX_OFF_S", "StateWriter", "time_off_s"]

# The daemon's own lines keep one logger name, whichever module writes them.
log = logging.getLogger("gateway.app")

MAX_OFF_S = 366 * 86400.0
"""A longer time off than this (s) is taken as a wall clock that jumped, not as time off."""


def time_off_s(saved_unix_s: float | None, now_unix_s: float) -> tuple[float, str | None]:
    """How long the daemon was off (s, >= 0) between a write at ``saved_unix_s`` and
    ``now_unix_s`` (both Unix seconds), and a note when the clocks say nothing usable.

    ``None`` (a file of an earlier version) counts 0 without a note; a negative difference (the
    clock went back) or one above ``MAX_OFF_S`` counts 0 with a note.
    """
    if saved_unix_s is None:
        return 0.0, None
    off = now_unix_s - saved_unix_s
    if 0.0 <= off <= MAX_OFF_S:
        return off, None
    return 0.0, (
        f"the wall clock says the state was written {off / 86400.0:.1f} days ago (not synced?):"
        " the time off is not counted"
    )


class StateWriter:
    """Writes the estimator and safety state of ``ctrl`` to ``path``.

    Args:
        ctrl: the controller whose state is written.
        path: the state file (``state.path``).
        interval_s: the periodic write interval (``state.interval_s``), s.
        clock: monotonic seconds (the controller's clock, for the safety state's ages).
        wall_clock: Unix seconds (written with the state; the time off at the next start).
    """

    name = "gateway.state"

    def __init__(
        self,
        ctrl: Controller,
        path: Path,
        interval_s: float,
        clock: Callable[[], float],
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.ctrl = ctrl
        self.path = path
        self.interval_s = interval_s
        self.clock = clock
        self.wall_clock = wall_clock
        self._changed = asyncio.Event()
        self._safety_key: tuple[object, ...] | None = None

    def after_step(self) -> None:
        """Check the safety state after a control step; a change is written at once."""
        key = self.ctrl.safety_key()
        if key != self._safety_key:
            # A latch, a cap, a commanded mode or a pause changed: write it now, not in a minute.
            if self._safety_key is not None:
                self._changed.set()
            self._safety_key = key

    async def run(self) -> None:
        """Write the state every ``interval_s`` and at once when the safety state changes."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await self._changed.wait()
            self._changed.clear()
            await self._save()

    async def _save(self) -> None:
        """Write the state from a worker thread (the control loop keeps stepping meanwhile)."""
        state = self.ctrl.export_state()
        safety = self.ctrl.export_safety(self.clock())
        try:
            await asyncio.to_thread(
                save_state, self.path, state, safety, saved_unix_s=self.wall_clock()
            )
        except (OSError, ValueError) as e:
            # Retried at the next change or interval; the control loop keeps running.
            log.warning("could not write state file %s: %s", self.path, e)

    def save_now(self) -> None:
        """The final write at stop, on this thread: nothing (not a second signal) cuts it short.

        Every task has stopped by then, so blocking the loop for one fsync costs nothing.
        """
        try:
            save_state(
                self.path,
                self.ctrl.export_state(),
                self.ctrl.export_safety(self.clock()),
                saved_unix_s=self.wall_clock(),
            )
        except (OSError, ValueError) as e:
            log.error("state file %s not written at stop: %s", self.path, e)

    def restore(self) -> list[str]:
        """Restore the estimator and safety state from the file (what is usable of it).

        Returns:
            What the restored safety state holds (latched alarms, caps, pauses), one line
            each; empty when nothing was restored.
        """
        remove_orphans(self.path)
        doc = load_document(self.path)
        if doc.estimator is not None:
            off_s, why = time_off_s(doc.saved_unix_s, self.wall_clock())
            if why is not None:
                log.warning("state file %s: %s", self.path, why)
            elif off_s > 0.0:
                log.info("state file %s written %.1f h ago", self.path, off_s / 3600.0)
            try:
                notes = self.ctrl.restore_state(doc.estimator, off_s=off_s)
            except ValueError as e:
                log.warning("state file %s not used (%s); starting from OCV", self.path, e)
            else:
                log.info("estimator state restored from %s", self.path)
                for note in notes:
                    log.warning("state file %s: %s", self.path, note)
        restored: list[str] = []
        if doc.safety is not None:
            try:
                restored = self.ctrl.restore_safety(doc.safety, self.clock())
            except ValueError as e:
                log.error(
                    "safety state in %s not used (%s): latched alarms, user caps and balancing "
                    "pauses of the last run are lost",
                    self.path,
                    e,
                )
            else:
                if restored:
                    log.warning("restored safety state from %s: %s", self.path, "; ".join(restored))
        self._safety_key = self.ctrl.safety_key()
        return restored
