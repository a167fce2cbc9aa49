"""The SoC estimator's cell temperatures: each cell's sensor and resistance factor. Pure."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

from gateway.core.chemistry import Chemistry
from gateway.core.model import PackSnapshot
from gateway.core.pack import PackConfig, cell_temps

__all__ = ["REF_TEMP_C", "CellSensors", "r_temp_factor"]

REF_TEMP_C = 25.0


class CellSensors:
    """Per temperature sensor of the cells its value and resistance factor, per cell its sensor.

    Args:
        pack: the pack (cell count, which sensors are the cells' on a balancing board).
        chemistry: the resistance temperature factor (``r_temp``).
    """

    def __init__(self, pack: PackConfig, chemistry: Chemistry) -> None:
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None
        self._n = pack.cells
        self._r_temp_factor = r_temp_factor(chemistry)
        self._sensor_of: list[int] = []  # each cell's temperature sensor (for _sensor_m sensors)
        self._sensor_m = -1
        self._no_sensor = [0] * pack.cells

    def read(self, snapshot: PackSnapshot) -> tuple[list[float], list[float], list[int]]:
        """Per temperature sensor its value (25 degC when unknown) and resistance factor, and
        each cell's sensor: ``(sensor_t, sensor_r, of)``, cell ``k`` reads ``sensor_t[of[k]]``.
        The cell sensors only (a balancing board's sensor says nothing of a cell's OCV)."""
        temps = cell_temps(snapshot.cell_temp_c, self._cell_sensors)
        m = len(temps)
        if not m:
            return [REF_TEMP_C], [1.0], self._no_sensor
        # Per sensor, not per cell: a sensor covers n/m cells.
        sensor_t = [t if t is not None and math.isfinite(t) else REF_TEMP_C for t in temps]
        r_factor = self._r_temp_factor
        sensor_r = [r_factor(t) for t in sensor_t]
        # The sensor of each cell (k * m // n), the same for every step with m sensors.
        of = self._sensor_of
        n = self._n
        if len(of) != n or self._sensor_m != m:
            of = self._sensor_of = [k * m // n for k in range(n)]
            self._sensor_m = m
        return sensor_t, sensor_r, of


def r_temp_factor(chem: Chemistry) -> Callable[[float], float]:
    """``chem.r_temp_factor`` with its table split once (the same arithmetic)."""
    rows = chem.r_temp
    if len(rows) == 1:
        f0 = rows[0][1]
        return lambda _t: f0
    ts = tuple(t for t, _ in rows)
    fs = tuple(f for _, f in rows)

    def factor(temp_c: float) -> float:
        if temp_c <= ts[0]:
            return fs[0]
        if temp_c >= ts[-1]:
            return fs[-1]
        i = bisect.bisect_right(ts, temp_c)
        x0, y0 = ts[i - 1], fs[i - 1]
        return y0 + (fs[i] - y0) * (temp_c - x0) / (ts[i] - x0)

    return factor
