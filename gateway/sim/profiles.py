"""Deterministic pack-current profiles for the simulator (positive = charging).

``HomeStorageProfile`` is a day of a home battery beside a PV system: rest at night, a small
morning load, PV charging around noon with passing clouds, an evening discharge and short load
pulses (kettle, oven, heat pump start). Currents are C-rates times the capacity, so one profile
fits any pack. Each day's clouds and pulses are drawn from ``(seed, day)``, so the current at a
given time does not depend on which times were asked before: the profile is a pure function.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.sim.pack import PackSim

__all__ = ["ConstantProfile", "HomeStorageProfile", "LoadPulse", "guard_current", "guarded"]

_DAY_S = 86400.0
_HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class LoadPulse:
    """A short discharge: ``c_rate`` (positive number, discharging) from ``start_s`` of the day."""

    start_s: float
    duration_s: float
    c_rate: float


@dataclass(frozen=True, slots=True)
class ConstantProfile:
    """A constant current (tests and benches)."""

    current_a: float

    def __call__(self, t_s: float) -> float:
        """The current at ``t_s`` (always the same)."""
        return self.current_a


@dataclass(frozen=True)
class HomeStorageProfile:
    """Pack current of a home storage system as a function of simulated time.

    Args:
        capacity_ah: Pack capacity; every current is a C-rate times this.
        seed: Seed of clouds and load pulses.
        start_hour: Time of day at ``t_s = 0`` (e.g. 6.0 starts at 06:00).
        pv_peak_c: Charge C-rate at solar noon on a clear sky.
        pv_start_hour: Sunrise (start of PV charging).
        pv_end_hour: Sunset.
        morning_c: Discharge C-rate of the morning load.
        evening_c: Discharge C-rate of the evening load.
        pulses_per_day: Mean number of short load pulses per day.
        pulse_c: Mean C-rate of a pulse.
        cloud_slot_s: Length of a slot with one cloud factor.
    """

    capacity_ah: float
    seed: int = 0
    start_hour: float = 0.0
    pv_peak_c: float = 0.25
    pv_start_hour: float = 8.0
    pv_end_hour: float = 17.0
    morning_c: float = 0.05
    evening_c: float = 0.08
    pulses_per_day: int = 8
    pulse_c: float = 0.3
    cloud_slot_s: float = 600.0
    _days: dict[int, tuple[tuple[float, ...], tuple[LoadPulse, ...]]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.capacity_ah > 0:
            raise ValueError(f"capacity_ah (={self.capacity_ah}) must be positive")
        if not 0 <= self.pv_start_hour < self.pv_end_hour <= 24:
            raise ValueError(
                f"PV window ({self.pv_start_hour}..{self.pv_end_hour} h) must lie within 0..24 h"
            )
        if not self.cloud_slot_s > 0:
            raise ValueError(f"cloud_slot_s (={self.cloud_slot_s}) must be positive")

    def __call__(self, t_s: float) -> float:
        """Pack current in A at simulated time ``t_s`` (positive = charging)."""
        abs_s = t_s + self.start_hour * _HOUR_S
        day = math.floor(abs_s / _DAY_S)
        tod_s = abs_s - day * _DAY_S
        clouds, pulses = self._day(day)
        hour = tod_s / _HOUR_S
        c_rate = 0.0
        if 6.0 <= hour < 8.0:
            c_rate -= self.morning_c
        if self.pv_start_hour <= hour < self.pv_end_hour:
            span = self.pv_end_hour - self.pv_start_hour
            sun = math.sin(math.pi * (hour - self.pv_start_hour) / span)
            # The house consumes a little during the day; PV covers it and charges the rest.
            c_rate += self.pv_peak_c * sun * clouds[int(tod_s // self.cloud_slot_s)] - 0.02
        if 17.0 <= hour < 23.0:
            c_rate -= self.evening_c
        for p in pulses:
            if p.start_s <= tod_s < p.start_s + p.duration_s:
                c_rate -= p.c_rate
        return c_rate * self.capacity_ah

    def _day(self, day: int) -> tuple[tuple[float, ...], tuple[LoadPulse, ...]]:
        """Clouds and pulses of ``day``, drawn from (seed, day) and kept."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        rng = random.Random(self.seed * 1_000_003 + day)
        slots = math.ceil(_DAY_S / self.cloud_slot_s)
        overcast = rng.random() < 0.3  # some days are grey all day
        clouds = tuple(
            (0.2 + 0.3 * rng.random()) if overcast else (1.0 if rng.random() < 0.7 else 0.4)
            for _ in range(slots)
        )
        pulses = []
        for _ in range(self.pulses_per_day):
            # Loads happen while people are awake (06:00..23:00).
            start = rng.uniform(6 * _HOUR_S, 23 * _HOUR_S)
            pulses.append(
                LoadPulse(
                    start_s=start,
                    duration_s=rng.uniform(60.0, 600.0),
                    c_rate=self.pulse_c * rng.uniform(0.5, 1.5),
                )
            )
        result = (clouds, tuple(sorted(pulses, key=lambda p: p.start_s)))
        if len(self._days) > 64:  # bounded: a long run asks day after day
            self._days.clear()
        self._days[day] = result
        return result


def guard_current(
    sim: PackSim, current_a: float, *, full_soc_pct: float = 99.0, empty_soc_pct: float = 2.0
) -> float:
    """Taper ``current_a`` as a charger/inverter obeying the cell voltages would.

    Charging tapers linearly to 0 while the highest cell voltage rises from the OCV 3 % below
    ``full_soc_pct`` to the OCV at ``full_soc_pct``; discharging tapers while the lowest cell
    falls from the OCV 3 % above ``empty_soc_pct`` to the OCV at ``empty_soc_pct``. The fullest
    (emptiest) cell stops the pack, as with a real BMS. A crude stand-in for the gateway's limits
    when no gateway runs.
    """
    if current_a == 0.0:
        return current_a
    ocv = sim.chemistry.ocv_voltage
    volts = sim.cell_voltages_v()
    band_pct = 3.0
    if current_a > 0:
        lo_v, hi_v = ocv(full_soc_pct - band_pct), ocv(full_soc_pct)
        room = (hi_v - max(volts)) / (hi_v - lo_v)
    else:
        lo_v, hi_v = ocv(empty_soc_pct), ocv(empty_soc_pct + band_pct)
        room = (min(volts) - lo_v) / (hi_v - lo_v)
    return current_a * min(1.0, max(0.0, room))


def guarded(sim: PackSim, source: Callable[[float], float]) -> Callable[[float], float]:
    """``source`` through ``guard_current`` for ``sim`` (a ``current_source`` for a run).

    For ``run_sim_on_bus`` when no gateway limits the current: no cell leaves the window.
    """

    def current(t_s: float) -> float:
        return guard_current(sim, source(t_s))

    return current
