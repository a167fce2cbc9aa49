"""The ``gateway.state`` output: when the daemon writes the state file, and its restore at start.

The file format and the atomic write are ``gateway.state_store``'s; this module decides when:
every ``state.interval_s``, at once when the safety state (latches, user caps, commanded
balancing mode, pauses) changes, and a last time at stop, on the caller's thread. A write that
fails is logged and retried at the next change or interval; the control loop never waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from gateway.control import Controller
from gateway.state_store import load_document, remove_orphans, save_state

__all__ = ["StateWriter"]

# The daemon's own lines keep one logger name, whichever module writes them.
log = logging.getLogger("gateway.app")


class StateWriter:
    """Writes the estimator and safety state of ``ctrl`` to ``path``.

    Args:
        ctrl: the controller whose state is written.
        path: the state file (``state.path``).
        interval_s: the periodic write interval (``state.interval_s``), s.
        clock: monotonic seconds (the controller's clock, for the safety state's ages).
    """

    name = "gateway.state"

    def __init__(
        self, ctrl: Controller, path: Path, interval_s: float, clock: Callable[[], float]
    ) -> None:
        self.ctrl = ctrl
        self.path = path
        self.interval_s = interval_s
        self.clock = clock
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
            await asyncio.to_thread(save_state, self.path, state, safety)
        except (OSError, ValueError) as e:
            # Retried at the next change or interval; the control loop keeps running.
            log.warning("could not write state file %s: %s", self.path, e)

    def save_now(self) -> None:
        """The final write at stop, on this thread: nothing (not a second signal) cuts it short.

        Every task has stopped by then, so blocking the loop for one fsync costs nothing.
        """
        try:
            save_state(self.path, self.ctrl.export_state(), self.ctrl.export_safety(self.clock()))
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
            try:
                notes = self.ctrl.restore_state(doc.estimator)
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
