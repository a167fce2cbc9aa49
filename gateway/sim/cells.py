"""The cells of a simulated pack: its parameters and the seeded manufacturing spread.

``PackSimConfig`` holds what a pack is made of (chemistry, capacity, spreads, sensors, ageing,
faulty cells); ``draw_cells`` draws each cell's capacity, R0/R1, self-discharge, measurement
offset and initial SoC from it, one normal draw per quantity in a fixed order, so a seed always
gives the same pack. ``gateway.sim.pack.PackSim`` runs the physics on the drawn cells and shows
each as a ``CellState``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from gateway.core.chemistry import Chemistry, get_chemistry

__all__ = ["CellFault", "CellParams", "CellState", "PackSimConfig", "draw_cells"]


@dataclass(frozen=True, slots=True)
class CellFault:
    """One cell that ages or leaks unlike the rest (health benches and tests).

    Each rate left ``None`` keeps the pack's value for that cell.

    Attributes:
        cell: 0-based cell index.
        self_discharge_pct_per_day: Leak through a soft internal short, percent of the cell's
            capacity per day (replaces the drawn self-discharge).
        capacity_fade_pct_per_day: Capacity lost per day, percent of the initial capacity.
        resistance_growth_pct_per_day: R0 and R1 growth per day, percent of the initial values.
    """

    cell: int
    self_discharge_pct_per_day: float | None = None
    capacity_fade_pct_per_day: float | None = None
    resistance_growth_pct_per_day: float | None = None


@dataclass(frozen=True, slots=True)
class CellState:
    """A snapshot of one cell: the truth the gateway tries to estimate."""

    index: int
    capacity_ah: float
    soc_pct: float
    ocv_v: float
    rc_voltage_v: float
    voltage_v: float
    bleeding: bool
    bleed_current_a: float
    bleed_charge_ah: float


@dataclass(frozen=True, slots=True)
class PackSimConfig:
    """Parameters of a simulated pack. Spreads are one standard deviation of a normal draw.

    Attributes:
        cells: Number of series cells (1..512, the limit of ``dbc/bms.dbc``).
        chemistry: ``lfp`` or ``nmc`` (OCV table and nominal resistances).
        capacity_ah: Mean cell capacity.
        capacity_spread_pct: Capacity spread, percent of the mean.
        resistance_spread_pct: Spread of R0 and R1 (one factor per cell), percent.
        self_discharge_pct_per_day: Mean self-discharge, percent of capacity per day.
        self_discharge_spread_pct_per_day: Its spread (absolute, clipped at 0).
        initial_soc_pct: Mean initial SoC.
        initial_soc_spread_pct: Initial SoC spread (absolute percent points).
        ambient_c: Ambient temperature.
        initial_temp_c: Initial pack temperature (``None``: ambient).
        heat_capacity_j_per_k_ah: Heat capacity per cell per Ah of capacity (a 100 Ah LFP cell
            weighs about 2 kg at about 1.1 kJ/(kg K): 22 J/K per Ah).
        thermal_time_constant_s: Time constant of the pack's heat loss to ambient.
        resistance_follows_temperature: Scale R0 and R1 with the chemistry's resistance-against-
            temperature table (``Chemistry.r_temp_factor``; ~1.8x at 0 degC for LFP); ``False``
            keeps the 25 degC values.
        bleed_resistance_ohm: Balancing resistor across a cell (33 ohm ~ 0.1 A at 3.3 V).
        temp_sensors: Number of temperature sensors, 0..256 (``None``: one per 4 cells, as the
            gateway's default of 4 sensors for 16 cells).
        temp_sensor_spread_c: Fixed per-sensor offset spread (gradients inside the pack).
        voltage_offset_spread_mv: Fixed per-cell measurement offset spread of the cell monitor.
        voltage_noise_mv: Measurement noise on sensed cell voltages (1 sigma).
        current_offset_a: Fixed offset of the current sensor.
        current_noise_a: Measurement noise on the sensed current (1 sigma).
        temp_noise_c: Measurement noise on sensed temperatures (1 sigma).
        capacity_fade_pct_per_day: Capacity every cell loses per day (linear ageing), percent of
            its initial capacity; applied every simulated hour. The SoC in percent is kept, so
            the charge a cell holds shrinks with it (loss of active material).
        resistance_growth_pct_per_day: Growth of every cell's R0 and R1 per day, percent of the
            initial values (linear; applied every simulated hour).
        faults: Cells that leak or age unlike the rest (``CellFault``).
    """

    cells: int = 16
    chemistry: str = "lfp"
    capacity_ah: float = 100.0
    capacity_spread_pct: float = 1.5
    resistance_spread_pct: float = 5.0
    self_discharge_pct_per_day: float = 0.05
    self_discharge_spread_pct_per_day: float = 0.02
    initial_soc_pct: float = 50.0
    initial_soc_spread_pct: float = 2.0
    ambient_c: float = 25.0
    initial_temp_c: float | None = None
    heat_capacity_j_per_k_ah: float = 22.0
    thermal_time_constant_s: float = 3 * 3600.0
    resistance_follows_temperature: bool = True
    bleed_resistance_ohm: float = 33.0
    temp_sensors: int | None = None
    temp_sensor_spread_c: float = 0.3
    voltage_offset_spread_mv: float = 0.0
    voltage_noise_mv: float = 0.0
    current_offset_a: float = 0.0
    current_noise_a: float = 0.0
    temp_noise_c: float = 0.0
    capacity_fade_pct_per_day: float = 0.0
    resistance_growth_pct_per_day: float = 0.0
    faults: tuple[CellFault, ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= self.cells <= 512:
            raise ValueError(f"cells (={self.cells}) must be within 1..512")
        get_chemistry(self.chemistry)  # raises ValueError naming the bad chemistry
        positive = {
            "capacity_ah": self.capacity_ah,
            "heat_capacity_j_per_k_ah": self.heat_capacity_j_per_k_ah,
            "thermal_time_constant_s": self.thermal_time_constant_s,
            "bleed_resistance_ohm": self.bleed_resistance_ohm,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} (={value}) must be positive")
        non_negative = {
            "capacity_spread_pct": self.capacity_spread_pct,
            "resistance_spread_pct": self.resistance_spread_pct,
            "self_discharge_pct_per_day": self.self_discharge_pct_per_day,
            "self_discharge_spread_pct_per_day": self.self_discharge_spread_pct_per_day,
            "initial_soc_spread_pct": self.initial_soc_spread_pct,
            "temp_sensor_spread_c": self.temp_sensor_spread_c,
            "voltage_offset_spread_mv": self.voltage_offset_spread_mv,
            "voltage_noise_mv": self.voltage_noise_mv,
            "current_noise_a": self.current_noise_a,
            "temp_noise_c": self.temp_noise_c,
            "capacity_fade_pct_per_day": self.capacity_fade_pct_per_day,
            "resistance_growth_pct_per_day": self.resistance_growth_pct_per_day,
        }
        for name, value in non_negative.items():
            if not value >= 0:
                raise ValueError(f"{name} (={value}) must not be negative")
        if not 0.0 <= self.initial_soc_pct <= 100.0:
            raise ValueError(f"initial_soc_pct (={self.initial_soc_pct}) must be within 0..100")
        if self.temp_sensors is not None and not 0 <= self.temp_sensors <= 256:
            raise ValueError(f"temp_sensors (={self.temp_sensors}) must be within 0..256")
        seen: set[int] = set()
        for f in self.faults:
            if not 0 <= f.cell < self.cells:
                raise ValueError(f"fault cell (={f.cell}) must be within 0..{self.cells - 1}")
            if f.cell in seen:
                raise ValueError(f"fault cell (={f.cell}) is given twice")
            seen.add(f.cell)
            for name in (
                "self_discharge_pct_per_day",
                "capacity_fade_pct_per_day",
                "resistance_growth_pct_per_day",
            ):
                value = getattr(f, name)
                if value is not None and not (math.isfinite(value) and value >= 0):
                    raise ValueError(f"fault {f.cell} {name} (={value}) must be >= 0")

    @property
    def temp_sensor_count(self) -> int:
        """Number of temperature sensors after the default is applied."""
        if self.temp_sensors is not None:
            return self.temp_sensors
        return min(256, math.ceil(self.cells / 4))


@dataclass(frozen=True, slots=True)
class CellParams:
    """Fixed parameters of one simulated cell (at 25 degC)."""

    index: int
    capacity_ah: float
    r0_ohm: float
    r1_ohm: float
    tau1_s: float
    self_discharge_a: float
    voltage_offset_v: float = 0.0


def draw_cells(
    config: PackSimConfig, chemistry: Chemistry, rng: random.Random
) -> tuple[tuple[CellParams, ...], list[float]]:
    """Each cell's fixed parameters and initial SoC (%), drawn from ``rng`` in cell order.

    Per cell, in this order: capacity, resistance factor (R0 and R1 alike), self-discharge,
    initial SoC, voltage offset; a ``CellFault`` with a self-discharge replaces the drawn one
    (the draw is still made, so the other cells do not change).
    """
    cfg, chem = config, chemistry
    faults = {f.cell: f for f in cfg.faults}
    params: list[CellParams] = []
    socs: list[float] = []
    for i in range(cfg.cells):
        cap = cfg.capacity_ah * max(0.5, 1.0 + rng.gauss(0.0, cfg.capacity_spread_pct / 100))
        r_factor = max(0.3, 1.0 + rng.gauss(0.0, cfg.resistance_spread_pct / 100))
        sd_pct = max(
            0.0,
            rng.gauss(cfg.self_discharge_pct_per_day, cfg.self_discharge_spread_pct_per_day),
        )
        soc = min(100.0, max(0.0, rng.gauss(cfg.initial_soc_pct, cfg.initial_soc_spread_pct)))
        fault = faults.get(i)
        if fault is not None and fault.self_discharge_pct_per_day is not None:
            sd_pct = fault.self_discharge_pct_per_day
        offset_v = rng.gauss(0.0, cfg.voltage_offset_spread_mv) / 1000.0
        params.append(
            CellParams(
                index=i,
                capacity_ah=cap,
                r0_ohm=chem.r0_ohm(cap) * r_factor,
                r1_ohm=chem.r1_ohm(cap) * r_factor,
                tau1_s=chem.tau1_s,
                self_discharge_a=sd_pct / 100.0 * cap / 24.0,
                voltage_offset_v=offset_v,
            )
        )
        socs.append(soc)
    return tuple(params), socs
