"""``bms-gateway sim-log``: write a candump log of the simulated pack, faster than real time.

The pack follows a home-storage day (``HomeStorageProfile``) with a simple guard that tapers
the charge near the end-of-charge voltage and stops discharge near the cut-off, as a charger and
an inverter would; no gateway answers, so no cell bleeds. Frames are encoded by
``PackFrameEmitter`` (cantools, ``dbc/bms.dbc``) and written by python-can's
``CanutilsLogWriter`` (``(ts) can0 123#...``). Time stamps are simulated seconds from 0.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import can

from gateway.errors import ConfigError, GatewayError
from gateway.sim.emitter import FrameRates, PackFrameEmitter
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import HomeStorageProfile, guard_current

__all__ = ["SimLogSummary", "simulate_to_log", "write_sim_log"]

log = logging.getLogger("gateway.sim")


@dataclass(frozen=True, slots=True)
class SimLogSummary:
    """What ``simulate_to_log`` wrote."""

    path: Path
    frames: int
    sim_s: float
    wall_s: float
    final_soc_pct: tuple[float, ...]


def simulate_to_log(
    out: Path,
    *,
    config: PackSimConfig,
    hours: float,
    seed: int,
    rate: float = 1.0,
    step_s: float = 0.1,
    channel: str = "can0",
    current_source: Callable[[float], float] | None = None,
) -> SimLogSummary:
    """Run the simulator for ``hours`` and write every frame it sends to the candump log ``out``.

    Args:
        out: Log file to write (``.log``, candump ``-L`` format).
        config: The pack.
        hours: Simulated duration.
        seed: Seed of the pack's spread and of the profile.
        rate: Frame rate factor: 1 = the DBC cycle times, 0.1 = ten times fewer frames.
        step_s: Simulation step; frames due inside a step carry the step's values.
        channel: Channel name written on every line.
        current_source: Pack current against simulated time (default: a home-storage day,
            scaled to the pack capacity, seeded with ``seed``); passed through ``guard_current``.

    Raises:
        ConfigError: a bad argument, named with its value.
        GatewayError: the log cannot be written.
    """
    if not (hours > 0 and math.isfinite(hours)):
        raise ConfigError(f"hours (={hours}) must be positive")
    if not step_s > 0:
        raise ConfigError(f"step_s (={step_s}) must be positive")
    try:
        rates = FrameRates().scaled(rate)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    sim = PackSim(config, seed=seed)
    source = current_source or HomeStorageProfile(capacity_ah=config.capacity_ah, seed=seed)
    emitter = PackFrameEmitter(sim, rates=rates, channel=channel)
    steps = math.ceil(hours * 3600.0 / step_s)
    frames = 0
    t0 = time.perf_counter()
    try:
        writer = can.CanutilsLogWriter(out, channel=channel)
    except OSError as e:
        raise GatewayError(f"{out}: cannot write log: {e.strerror}") from None
    try:
        write = writer.on_message_received
        for msg in emitter.frames_due(0.0):
            write(msg)
            frames += 1
        for k in range(1, steps + 1):
            t_s = k * step_s
            # The current during the step is the source's value at the step's start.
            sim.step(step_s, guard_current(sim, source(t_s - step_s)))
            for msg in emitter.frames_due(t_s):
                write(msg)
                frames += 1
    except OSError as e:
        raise GatewayError(f"{out}: cannot write log: {e.strerror}") from None
    finally:
        writer.stop()
    return SimLogSummary(
        path=out,
        frames=frames,
        sim_s=sim.t_s,
        wall_s=time.perf_counter() - t0,
        final_soc_pct=tuple(sim.true_soc_pct()),
    )


def write_sim_log(
    out: Path,
    *,
    cells: int,
    hours: float,
    seed: int,
    chemistry: str,
    rate: float = 1.0,
    capacity_ah: float = 100.0,
    temp_sensors: int | None = None,
) -> int:
    """The ``sim-log`` command: write the log and say what was written; returns exit status 0.

    ``temp_sensors``: the pack's sensors (``None``: the simulator's one per 4 cells).

    Raises:
        ConfigError: a bad argument (cells, chemistry, hours, rate), named with its value.
        GatewayError: the log cannot be written.
    """
    try:
        config = PackSimConfig(
            cells=cells, chemistry=chemistry, capacity_ah=capacity_ah, temp_sensors=temp_sensors
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    s = simulate_to_log(out, config=config, hours=hours, seed=seed, rate=rate)
    log.info(
        "sim-log: %d frames, %.0f s simulated in %.1f s (%.0fx real time), %d %s cells -> %s",
        s.frames,
        s.sim_s,
        s.wall_s,
        s.sim_s / s.wall_s if s.wall_s > 0 else math.inf,
        cells,
        chemistry,
        out,
    )
    return 0
