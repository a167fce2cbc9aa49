"""Pack state: the latest value of every input with its receive time. Pure, clock-injected.

``PackState.apply`` is on the CAN hot path (one call per decoded value, hundreds of thousands per
second in replay), so it works on preallocated lists and does no allocation beyond the update.
"""

from __future__ import annotations

import math

from gateway.core.config import Section
from gateway.core.model import PackSnapshot, Reading, Role

__all__ = ["PackConfig", "PackState"]


class PackConfig(Section):
    """The physical pack."""

    cells: int = 16
    """Series cells (1..512)."""
    temp_sensors: int = 4
    """Cell temperature sensors (0..256)."""
    chemistry: str = "lfp"
    """Cell chemistry: ``lfp`` or ``nmc`` (selects OCV tables and protection defaults)."""
    capacity_ah: float = 100.0
    """Nominal cell capacity in ampere-hours."""
    require_pack_voltage: bool = False
    """Whether a measured pack voltage is required for a complete data set (else the cell sum)."""

    def model_post_init(self, __context: object) -> None:
        """Check ranges that need more than a type."""
        if not 1 <= self.cells <= 512:
            raise ValueError(f"cells (={self.cells}) must be within 1..512")
        if not 0 <= self.temp_sensors <= 256:
            raise ValueError(f"temp_sensors (={self.temp_sensors}) must be within 0..256")
        if self.chemistry not in ("lfp", "nmc"):
            raise ValueError(f"chemistry (={self.chemistry!r}) must be 'lfp' or 'nmc'")
        if not self.capacity_ah > 0:
            raise ValueError(f"capacity_ah (={self.capacity_ah}) must be positive")


_NEVER = -math.inf


class PackState:
    """Latest value and receive time of every configured input.

    Invalid readings (validity flag set, or out of the configured cells) clear the value so the
    data set counts as incomplete until a valid one arrives. Readings for indices beyond the
    configured pack are counted in ``dropped`` and otherwise ignored.
    """

    def __init__(self, config: PackConfig) -> None:
        self.config = config
        n, m = config.cells, config.temp_sensors
        self._cell_v: list[float | None] = [None] * n
        self._cell_v_t: list[float] = [_NEVER] * n
        self._temp: list[float | None] = [None] * m
        self._temp_t: list[float] = [_NEVER] * m
        self._bal: list[bool] = [False] * n
        self._current: float | None = None
        self._current_t = _NEVER
        self._pack_v: float | None = None
        self._pack_v_t = _NEVER
        self.applied = 0
        self.dropped = 0

    def apply(self, reading: Reading) -> bool:
        """Store one reading; return False (and count it) when its index is out of range."""
        role, i = reading.role, reading.index
        value: float | None = reading.value if reading.valid else None
        if value is not None and not math.isfinite(value):
            value = None
        if role is Role.CELL_VOLTAGE:
            if not 0 <= i < len(self._cell_v):
                self.dropped += 1
                return False
            self._cell_v[i] = value
            self._cell_v_t[i] = reading.t_s
        elif role is Role.CELL_TEMPERATURE:
            if not 0 <= i < len(self._temp):
                self.dropped += 1
                return False
            self._temp[i] = value
            self._temp_t[i] = reading.t_s
        elif role is Role.PACK_CURRENT:
            self._current = value
            self._current_t = reading.t_s
        elif role is Role.PACK_VOLTAGE:
            self._pack_v = value
            self._pack_v_t = reading.t_s
        elif role is Role.BALANCING_STATUS:
            if not 0 <= i < len(self._bal):
                self.dropped += 1
                return False
            self._bal[i] = bool(value)
        self.applied += 1
        return True

    def apply_all(self, readings: list[Reading]) -> None:
        """Store several readings."""
        for r in readings:
            self.apply(r)

    def snapshot(self, now_s: float, frames: int = 0, errors: int = 0) -> PackSnapshot:
        """The pack as of ``now_s``: values, ages, and whether the data set is complete."""

        def age(t: float) -> float | None:
            return None if t == _NEVER else now_s - t

        cell_v = tuple(self._cell_v)
        temps = tuple(self._temp)
        pack_v = self._pack_v
        pack_v_age = age(self._pack_v_t)
        complete = (
            None not in cell_v
            and None not in temps
            and self._current is not None
            and (pack_v is not None or not self.config.require_pack_voltage)
        )
        if pack_v is None and None not in cell_v:
            # Derived from the cells: as old as the oldest cell.
            pack_v = math.fsum(v for v in cell_v if v is not None)
            pack_v_age = max(now_s - t for t in self._cell_v_t)
        return PackSnapshot(
            t_s=now_s,
            cell_voltage_v=cell_v,
            cell_voltage_age_s=tuple(age(t) for t in self._cell_v_t),
            cell_temp_c=temps,
            cell_temp_age_s=tuple(age(t) for t in self._temp_t),
            current_a=self._current,
            current_age_s=age(self._current_t),
            pack_voltage_v=pack_v,
            pack_voltage_age_s=pack_v_age,
            balancing_active=tuple(self._bal),
            complete=complete,
            frames=frames,
            errors=errors,
        )
