"""The simulated pack on a CAN bus: its frames out, balancing commands in, in accelerated time.

``run_sim_on_bus`` steps a ``PackSim`` ``speed`` times faster than the event loop's clock, sends
the frames a ``PackFrameEmitter`` says are due on a python-can bus and applies the balancing
commands it receives. The frames themselves (``dbc/bms.dbc``) are ``gateway.sim.pack_frames``;
its names are re-exported here, where callers have always found them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import can

from gateway.errors import CanLinkError
from gateway.sim.pack import PackSim
from gateway.sim.pack_frames import (
    DEFAULT_DBC,
    EmitterStats,
    FrameRates,
    PackFrameEmitter,
    load_bms_dbc,
)

__all__ = [
    "DEFAULT_DBC",
    "EmitterStats",
    "FrameRates",
    "PackFrameEmitter",
    "RunSummary",
    "load_bms_dbc",
    "run_sim_on_bus",
]

log = logging.getLogger("gateway.sim")


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What ``run_sim_on_bus`` did."""

    sim_s: float
    wall_s: float
    frames_sent: int
    send_errors: int
    stats: EmitterStats


class _BusIo:
    """The simulator's side of the bus: sends frames (counting failures), applies commands."""

    def __init__(self, bus: can.BusABC, em: PackFrameEmitter, now_cmd: Callable[[], float]):
        self._bus = bus
        self._em = em
        self._now_cmd = now_cmd
        self.sent = 0
        self.send_errors = 0
        self._send_failing = False

    def send(self, frames: list[can.Message]) -> None:
        """Send ``frames``; a failed send is counted and logged once per run of failures."""
        for msg in frames:
            try:
                self._bus.send(msg)
                self.sent += 1
                if self._send_failing:
                    self._send_failing = False
                    log.info("simulator bus sends again")
            except can.CanError as e:
                self.send_errors += 1
                if not self._send_failing:
                    self._send_failing = True
                    log.warning("simulator bus send failed (counted, retried): %s", e)

    def commands(self) -> None:
        """Apply every frame received so far, then expire the commands that timed out.

        Raises:
            CanLinkError: the bus fails to receive.
        """
        em = self._em
        while True:
            try:
                msg = self._bus.recv(timeout=0.0)
            except can.CanError as e:
                raise CanLinkError(f"simulator bus receive failed: {e}") from e
            if msg is None:
                break
            em.handle_frame(msg, self._now_cmd())
        em.expire(self._now_cmd())


async def _sleep(wait_s: float, stop: asyncio.Event | None) -> None:
    """Sleep ``wait_s``, waking early when ``stop`` is set."""
    if stop is None:
        await asyncio.sleep(wait_s)
        return
    # The timeout is the normal wake-up. asyncio.timeout, not wait_for: on 3.11 wait_for can
    # swallow a cancellation that races with stop being set.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait_s):
            await stop.wait()


class _Stepper:
    """Steps the pack in ``step_s`` and exchanges its frames; simulated time is counted in steps
    (``sim0 + steps * step_s``: no drift from float sums)."""

    def __init__(
        self,
        sim: PackSim,
        em: PackFrameEmitter,
        io: _BusIo,
        step_s: float,
        current_source: Callable[[float], float],
        stop: asyncio.Event | None,
        duration_s: float | None,
    ) -> None:
        self._sim, self._em, self._io = sim, em, io
        self.step_s = step_s
        self._current_source = current_source
        self._stop = stop
        self._duration_s = duration_s
        self.steps = 0

    def done(self) -> bool:
        """Whether ``stop`` is set or ``duration_s`` has been simulated."""
        if self._stop is not None and self._stop.is_set():
            return True
        d = self._duration_s
        return d is not None and self.steps * self.step_s >= d - 1e-9

    def target_steps(self, elapsed_wall_s: float, speed: float) -> float:
        """The steps due after ``elapsed_wall_s`` at ``speed`` (capped by ``duration_s``)."""
        target = math.inf if math.isinf(speed) else elapsed_wall_s * speed / self.step_s
        if self._duration_s is not None:
            target = min(target, round(self._duration_s / self.step_s))
        return target

    def batch(self, target_steps: float, max_steps: int) -> int:
        """Step towards ``target_steps``, at most ``max_steps``; the steps done."""
        sim, em, io = self._sim, self._em, self._io
        done = 0
        while self.steps + 1 <= target_steps + 1e-9 and done < max_steps and not self.done():
            sim.step(self.step_s, self._current_source(sim.t_s))
            self.steps += 1
            done += 1
            io.send(em.frames_due(sim.t_s))
            io.commands()
        io.commands()
        return done


