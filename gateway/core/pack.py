"""Pack state: the latest value of every input with its receive time. Pure, clock-injected.

``PackState.apply`` is on the CAN hot path (one call per decoded value, hundreds of thousands per
second in replay), so it works on preallocated lists and does no allocation beyond the update.

Trust is decided here, once, for every consumer: a reading outside its plausibility window (or a
NaN, which is how the decoder passes a sentinel) is a measurement fault and has no value; a
snapshot shows no value older than its timeout (nor one stamped in the future, nor one with a
non-finite age), so the limits, protection, MQTT, the replay record, the view and SunSpec all see
the same unknowns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from gateway.core.cells import cell_sum_v
from gateway.core.config import Section
from gateway.core.model import MeasurementFault, PackSnapshot, Reading, Role
from gateway.core.plausibility import (
    PlausibilityConfig,
    PlausibilityWindows,
    contradicted_cells,
)

__all__ = ["InputTimeouts", "PackConfig", "PackState", "cell_temps"]


@dataclass(frozen=True, slots=True)
class InputTimeouts:
    """How old each required input may be, in seconds. ``pack_voltage_s=None``: not required.

    ``pack_voltage_age_s`` is how old a measured pack voltage may be before it is unknown even
    when it is not required (the cell sum then stands in for it).
    """

    cell_voltage_s: float
    temperature_s: float
    current_s: float
    pack_voltage_s: float | None = None
    pack_voltage_age_s: float = 5.0


_DEFAULT_TIMEOUTS = InputTimeouts(5.0, 10.0, 2.0)


class PackConfig(Section):
    """The physical pack."""

    cells: int = Field(default=16, ge=1, le=512)
    """Series cells (1..512)."""
    temp_sensors: int = Field(default=4, ge=1, le=256)
    """Temperature sensors (1..256). At least one: a pack whose temperature nobody measures is
    never safe to charge or discharge."""
    chemistry: str = "lfp"
    """Cell chemistry: ``lfp`` or ``nmc`` (selects OCV tables and protection defaults)."""
    capacity_ah: float = Field(default=100.0, gt=0, le=100_000, allow_inf_nan=False)
    """Nominal cell capacity in ampere-hours."""
    board_sensors: tuple[int, ...] = ()
    """Sensor roles: indices of temperature sensors on the balancing board, not on a cell. The
    one map every part uses: protection, limits and SoC read only the cell sensors (the others);
    balancing guards the board with these. At least one sensor must remain a cell sensor."""
    require_pack_voltage: bool = False
    """Whether a measured pack voltage is required for a complete data set (else the cell sum)."""

    def model_post_init(self, __context: object) -> None:
        """Check ranges that need more than a type."""
        bad = sorted(i for i in self.board_sensors if not 0 <= i < self.temp_sensors)
        if bad:
            raise ValueError(
                f"pack.board_sensors (={bad}) must be within 0..{self.temp_sensors - 1} "
                f"(pack.temp_sensors = {self.temp_sensors})"
            )
        if len(set(self.board_sensors)) >= self.temp_sensors:
            raise ValueError(
                f"pack.board_sensors (={list(self.board_sensors)}) leaves no cell sensor of "
                f"pack.temp_sensors (={self.temp_sensors}): the cells' temperature is unknown"
            )
        if self.chemistry not in ("lfp", "nmc"):
            raise ValueError(f"chemistry (={self.chemistry!r}) must be 'lfp' or 'nmc'")

    def cell_sensors(self) -> tuple[int, ...]:
        """Indices of the sensors on cells (every sensor not in ``board_sensors``), ascending."""
        board = set(self.board_sensors)
        return tuple(j for j in range(self.temp_sensors) if j not in board)


def cell_temps(
    temps: tuple[float | None, ...], cell_sensors: tuple[int, ...] | None
) -> tuple[float | None, ...]:
    """The readings of the cell sensors only (``cell_sensors=None``: every sensor is one)."""
    if cell_sensors is None:
        return temps
    return tuple(temps[j] for j in cell_sensors)


_NEVER = -math.inf


def _fresh(
    values: list[float | None], times: list[float], now_s: float, timeout_s: float
) -> tuple[tuple[float | None, ...], tuple[float | None, ...]]:
    """Values (``None`` where older than ``timeout_s``, stamped in the future or of a non-finite
    age) and their ages (``None`` where never seen)."""
    ages = tuple(None if t == _NEVER else now_s - t for t in times)
    shown = tuple(
        v if v is not None and a is not None and 0.0 <= a <= timeout_s else None
        for v, a in zip(values, ages, strict=True)
    )
    return shown, ages


class PackState:
    """Latest value and receive time of every configured input.

    Invalid readings (validity flag set) clear the value so the data set counts as incomplete
    until a valid one arrives; implausible ones (outside ``plausibility``'s windows, or NaN)
    clear it too and are listed as ``faults`` in the snapshot. Readings for indices beyond the
    configured pack are counted in ``dropped`` and otherwise ignored.

    Args:
        config: the pack.
        plausibility: the windows of plausible readings (default: the section's defaults).
        timeouts: how old a value may be before a snapshot shows it as unknown (default: the
            ``timeouts`` section's defaults).
    """

    def __init__(
        self,
        config: PackConfig,
        plausibility: PlausibilityConfig | None = None,
        timeouts: InputTimeouts = _DEFAULT_TIMEOUTS,
    ) -> None:
        self.config = config
        self.timeouts = timeouts
        w: PlausibilityWindows = (plausibility or PlausibilityConfig()).windows(
            config.chemistry, config.cells, config.capacity_ah
        )
        self.windows = w
        self._cell_lo, self._cell_hi = w.cell_v
        self._temp_lo, self._temp_hi = w.temp_c
        self._cur_lo, self._cur_hi = w.current_a
        self._pv_lo, self._pv_hi = w.pack_v
        n, m = config.cells, config.temp_sensors
        self._cell_v: list[float | None] = [None] * n
        self._cell_v_t: list[float] = [_NEVER] * n
        self._cell_bad: list[float | None] = [None] * n  # the implausible value, else None
        self._temp: list[float | None] = [None] * m
        self._temp_t: list[float] = [_NEVER] * m
        self._temp_bad: list[float | None] = [None] * m
        self._bal: list[bool] = [False] * n
        self._current: float | None = None
        self._current_t = _NEVER
        self._current_bad: float | None = None
        self._pack_v: float | None = None
        self._pack_v_t = _NEVER
        self._pack_v_bad: float | None = None
        self._n_bad = 0  # implausible values in force (a fast path for the snapshot)
        self.applied = 0
        self.dropped = 0
        self.implausible = 0  # implausible readings seen (counted, like dropped frames)
        # Readings beyond the configured counts: the highest index seen and when (-1: none).
        self._extra_cell = (-1, _NEVER)
        self._extra_sensor = (-1, _NEVER)

    def _judge(self, reading: Reading, lo: float, hi: float) -> tuple[float | None, float | None]:
        """``(value, bad)``: the value when valid and plausible; the implausible value else."""
        if not reading.valid:
            return None, None
        v = reading.value
        if lo <= v <= hi:  # False for NaN: a sentinel
            return v, None
        self.implausible += 1
        return None, v

    def apply(self, reading: Reading) -> bool:
        """Store one reading; return False (and count it) when its index is out of range."""
        role, i = reading.role, reading.index
        if role is Role.CELL_VOLTAGE:
            if not 0 <= i < len(self._cell_v):
                self.dropped += 1
                if reading.valid and self._cell_lo <= reading.value <= self._cell_hi:
                    # A real cell voltage, not an unused slot of a frame (invalid, 0 V, NaN).
                    self._extra_cell = _beyond(self._extra_cell, i, len(self._cell_v), reading.t_s)
                return False
            v = reading.value
            if reading.valid and self._cell_lo <= v <= self._cell_hi:  # the hot path
                self._cell_v[i] = v
                if self._cell_bad[i] is not None:
                    self._cell_bad[i] = None
                    self._n_bad -= 1
            else:
                value, bad = self._judge(reading, self._cell_lo, self._cell_hi)
                self._n_bad += (bad is not None) - (self._cell_bad[i] is not None)
                self._cell_v[i] = value
                self._cell_bad[i] = bad
            self._cell_v_t[i] = reading.t_s
        elif role is Role.CELL_TEMPERATURE:
            if not 0 <= i < len(self._temp):
                self.dropped += 1
                if reading.valid and self._temp_lo <= reading.value <= self._temp_hi:
                    m = len(self._temp)
                    self._extra_sensor = _beyond(self._extra_sensor, i, m, reading.t_s)
                return False
            value, bad = self._judge(reading, self._temp_lo, self._temp_hi)
            self._n_bad += (bad is not None) - (self._temp_bad[i] is not None)
            self._temp[i] = value
            self._temp_bad[i] = bad
            self._temp_t[i] = reading.t_s
        elif role is Role.PACK_CURRENT:
            value, bad = self._judge(reading, self._cur_lo, self._cur_hi)
            self._n_bad += (bad is not None) - (self._current_bad is not None)
            self._current = value
            self._current_bad = bad
            self._current_t = reading.t_s
        elif role is Role.PACK_VOLTAGE:
            value, bad = self._judge(reading, self._pv_lo, self._pv_hi)
            self._n_bad += (bad is not None) - (self._pack_v_bad is not None)
            self._pack_v = value
            self._pack_v_bad = bad
            self._pack_v_t = reading.t_s
        elif role is Role.BALANCING_STATUS:
            if not 0 <= i < len(self._bal):
                self.dropped += 1
                return False
            self._bal[i] = bool(reading.value) if reading.valid else False
        self.applied += 1
        return True

    def apply_all(self, readings: list[Reading]) -> None:
        """Store several readings."""
        for r in readings:
            self.apply(r)

    def _faults(self) -> list[MeasurementFault]:
        out: list[MeasurementFault] = []
        if not self._n_bad:
            return out
        lo, hi = self._cell_lo, self._cell_hi
        for i, v in enumerate(self._cell_bad):
            if v is not None:
                out.append(_fault("cell_voltage", i, v, lo, hi, "V"))
        lo, hi = self._temp_lo, self._temp_hi
        for i, v in enumerate(self._temp_bad):
            if v is not None:
                out.append(_fault("temperature", i, v, lo, hi, "degC"))
        if self._current_bad is not None:
            v = self._current_bad
            out.append(_fault("current", None, v, self._cur_lo, self._cur_hi, "A"))
        if self._pack_v_bad is not None:
            v = self._pack_v_bad
            out.append(_fault("pack_voltage", None, v, self._pv_lo, self._pv_hi, "V"))
        return out

    def snapshot(self, now_s: float, frames: int = 0, errors: int = 0) -> PackSnapshot:
        """The pack as of ``now_s``: values, ages, faults, and whether the data set is complete.

        A value older than its timeout (or stamped after ``now_s``, or of a non-finite age) is
        shown as ``None``: unknown, never the last value as if it were live.
        """
        to = self.timeouts
        cell_v, cell_age = _fresh(self._cell_v, self._cell_v_t, now_s, to.cell_voltage_s)
        temps, temp_age = _fresh(self._temp, self._temp_t, now_s, to.temperature_s)
        (current,), (current_age,) = _fresh([self._current], [self._current_t], now_s, to.current_s)
        pv_timeout = to.pack_voltage_s if to.pack_voltage_s is not None else to.pack_voltage_age_s
        (pack_v,), (pack_v_age,) = _fresh([self._pack_v], [self._pack_v_t], now_s, pv_timeout)
        faults = self._faults()
        if pack_v is not None and None not in cell_v:
            # Both measure the same string: a cell the pack voltage contradicts is not believed.
            known = tuple(v for v in cell_v if v is not None)
            blamed = contradicted_cells(known, pack_v, self.windows.cross_check_v)
            if blamed:
                values = list(cell_v)
                for i in blamed:
                    values[i] = None
                    faults.append(
                        MeasurementFault(
                            "cell_voltage",
                            i,
                            known[i],
                            f"contradicted by the pack voltage {pack_v:.2f} V "
                            f"(cell sum {math.fsum(known):.2f} V)",
                        )
                    )
                cell_v = tuple(values)
        complete = (
            None not in cell_v
            and None not in temps
            and current is not None
            and (pack_v is not None or not self.config.require_pack_voltage)
        )
        if pack_v is None and None not in cell_v:
            # Derived from the cells: as old as the oldest cell.
            pack_v = cell_sum_v(cell_v)
            pack_v_age = max(now_s - t for t in self._cell_v_t)
        return PackSnapshot(
            t_s=now_s,
            cell_voltage_v=cell_v,
            cell_voltage_age_s=cell_age,
            cell_temp_c=temps,
            cell_temp_age_s=temp_age,
            current_a=current,
            current_age_s=current_age,
            pack_voltage_v=pack_v,
            pack_voltage_age_s=pack_v_age,
            balancing_active=tuple(self._bal),
            complete=complete,
            frames=frames,
            errors=errors,
            faults=tuple(faults),
            extra_cell_number=_extra_number(self._extra_cell, now_s, to.cell_voltage_s),
            extra_sensor_number=_extra_number(self._extra_sensor, now_s, to.temperature_s),
        )


def _beyond(seen: tuple[int, float], i: int, n: int, t_s: float) -> tuple[int, float]:
    """The highest index beyond the ``n`` configured and its time, with reading ``i`` at ``t_s``
    (a negative index is a numbering fault, not a bigger pack)."""
    if i < n:
        return seen
    return (max(i, seen[0]) if t_s >= seen[1] else i, t_s)


def _extra_number(seen: tuple[int, float], now_s: float, timeout_s: float) -> int:
    """The highest extra index, as a number from 1, while seen within ``timeout_s``; else 0."""
    i, t = seen
    return i + 1 if i >= 0 and 0.0 <= now_s - t <= timeout_s else 0


def _fault(
    name: str, index: int | None, value: float, lo: float, hi: float, unit: str
) -> MeasurementFault:
    why = (
        "no value (sensor sentinel)"
        if math.isnan(value)
        else f"{value:g} {unit} outside the plausible {lo:g}..{hi:g} {unit}"
    )
    return MeasurementFault(name, index, value, why)
