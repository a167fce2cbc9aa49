"""One supervisor for the daemon's tasks: critical tasks end the run, outputs are contained.

The gateway registers each long-running coroutine under a name and a kind:

- ``TaskKind.CRITICAL`` (the CAN input, the control loop): a failure ends the run, and the daemon
  exits non-zero so that systemd restarts it with its safety state restored. A critical task that
  returns has simply finished (the demo's timer does).
- ``TaskKind.OUTPUT`` (MQTT, the SunSpec server and client, the inverter CAN link, the web
  server, ...): a failure, or a return that nobody asked for, is logged and the task is started
  again inside the process after a capped, jittered backoff (``backoff_s``). It never stops the
  control loop or another output. The backoff starts again from its smallest value once the task
  has run for ``healthy_s``.

``Supervisor.run(stop)`` returns once ``stop`` is set (or raises once a critical task failed).
Either way it cancels every task and waits at most ``grace_s`` for them: a task that swallows its
cancellation (a library that catches ``CancelledError``) is named in the log and left behind, so
a shutdown is bounded whatever a library does. Another output joins by calling ``add`` (an
object with a ``name`` and a ``run``, the ``Supervised`` protocol; every ``gateway.outputs.Output``
is one) or ``add_output`` before ``run``; nothing else is needed (see ``docs/RELIABILITY.md``).
``run_bounded`` is ``asyncio.run`` with the same bound on the tasks left at exit.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.backoff import Jitter
from gateway.backoff import backoff_s as _backoff_s

__all__ = [
    "Supervised",
    "Supervisor",
    "TaskFactory",
    "TaskKind",
    "TaskStatus",
    "backoff_s",
    "run_bounded",
]

log = logging.getLogger(__name__)
_app_log = logging.getLogger("gateway.app")  # the daemon's exit lines keep their logger name

TaskFactory = Callable[[], Coroutine[Any, Any, None]]
"""Makes a fresh coroutine for each (re)start of a task."""

EventSink = Callable[..., None]
"""``event(name, **data)``: where restarts are reported (the gateway's ``event``)."""


class Supervised(Protocol):
    """What the supervisor needs of a contained output: a task name and a coroutine per start."""

    @property
    def name(self) -> str:
        """The task's name (``gateway.mqtt``): in logs, ``output_restart`` events and status."""
        ...

    def run(self) -> Coroutine[Any, Any, None]:
        """A fresh coroutine that serves until cancelled (its own link errors retried inside)."""
        ...


class TaskKind(enum.Enum):
    """What a task's failure means for the process."""

    CRITICAL = "critical"  # a failure ends the run (non-zero exit, systemd restarts us)
    OUTPUT = "output"  # a failure is contained: restarted in the process with backoff


@dataclass(frozen=True, slots=True)
class TaskStatus:
    """One supervised task, for logs, MQTT and tests."""

    name: str
    kind: TaskKind
    running: bool
    restarts: int  # times it was started again after a failure or an unexpected return
    last_error: str  # "" when it never failed


def backoff_s(attempt: int, cap_s: float) -> float:
    """Delay before restart ``attempt`` (1-based): full jitter, exponential, capped at ``cap_s``.

    The aiomqtt habit, ``uniform(0, 1.5 ** min(10, attempt))``, with the cap applied to the range
    rather than to the draw, so delays stay spread at the cap too and many gateways restarted by
    one broker outage do not come back in step.
    """
    return _backoff_s(attempt, cap_s, jitter=Jitter.FULL)


@dataclass
class _Entry:
    name: str
    kind: TaskKind
    factory: TaskFactory
    task: asyncio.Task[None] | None = None
    restarts: int = 0
    last_error: str = ""


class Supervisor:
    """Runs named tasks; contains the outputs' failures, ends the run on a critical one.

    Args:
        backoff_max_s: cap of an output's restart backoff.
        healthy_s: an output that ran this long before failing restarts from the smallest backoff.
        grace_s: at shutdown, how long tasks may take to finish after their cancellation.
        event: called as ``event("output_restart", task=..., error=..., restarts=...)``.
        clock: monotonic seconds (for ``healthy_s``).
    """

    def __init__(
        self,
        *,
        backoff_max_s: float = 30.0,
        healthy_s: float = 60.0,
        grace_s: float = 3.0,
        event: EventSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not backoff_max_s > 0:
            raise ValueError(f"backoff_max_s (={backoff_max_s}) must be positive")
        if not grace_s > 0:
            raise ValueError(f"grace_s (={grace_s}) must be positive")
        self.backoff_max_s = backoff_max_s
        self.healthy_s = healthy_s
        self.grace_s = grace_s
        self._event = event
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._failed = asyncio.Event()
        self._failure: BaseException | None = None
        self._stopping = False

    # --- registration --------------------------------------------------------------------------

    def add_critical(self, name: str, factory: TaskFactory) -> None:
        """Register a task whose failure ends the run (CAN input, control loop)."""
        self._add(name, TaskKind.CRITICAL, factory)

    def add_output(self, name: str, factory: TaskFactory) -> None:
        """Register an output: restarted with backoff after a failure, never ends the run."""
        self._add(name, TaskKind.OUTPUT, factory)

    def add(self, output: Supervised) -> None:
        """Register ``output`` as a contained output under ``output.name``."""
        self.add_output(output.name, output.run)

    def _add(self, name: str, kind: TaskKind, factory: TaskFactory) -> None:
        if name in self._entries:
            raise ValueError(f"task {name!r} is registered twice")
        self._entries[name] = _Entry(name, kind, factory)

    # --- state ---------------------------------------------------------------------------------

    def status(self) -> tuple[TaskStatus, ...]:
        """Every registered task with its restart count and last error."""
        return tuple(
            TaskStatus(
                name=e.name,
                kind=e.kind,
                running=e.task is not None and not e.task.done(),
                restarts=e.restarts,
                last_error=e.last_error,
            )
            for e in self._entries.values()
        )

    # --- running -------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, on_stop: Callable[[], None] | None = None) -> None:
        """Run every registered task until ``stop`` is set; then cancel them (bounded).

        ``on_stop`` is called once ``stop`` is set, before any task is cancelled.

        Raises:
            BaseExceptionGroup: a critical task failed (its exception inside); every other task
                has been cancelled by then.
        """
        for entry in self._entries.values():
            body = (
                self._critical(entry) if entry.kind is TaskKind.CRITICAL else self._contained(entry)
            )
            entry.task = asyncio.create_task(body, name=entry.name)
        stop_wait = asyncio.create_task(stop.wait(), name="gateway.supervisor.stop")
        fail_wait = asyncio.create_task(self._failed.wait(), name="gateway.supervisor.failed")
        try:
            await asyncio.wait({stop_wait, fail_wait}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set() and on_stop is not None:
                on_stop()
        finally:
            stop_wait.cancel()
            fail_wait.cancel()
            await self._cancel_all()
        if self._failure is not None:
            raise BaseExceptionGroup("a critical task failed", [self._failure])

    async def _critical(self, entry: _Entry) -> None:
        try:
            await entry.factory()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # handed to run(), which raises it
            entry.last_error = _describe(e)
            if self._failure is None:
                self._failure = e
            self._failed.set()

    async def _contained(self, entry: _Entry) -> None:
        attempt = 0
        while True:
            started_s = self._clock()
            try:
                await entry.factory()
            except asyncio.CancelledError:
                # Only the supervisor cancels its outputs, and only once it is stopping. Any
                # other CancelledError is a library's (or Python 3.11's TaskGroup, which can
                # leave a task's cancelling() count raised after a child failed): it would end
                # the output silently, so it is a failure like any other.
                if self._stopping:
                    raise
                error = "CancelledError raised without a cancellation"
                log.error("%s failed (%s); restarting it in the process", entry.name, error)
            except Exception as e:
                error = _describe(e)
                # The first failure of a run carries its traceback; repeats are one line each.
                log.error(
                    "%s failed (%s); restarting it in the process",
                    entry.name,
                    error,
                    exc_info=e if entry.last_error != error else None,
                )
            else:
                error = "returned unexpectedly"
                log.error("%s returned unexpectedly; restarting it", entry.name)
            entry.last_error = error
            entry.restarts += 1
            if self._clock() - started_s >= self.healthy_s:
                attempt = 0
            attempt += 1
            if self._event is not None:
                self._event("output_restart", task=entry.name, error=error, restarts=entry.restarts)
            await asyncio.sleep(backoff_s(attempt, self.backoff_max_s))

    async def _cancel_all(self) -> None:
        self._stopping = True
        tasks = [e.task for e in self._entries.values() if e.task is not None and not e.task.done()]
        for t in tasks:
            t.cancel()
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.grace_s)
        if pending:
            names = ", ".join(sorted(t.get_name() for t in pending))
            log.error(
                "shutdown: %s did not stop within %.1f s after cancellation; leaving it behind",
                names,
                self.grace_s,
            )
        cancelled = [t.get_name() for t in tasks if t.done()]
        log.info("shutdown: cancelled %s", ", ".join(sorted(cancelled)) or "nothing")


def _describe(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_bounded(main: Coroutine[Any, Any, int], grace_s: float = 1.0) -> int:
    """``asyncio.run(main)``, except that tasks left running afterwards cannot hang the exit.

    ``asyncio.run`` cancels the remaining tasks and waits for them without a bound; a library
    task that swallows its cancellation would keep the process alive for ever. Here they get
    ``grace_s``, then the loop is closed regardless (and they are named in the log).
    """
    loop = asyncio.new_event_loop()
    try:
        try:
            return loop.run_until_complete(main)
        except asyncio.CancelledError:
            return 1
    finally:
        try:
            left = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in left:
                t.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=grace_s))
                stuck = sorted(t.get_name() for t in left if not t.done())
                if stuck:
                    _app_log.error("exit: abandoning tasks that ignore cancellation: %s", stuck)
            loop.run_until_complete(
                asyncio.wait([loop.create_task(loop.shutdown_asyncgens())], timeout=grace_s)
            )
        finally:
            loop.close()