async def run_sim_on_bus(
    bus: can.BusABC,
    sim: PackSim,
    *,
    speed: float,
    current_source: Callable[[float], float],
    stop: asyncio.Event | None = None,
    duration_s: float | None = None,
    step_s: float = 0.02,
    rates: FrameRates | None = None,
    emitter: PackFrameEmitter | None = None,
    command_clock: Literal["wall", "sim"] = "sim",
    max_steps_per_tick: int = 500,
) -> RunSummary:
    """Step ``sim`` in accelerated time, send its frames on ``bus``, obey balancing commands.

    The simulated time advances ``speed`` times faster than the event loop's clock (``math.inf``:
    as fast as the CPU allows, yielding to the loop between batches). Every ``step_s`` of
    simulated time the current is ``current_source(sim.t_s)``; the frames due are sent and the
    commands received are applied. Stops when ``stop`` is set, after ``duration_s`` simulated
    seconds, or when cancelled; one of them must be given by the caller who wants it to end.

    Args:
        bus: A python-can bus used only by the simulator (``virtual`` in tests and the demo).
        sim: The simulated pack.
        speed: Simulated seconds per wall second (> 0; ``math.inf`` allowed).
        current_source: Pack current (positive = charging) at a simulated time.
        stop: Set to stop at the next step.
        duration_s: Simulated seconds to run.
        step_s: Simulation step (also the resolution of frame times).
        rates: Frame periods (ignored when ``emitter`` is given).
        emitter: An emitter to use (default: a new one on ``sim`` starting now).
        command_clock: ``sim`` (default) measures the 5 s command timeout in simulated time,
            right for a gateway on the same accelerated clock (the demo) and at speed 1;
            ``wall`` on the loop's clock, for a gateway on real time while the pack runs
            accelerated (it then sends a command every wall second, i.e. ``speed`` simulated
            seconds apart).
        max_steps_per_tick: Steps done before yielding to the loop when behind.

    Raises:
        CanLinkError: the bus is shut down or fails to receive.
    """
    if not speed > 0:
        raise ValueError(f"speed (={speed}) must be positive")
    if not step_s > 0:
        raise ValueError(f"step_s (={step_s}) must be positive")
    em = emitter if emitter is not None else PackFrameEmitter(sim, rates=rates, start_s=sim.t_s)
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    perf0 = time.perf_counter()
    sim0 = sim.t_s
    io = _BusIo(bus, em, lambda: loop.time() if command_clock == "wall" else sim.t_s)
    run = _Stepper(sim, em, io, step_s, current_source, stop, duration_s)
    while not run.done():
        batch = run.batch(run.target_steps(loop.time() - wall0, speed), max_steps_per_tick)
        if batch >= max_steps_per_tick or math.isinf(speed):
            await asyncio.sleep(0)  # behind or unthrottled: let others run, then go on
            continue
        # Sleep until the next step is due, waking early when stop is set.
        await _sleep(max(0.0, (run.steps + 1) * step_s / speed - (loop.time() - wall0)), stop)
    return RunSummary(
        sim_s=sim.t_s - sim0,
        wall_s=time.perf_counter() - perf0,
        frames_sent=io.sent,
        send_errors=io.send_errors,
        stats=em.stats,
    )
