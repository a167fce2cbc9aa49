"""A simulated battery pack: N series cells with manufacturing spread, a 1-RC model per cell.

Every cell is an equivalent circuit ``OCV(SoC, T) + R0 + R1||C1`` with the chemistry's OCV table
(``gateway.core.chemistry``); the cells differ by a seeded normal spread in capacity, resistance,
self-discharge and initial SoC. The pack has one lumped temperature: heat from I^2*R in every cell
and from the bleed resistors, loss to ambient with a time constant. Passive balancing is a bleed
resistor switched across a cell.

The simulator is plain Python (no numpy: it is a runtime part of the demo) and written for speed:
per step it does a handful of float operations per cell and interpolates the OCV only where a
value is asked for. It is deterministic for a seed; measurement noise comes from a separate
random stream, so reading sensed values never changes the simulated physics.

Sign convention: positive current charges the pack (as on the CAN bus).

The pack's parameters, the drawn cells and ``CellState`` are ``gateway.sim.cells`` (re-exported
here); the measurement model is ``gateway.sim.sensors``; capacity fade and resistance growth are
``gateway.sim.ageing``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from gateway.core.chemistry import Chemistry, get_chemistry
from gateway.core.model import Reading
from gateway.sim.ageing import Ageing
from gateway.sim.cells import CellFault, CellParams, CellState, PackSimConfig, draw_cells
from gateway.sim.sensors import Sensors
from gateway.sim.sensors import readings as sensor_readings

__all__ = ["CellFault", "CellParams", "CellState", "PackSim", "PackSimConfig"]

_BLEED_REFRESH_S = 5.0


class PackSim:
    """N series cells driven by one pack current; see the module docstring.

    Args:
        config: Pack parameters.
        seed: Seed of the spread draws and of the measurement noise.
    """

    def __init__(self, config: PackSimConfig | None = None, seed: int = 0) -> None:
        self.config = cfg = config if config is not None else PackSimConfig()
        self.seed = seed
        self.chemistry: Chemistry = get_chemistry(cfg.chemistry)
        params, socs = draw_cells(cfg, self.chemistry, random.Random(seed))
        self.params: tuple[CellParams, ...] = params
        self._ageing = Ageing(cfg, params)
        self._cap = [p.capacity_ah for p in params]
        self._sensors = Sensors(cfg, params, seed)
        self._init_state(socs)

    def _init_state(self, socs: list[float]) -> None:
        """The state at t = 0: ``socs``, RC branches at rest, no bleeding, the initial
        temperature; and the per-cell lists the step works on."""
        cfg, params = self.config, self.params
        n = cfg.cells
        # Flat lists of the state: list comprehensions over them are the fast path.
        self._soc = socs
        self._v1 = [0.0] * n
        self._bleed = [False] * n
        self._bleed_a = [0.0] * n
        self._bleed_ah = [0.0] * n
        self._pct_per_as = [100.0 / (3600.0 * p.capacity_ah) for p in params]
        self._sd_a = [p.self_discharge_a for p in params]
        self._r0 = [p.r0_ohm for p in params]
        self._r1 = [p.r1_ohm for p in params]
        self._g1 = [1.0 / r for r in self._r1]
        self._sum_r0 = math.fsum(self._r0)
        self._tau1_s = self.chemistry.tau1_s
        self._decay_cache: tuple[float, float] = (-1.0, 0.0)
        self._heat_cap_j_per_k = cfg.heat_capacity_j_per_k_ah * math.fsum(
            p.capacity_ah for p in params
        )
        self._temp_c = cfg.initial_temp_c if cfg.initial_temp_c is not None else cfg.ambient_c
        self._r_factor = self._temperature_factor(self._temp_c)
        self._r_factor_temp_c = self._temp_c
        self._current_a = 0.0
        self._t_s = 0.0
        self._heat_j = 0.0
        self._bleed_heat_j = 0.0
        self._bleed_refresh_t_s = 0.0
        self._bleeding = False
        self._drain_a = list(self._sd_a)
        self._r1_bleed = [0.0] * n
        self._sum_b_r0 = 0.0
        self._sum_b2_r0 = 0.0
        self._bleed_w = 0.0
        self._ocv_cache: list[float] | None = None
        self._volt_cache: list[float] | None = None

    # ---------------------------------------------------------------- driving the simulation

    def step(self, dt_s: float, current_a: float) -> None:
        """Advance by ``dt_s`` with ``current_a`` (positive = charging) through every cell.

        The current is held constant over the step; the RC branch is integrated exactly for it.
        Cells clamp at 0 and 100 % SoC (the charge beyond is not stored).
        """
        if not dt_s > 0:
            raise ValueError(f"dt_s (={dt_s}) must be positive")
        if not math.isfinite(current_a):
            raise ValueError(f"current_a (={current_a}) must be finite")
        cached_dt, decay = self._decay_cache
        if cached_dt != dt_s:
            decay = math.exp(-dt_s / self._tau1_s)
            self._decay_cache = (dt_s, decay)
        gain = 1.0 - decay
        rf = self._r_factor
        i = current_a
        soc = self._soc
        if self._bleeding:
            # The bleed current follows the OCV, which moves slowly: refreshing it every few
            # simulated seconds instead of every step keeps bleeding packs fast (< 0.1 % error).
            if self._t_s >= self._bleed_refresh_t_s:
                self._update_bleed_currents()
            h = dt_s / 3600.0
            self._bleed_ah = [a + b * h for a, b in zip(self._bleed_ah, self._bleed_a, strict=True)]
            bleed_w = self._bleed_w
            # Cell current i - b: the bleed terms are folded into lists made at each refresh.
            soc = [
                s + (i - d) * dt_s * k
                for s, d, k in zip(soc, self._drain_a, self._pct_per_as, strict=True)
            ]
            ri = rf * gain * i
            rb = rf * gain
            self._v1 = [
                v * decay + r1 * ri - r1b * rb
                for v, r1, r1b in zip(self._v1, self._r1, self._r1_bleed, strict=True)
            ]
            # sum (i - b)^2 r0 = i^2 sum r0 - 2 i sum b r0 + sum b^2 r0
            ohmic_w = rf * (i * i * self._sum_r0 - 2.0 * i * self._sum_b_r0 + self._sum_b2_r0)
        else:
            bleed_w = 0.0
            soc = [
                s + (i - sd) * dt_s * k
                for s, sd, k in zip(soc, self._sd_a, self._pct_per_as, strict=True)
            ]
            ri = rf * gain * i
            self._v1 = [v * decay + r1 * ri for v, r1 in zip(self._v1, self._r1, strict=True)]
            ohmic_w = rf * i * i * self._sum_r0
        # Clamp only when needed: min/max over a list run in C, a per-cell clamp does not.
        if min(soc) < 0.0 or max(soc) > 100.0:
            soc = [0.0 if s < 0.0 else 100.0 if s > 100.0 else s for s in soc]
        self._soc = soc
        # Power in the RC branch resistors: v1^2 / R1 per cell.
        rc_w = sum([v * v * g for v, g in zip(self._v1, self._g1, strict=True)]) / rf
        heat_w = ohmic_w + rc_w + bleed_w
        self._heat_j += (ohmic_w + rc_w) * dt_s
        self._bleed_heat_j += bleed_w * dt_s
        self._step_temperature(dt_s, heat_w)
        self._current_a = current_a
        self._t_s += dt_s
        if self._t_s >= self._ageing.next_s:
            self._age()
        self._invalidate()

    def run(self, duration_s: float, dt_s: float, current_a: float) -> None:
        """Step ``duration_s`` at a constant ``current_a`` in steps of ``dt_s``."""
        steps = round(duration_s / dt_s)
        for _ in range(steps):
            self.step(dt_s, current_a)

    def set_bleed(self, mask: Sequence[bool]) -> None:
        """Switch the bleed resistors: ``mask[k]`` true bleeds cell ``k``.

        A shorter mask leaves the remaining cells off; a longer one is an error.
        """
        n = self.config.cells
        if len(mask) > n:
            raise ValueError(f"bleed mask has {len(mask)} entries for a pack of {n} cells")
        new = [bool(b) for b in mask] + [False] * (n - len(mask))
        self._bleed = new
        self._update_bleed_currents()
        self._invalidate()

    def set_soc_pct(self, soc_pct: Sequence[float]) -> None:
        """Overwrite the true SoC of every cell (benches set up a chosen imbalance)."""
        if len(soc_pct) != self.config.cells:
            raise ValueError(f"got {len(soc_pct)} SoC values for {self.config.cells} cells")
        for s in soc_pct:
            if not 0.0 <= s <= 100.0:
                raise ValueError(f"soc_pct (={s}) must be within 0..100")
        self._soc = [float(s) for s in soc_pct]
        self._update_bleed_currents()
        self._invalidate()

    # ---------------------------------------------------------------- the truth

    @property
    def t_s(self) -> float:
        """Simulated time since start."""
        return self._t_s

    @property
    def current_a(self) -> float:
        """Pack current of the last step (positive = charging)."""
        return self._current_a

    @property
    def temperature_c(self) -> float:
        """Lumped pack temperature."""
        return self._temp_c

    @property
    def bleed_mask(self) -> tuple[bool, ...]:
        """Bleed switch per cell."""
        return tuple(self._bleed)

    @property
    def bleed_charge_ah(self) -> tuple[float, ...]:
        """Charge dissipated in each cell's bleed resistor since start."""
        return tuple(self._bleed_ah)

    @property
    def heat_j(self) -> float:
        """Heat generated in the cells (I^2 R) since start."""
        return self._heat_j

    @property
    def bleed_heat_j(self) -> float:
        """Heat dissipated in the bleed resistors since start."""
        return self._bleed_heat_j

    @property
    def cells(self) -> tuple[CellState, ...]:
        """A snapshot of every cell."""
        ocv = self._ocv()
        volts = self._volts()
        return tuple(
            CellState(
                index=k,
                capacity_ah=self._cap[k],
                soc_pct=self._soc[k],
                ocv_v=ocv[k],
                rc_voltage_v=self._v1[k],
                voltage_v=volts[k],
                bleeding=self._bleed[k],
                bleed_current_a=self._bleed_a[k],
                bleed_charge_ah=self._bleed_ah[k],
            )
            for k, p in enumerate(self.params)
        )

    def true_soc_pct(self) -> list[float]:
        """True SoC of every cell."""
        return list(self._soc)

    def capacities_ah(self) -> list[float]:
        """True capacity of every cell now (after ageing; ``params`` holds the initial ones)."""
        return list(self._cap)

    def r0_ohm(self) -> list[float]:
        """True R0 of every cell now at 25 degC (after ageing)."""
        return list(self._r0)

    def self_discharge_a(self) -> list[float]:
        """Self-discharge current of every cell (A, drawn or set by a ``CellFault``)."""
        return list(self._sd_a)

    def ocv_v(self) -> list[float]:
        """Open-circuit voltage of every cell at its SoC and the pack temperature."""
        return list(self._ocv())

    def cell_voltages_v(self) -> list[float]:
        """True terminal voltage of every cell: OCV + I*R0 + v_RC (bleed current included)."""
        return list(self._volts())

    def pack_voltage_v(self) -> float:
        """True pack voltage: the sum of the cell voltages."""
        return math.fsum(self._volts())

    # ---------------------------------------------------------------- what the sensors report

    def sensed_cell_voltages_v(self) -> list[float]:
        """Cell voltages as the cell monitor reports them (offset + noise from the config)."""
        return self._sensors.cell_voltages_v(self._volts())

    def sensed_pack_voltage_v(self) -> float:
        """Pack voltage as the pack voltage sensor reports it (no offset or noise modelled)."""
        return self.pack_voltage_v()

    def sensed_current_a(self) -> float:
        """Pack current as the shunt reports it (offset + noise from the config)."""
        return self._sensors.current_a(self._current_a)

    def sensed_temperatures_c(self) -> list[float]:
        """Temperature sensors: the lumped pack temperature + fixed offset + noise."""
        return self._sensors.temperatures_c(self._temp_c)

    def readings(self, t_s: float | None = None, *, quantized: bool = True) -> list[Reading]:
        """The sensed values as the gateway's readings, bypassing CAN (fast benches).

        Args:
            t_s: Receive time put on every reading (default: the simulated time).
            quantized: Round as ``dbc/bms.dbc`` carries them (1 mV, 0.1 degC, 1 mA, 0.01 V),
                so a bench sees what the CAN path would deliver.
        """
        t = self._t_s if t_s is None else t_s
        volts = self.sensed_cell_voltages_v()
        temps = self.sensed_temperatures_c()
        current_a = self.sensed_current_a()
        pack_v = self.sensed_pack_voltage_v()
        return sensor_readings(volts, temps, current_a, pack_v, self._bleed, t, quantized=quantized)

    # ---------------------------------------------------------------- internals

    def _age(self) -> None:
        """Apply capacity fade and resistance growth for the time since start (``Ageing``)."""
        self._cap, self._r0, self._r1 = self._ageing.at(self._t_s)
        self._g1 = [1.0 / r for r in self._r1]
        self._sum_r0 = math.fsum(self._r0)
        self._pct_per_as = [100.0 / (3600.0 * c) for c in self._cap]
        # The leak is a current: it stays what it was when the capacity fades.
        self._update_bleed_currents()

    def _ocv(self) -> list[float]:
        # Cached until the state changes: several frames per step ask for the same values.
        if self._ocv_cache is None:
            ocv = self.chemistry.ocv_voltage
            temp_c = self._temp_c
            self._ocv_cache = [ocv(s, temp_c) for s in self._soc]
        return self._ocv_cache

    def _volts(self) -> list[float]:
        if self._volt_cache is None:
            rf = self._r_factor
            i = self._current_a
            self._volt_cache = [
                ocv + (i - b) * r0 * rf + v1
                for ocv, b, r0, v1 in zip(
                    self._ocv(), self._bleed_a, self._r0, self._v1, strict=True
                )
            ]
        return self._volt_cache

    def _invalidate(self) -> None:
        self._ocv_cache = None
        self._volt_cache = None

    def _temperature_factor(self, temp_c: float) -> float:
        if not self.config.resistance_follows_temperature:
            return 1.0
        return self.chemistry.r_temp_factor(temp_c)

    def _update_bleed_currents(self) -> None:
        """Bleed current of each switched cell from its OCV (the resistor sees ~ the OCV).

        Also folds the bleed currents into the per-cell lists the step uses.
        """
        self._bleed_refresh_t_s = self._t_s + _BLEED_REFRESH_S
        self._bleeding = any(self._bleed)
        if not self._bleeding:
            self._bleed_a = [0.0] * self.config.cells
        else:
            r = self.config.bleed_resistance_ohm
            ocv = self.chemistry.ocv_voltage
            temp_c = self._temp_c
            self._bleed_a = [
                ocv(s, temp_c) / r if on and s > 0.0 else 0.0
                for s, on in zip(self._soc, self._bleed, strict=True)
            ]
        bleed = self._bleed_a
        self._drain_a = [sd + b for sd, b in zip(self._sd_a, bleed, strict=True)]
        self._r1_bleed = [r1 * b for r1, b in zip(self._r1, bleed, strict=True)]
        self._sum_b_r0 = math.fsum(b * r0 for b, r0 in zip(bleed, self._r0, strict=True))
        self._sum_b2_r0 = math.fsum(b * b * r0 for b, r0 in zip(bleed, self._r0, strict=True))
        self._bleed_w = self.config.bleed_resistance_ohm * math.fsum(b * b for b in bleed)

    def _step_temperature(self, dt_s: float, heat_w: float) -> None:
        cfg = self.config
        c = self._heat_cap_j_per_k
        g = c / cfg.thermal_time_constant_s  # W/K to ambient
        # Exact solution of C dT/dt = P - G (T - Ta) for constant P over the step.
        t_inf = cfg.ambient_c + heat_w / g
        self._temp_c = t_inf + (self._temp_c - t_inf) * math.exp(-dt_s * g / c)
        # The table lookup costs as much as a cell update; temperature moves slowly, so look up
        # again only after a 0.01 K change (< 0.05 % in resistance).
        if abs(self._temp_c - self._r_factor_temp_c) > 0.01:
            self._r_factor = self._temperature_factor(self._temp_c)
            self._r_factor_temp_c = self._temp_c
