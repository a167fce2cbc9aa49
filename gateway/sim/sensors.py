"""What the simulated pack's sensors report: fixed offsets, noise, and the gateway's readings.

The measurement model of ``gateway.sim.pack.PackSim``: per-cell voltage offsets (drawn with the
cells), per-sensor temperature offsets and measurement noise from the ``PackSimConfig``, on a
random stream of their own, so reading a value never changes the simulated physics.
``readings`` turns sensed values into the gateway's ``Reading`` objects, rounded as
``dbc/bms.dbc`` carries them when asked (benches that bypass CAN).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from gateway.core.model import Reading, Role
from gateway.sim.cells import CellParams, PackSimConfig

__all__ = ["Sensors", "readings"]


class Sensors:
    """Offsets and noise of the cell monitor, the shunt and the temperature sensors.

    Args:
        config: The pack parameters (noise sigmas, offsets, sensor count).
        params: The drawn cells (their voltage offsets).
        seed: The pack's seed; the noise stream is seeded from it apart from the cell draws.
    """

    def __init__(self, config: PackSimConfig, params: Sequence[CellParams], seed: int) -> None:
        self._config = config
        self._params = tuple(params)
        self._rng = random.Random(seed ^ 0x5EED5EED)
        self.sensor_offsets_c = [
            self._rng.gauss(0.0, config.temp_sensor_spread_c)
            for _ in range(config.temp_sensor_count)
        ]

    def cell_voltages_v(self, true_v: Sequence[float]) -> list[float]:
        """Cell voltages as the cell monitor reports ``true_v`` (offset + noise)."""
        sigma = self._config.voltage_noise_mv / 1000.0
        gauss = self._rng.gauss
        return [
            v + p.voltage_offset_v + (gauss(0.0, sigma) if sigma else 0.0)
            for v, p in zip(true_v, self._params, strict=True)
        ]

    def current_a(self, true_a: float) -> float:
        """Pack current as the shunt reports ``true_a`` (offset + noise)."""
        cfg = self._config
        noise = self._rng.gauss(0.0, cfg.current_noise_a) if cfg.current_noise_a else 0.0
        return true_a + cfg.current_offset_a + noise

    def temperatures_c(self, temp_c: float) -> list[float]:
        """Each temperature sensor on a pack at ``temp_c``: fixed offset + noise."""
        sigma = self._config.temp_noise_c
        gauss = self._rng.gauss
        return [
            temp_c + off + (gauss(0.0, sigma) if sigma else 0.0) for off in self.sensor_offsets_c
        ]


def readings(
    volts: Sequence[float],
    temps: Sequence[float],
    current_a: float,
    pack_v: float,
    bleed: Sequence[bool],
    t_s: float,
    *,
    quantized: bool,
) -> list[Reading]:
    """Sensed values as the gateway's readings, every one received at ``t_s``.

    Args:
        volts: Cell voltages (V), cell order.
        temps: Sensor temperatures (degC), sensor order.
        current_a: Pack current (A, positive = charging).
        pack_v: Pack voltage (V).
        bleed: Balancing switch per cell.
        t_s: Receive time put on every reading.
        quantized: Round as ``dbc/bms.dbc`` carries them (1 mV, 0.1 degC, 1 mA, 0.01 V).
    """
    if quantized:
        volts = [round(v * 1000.0) / 1000.0 for v in volts]
        temps = [round(x, 1) for x in temps]
        current_a = round(current_a * 1000.0) / 1000.0
        pack_v = round(pack_v, 2)
    out = [Reading(Role.CELL_VOLTAGE, k, v, t_s) for k, v in enumerate(volts)]
    out.extend(Reading(Role.CELL_TEMPERATURE, k, x, t_s) for k, x in enumerate(temps))
    out.append(Reading(Role.PACK_CURRENT, 0, current_a, t_s))
    out.append(Reading(Role.PACK_VOLTAGE, 0, pack_v, t_s))
    out.extend(
        Reading(Role.BALANCING_STATUS, k, 1.0 if on else 0.0, t_s) for k, on in enumerate(bleed)
    )
    return out
