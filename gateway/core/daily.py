"""Per-cell and per-pack daily summaries of the control output. Pure and clock-injected.

``DayAccumulator`` folds control steps (``ControlOutput``) into one ``DayRecord``: per cell the
capacity and R0 the estimator reports at the end of the day, the charge balancing bled or moved
that day, the relaxed (rest) voltage and SoC of each cell against the pack median at the day's
longest rest, and the extremes of voltage and temperature; per pack the energy in and out, the
equivalent cycles and the time at high SoC. The history store persists these records and the
health analytics (``gateway.core.health``) read them back.

The day number is the caller's (a calendar day in the daemon, a simulated day in benches); the
accumulator never reads a clock. Sign convention as everywhere: positive current charges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pydantic import Field

from gateway.core.cells import cell_sum_v
from gateway.core.config import Section
from gateway.core.model import ControlOutput
from gateway.core.trends import median

__all__ = ["CellDay", "DailyConfig", "DayAccumulator", "DayRecord", "PackDay"]

_NAN = math.nan


class DailyConfig(Section):
    """What counts as a rest and as high SoC in the daily summaries (part of ``[health]``)."""

    rest_current_c: float = Field(default=0.01, ge=0, le=1)
    """Current (C-rate) below which the pack rests (for the daily rest voltages)."""
    rest_min_s: float = Field(default=1800.0, ge=0, le=86_400)
    """A rest shorter than this gives no rest voltages (the cells have not relaxed)."""
    high_soc_pct: float = Field(default=95.0, ge=0, le=100)
    """Pack SoC at or above which time counts as time at high SoC."""


@dataclass(frozen=True, slots=True)
class CellDay:
    """One cell over one day. ``NaN``: not known that day.

    Attributes:
        capacity_ah: Capacity estimate at the end of the day.
        capacity_sigma_ah: Its one-sigma uncertainty.
        r0_mohm: R0 estimate averaged over the day's steps (referred to 25 degC by the
            estimator; the running estimate moves with each current step it learns from, the
            day's mean is the steadier figure for a trend).
        bled_ah: Charge dissipated in the cell's bleed resistor that day.
        moved_ah: Charge an active balancer delivered to (positive) or took from the cell.
        rest_dv_mv: Rest voltage minus the median cell's at the day's longest rest.
        rest_dsoc_pct: Estimated SoC minus the median cell's at that moment.
        v_min_v: Lowest voltage seen. v_max_v: highest.
        t_min_c: Lowest temperature of the cell's sensor. t_max_c: highest.
    """

    capacity_ah: float = _NAN
    capacity_sigma_ah: float = _NAN
    r0_mohm: float = _NAN
    bled_ah: float = 0.0
    moved_ah: float = 0.0
    rest_dv_mv: float = _NAN
    rest_dsoc_pct: float = _NAN
    v_min_v: float = _NAN
    v_max_v: float = _NAN
    t_min_c: float = _NAN
    t_max_c: float = _NAN


@dataclass(frozen=True, slots=True)
class PackDay:
    """The pack over one day.

    Attributes:
        energy_in_wh: Energy charged into the pack (pack voltage times current).
        energy_out_wh: Energy discharged.
        charge_in_ah: Charge into the pack. charge_out_ah: out of it.
        cycles: Equivalent full cycles that day (charge out over nominal capacity).
        high_soc_s: Time with the pack SoC at or above ``high_soc_pct``.
        rest_s: Length of the day's longest rest (the one the rest voltages come from).
        rest_soc_pct: Pack mean SoC at the end of that rest (``NaN``: no rest).
        covered_s: Time covered by control steps (less than a day after an outage).
    """

    energy_in_wh: float = 0.0
    energy_out_wh: float = 0.0
    charge_in_ah: float = 0.0
    charge_out_ah: float = 0.0
    cycles: float = 0.0
    high_soc_s: float = 0.0
    rest_s: float = 0.0
    rest_soc_pct: float = _NAN
    covered_s: float = 0.0


@dataclass(frozen=True, slots=True)
class DayRecord:
    """One day of one pack: ``day`` is the caller's day number (e.g. days since 1970-01-01)."""

    day: int
    pack: PackDay
    cells: tuple[CellDay, ...]


def _nanmin(a: float, b: float | None) -> float:
    if b is None or not math.isfinite(b):
        return a
    return b if not a <= b else a


def _nanmax(a: float, b: float | None) -> float:
    if b is None or not math.isfinite(b):
        return a
    return b if not a >= b else a


class DayAccumulator:
    """Folds control steps into the ``DayRecord`` of one day.

    Args:
        config: rest and high-SoC thresholds.
        cells: number of cells.
        temp_sensors: number of temperature sensors.
        capacity_ah: nominal capacity (C-rates, cycles).
        day: the day number this accumulator collects.
        cell_sensors: the sensors on cells (``PackConfig.cell_sensors``; default: all). Cell
            ``k`` is read by ``cell_sensors[k * m // cells]`` (``m`` of them, spread evenly
            along the string); board sensors are not a cell's temperature.
    """

    def __init__(
        self,
        config: DailyConfig,
        cells: int,
        temp_sensors: int,
        capacity_ah: float,
        day: int,
        *,
        cell_sensors: Sequence[int] | None = None,
    ) -> None:
        if cells < 1:
            raise ValueError(f"cells (={cells}) must be >= 1")
        self.config = config
        self.day = day
        self._n = cells
        self._q_nom = capacity_ah
        on_cells = list(range(temp_sensors)) if cell_sensors is None else list(cell_sensors)
        m = len(on_cells)
        self._sensor_of = [on_cells[k * m // cells] if m else -1 for k in range(cells)]
        self._v_min = [_NAN] * cells
        self._v_max = [_NAN] * cells
        self._t_min = [_NAN] * cells
        self._t_max = [_NAN] * cells
        self._cap = [_NAN] * cells
        self._cap_sigma = [_NAN] * cells
        self._r0 = [_NAN] * cells
        self._r0_sum = [0.0] * cells
        self._r0_n = 0
        self._bled = [0.0] * cells
        self._moved = [0.0] * cells
        self._last_bled: list[float] | None = None
        self._last_moved: list[float] | None = None
        self._pack = PackDay()
        self._last_t: float | None = None
        self._rest_since: float | None = None
        self._rest_dv: list[float] = [_NAN] * cells
        self._rest_dsoc: list[float] = [_NAN] * cells

    @classmethod
    def resume(
        cls,
        config: DailyConfig,
        record: DayRecord,
        temp_sensors: int,
        capacity_ah: float,
        *,
        cell_sensors: Sequence[int] | None = None,
    ) -> DayAccumulator:
        """Continue a day already partly recorded (after a restart): sums go on from it."""
        acc = cls(
            config,
            len(record.cells),
            temp_sensors,
            capacity_ah,
            record.day,
            cell_sensors=cell_sensors,
        )
        c = record.cells
        acc._v_min = [x.v_min_v for x in c]
        acc._v_max = [x.v_max_v for x in c]
        acc._t_min = [x.t_min_c for x in c]
        acc._t_max = [x.t_max_c for x in c]
        acc._cap = [x.capacity_ah for x in c]
        acc._cap_sigma = [x.capacity_sigma_ah for x in c]
        acc._r0 = [x.r0_mohm for x in c]
        if all(math.isfinite(x) for x in acc._r0):
            acc._r0_sum = list(acc._r0)  # the written mean counts as one sample
            acc._r0_n = 1
        acc._bled = [x.bled_ah for x in c]
        acc._moved = [x.moved_ah for x in c]
        acc._rest_dv = [x.rest_dv_mv for x in c]
        acc._rest_dsoc = [x.rest_dsoc_pct for x in c]
        acc._pack = record.pack
        return acc

    def add(
        self,
        out: ControlOutput,
        *,
        bled_ah: Sequence[float] | None = None,
        moved_ah: Sequence[float] | None = None,
    ) -> None:
        """Fold in one control step.

        Args:
            out: the step (its ``t_s`` is the time; steps must not go back in time).
            bled_ah: balancing charge dissipated per cell *since the controller started*
                (``BalancingPlanner.dissipated_ah``); the day gets the increase. A counter that
                goes down (the controller restarted) counts from zero again.
            moved_ah: the same for an active balancer (``BalancingPlanner.moved_ah``).

        Raises:
            ValueError: the step has another cell count.
        """
        snap = out.pack
        n = self._n
        if snap.cell_count != n:
            raise ValueError(f"step has {snap.cell_count} cells, accumulator {n}")
        t = out.t_s
        dt = 0.0 if self._last_t is None else max(0.0, t - self._last_t)
        self._last_t = t
        self._extremes(snap.cell_voltage_v, snap.cell_temp_c)
        self._balancing(bled_ah, moved_ah)
        soc = out.soc
        if soc is not None:
            self._cap = [c.capacity_ah for c in soc.cells]
            self._cap_sigma = [c.capacity_sigma_ah for c in soc.cells]
            self._r0 = [c.resistance_mohm for c in soc.cells]
            if all(math.isfinite(x) for x in self._r0):
                self._r0_sum = [a + x for a, x in zip(self._r0_sum, self._r0, strict=True)]
                self._r0_n += 1
        self._pack_sums(out, dt)
        self._rest(out)

    def _extremes(self, volts: Sequence[float | None], temps: Sequence[float | None]) -> None:
        self._v_min = [_nanmin(a, v) for a, v in zip(self._v_min, volts, strict=True)]
        self._v_max = [_nanmax(a, v) for a, v in zip(self._v_max, volts, strict=True)]
        if temps:
            ts = [temps[s] if s >= 0 else None for s in self._sensor_of]
            self._t_min = [_nanmin(a, x) for a, x in zip(self._t_min, ts, strict=True)]
            self._t_max = [_nanmax(a, x) for a, x in zip(self._t_max, ts, strict=True)]

    def _balancing(self, bled: Sequence[float] | None, moved: Sequence[float] | None) -> None:
        if bled is not None:
            self._bled, self._last_bled = _add_increase(self._bled, self._last_bled, bled)
        if moved is not None:
            self._moved, self._last_moved = _add_increase(
                self._moved, self._last_moved, moved, signed=True
            )

    def _pack_sums(self, out: ControlOutput, dt: float) -> None:
        snap = out.pack
        p = self._pack
        i = snap.current_a
        if i is None or not math.isfinite(i) or dt <= 0.0:
            self._pack = replace(p, covered_s=p.covered_s + dt)
            return
        h = dt / 3600.0
        v = snap.pack_voltage_v
        if v is None or not math.isfinite(v):
            # The cell sum when every cell is known (``_extremes`` holds the count to ``_n``).
            total = cell_sum_v(snap.cell_voltage_v)
            v = total if total is not None else _NAN
        e = v * i * h if math.isfinite(v) else 0.0
        soc = out.soc
        high = soc is not None and soc.soc_pct >= self.config.high_soc_pct
        q_out = p.charge_out_ah + (-i * h if i < 0 else 0.0)
        self._pack = replace(
            p,
            energy_in_wh=p.energy_in_wh + (e if i > 0 else 0.0),
            energy_out_wh=p.energy_out_wh + (-e if i < 0 else 0.0),
            charge_in_ah=p.charge_in_ah + (i * h if i > 0 else 0.0),
            charge_out_ah=q_out,
            cycles=q_out / self._q_nom,
            high_soc_s=p.high_soc_s + (dt if high else 0.0),
            covered_s=p.covered_s + dt,
        )

    def _rest(self, out: ControlOutput) -> None:
        """Keep the relaxed values at the end of the day's longest rest."""
        snap = out.pack
        i = snap.current_a
        t = out.t_s
        resting = (
            i is not None
            and math.isfinite(i)
            and abs(i) <= self.config.rest_current_c * self._q_nom
        )
        if not resting:
            self._rest_since = None
            return
        if self._rest_since is None:
            self._rest_since = t
        length = t - self._rest_since
        p = self._pack
        if length < self.config.rest_min_s or length < p.rest_s:
            return
        volts = snap.cell_voltage_v
        if any(v is None for v in volts) or out.soc is None:
            return
        vs = [float(v) for v in volts if v is not None]
        med_v = median(vs)
        socs = [c.soc_pct for c in out.soc.cells]
        med_soc = median(socs)
        self._rest_dv = [1000.0 * (v - med_v) for v in vs]
        self._rest_dsoc = [s - med_soc for s in socs]
        self._pack = replace(p, rest_s=length, rest_soc_pct=out.soc.soc_mean_pct)

    def record(self) -> DayRecord:
        """The day so far (call at any time; the accumulator goes on)."""
        cells = tuple(
            CellDay(
                capacity_ah=self._cap[k],
                capacity_sigma_ah=self._cap_sigma[k],
                r0_mohm=self._r0_sum[k] / self._r0_n if self._r0_n else self._r0[k],
                bled_ah=self._bled[k],
                moved_ah=self._moved[k],
                rest_dv_mv=self._rest_dv[k],
                rest_dsoc_pct=self._rest_dsoc[k],
                v_min_v=self._v_min[k],
                v_max_v=self._v_max[k],
                t_min_c=self._t_min[k],
                t_max_c=self._t_max[k],
            )
            for k in range(self._n)
        )
        return DayRecord(self.day, self._pack, cells)

    def next_day(self, day: int) -> DayAccumulator:
        """A fresh accumulator for ``day`` that keeps the balancing counters' baseline and the
        running rest (a rest over midnight goes on counting)."""
        nxt = DayAccumulator(self.config, self._n, 0, self._q_nom, day)
        nxt._sensor_of = self._sensor_of
        nxt._last_bled = self._last_bled
        nxt._last_moved = self._last_moved
        nxt._last_t = self._last_t
        nxt._rest_since = self._rest_since
        nxt._cap, nxt._cap_sigma, nxt._r0 = self._cap, self._cap_sigma, self._r0
        return nxt


def _add_increase(
    total: list[float], last: list[float] | None, now: Sequence[float], *, signed: bool = False
) -> tuple[list[float], list[float]]:
    """Add the increase of cumulative counters ``now`` over ``last`` to ``total``."""
    cur = [float(x) for x in now]
    if last is None or len(last) != len(cur) or len(cur) != len(total):
        return total, cur
    if signed:
        # Moved charge goes both ways; a restart shows as every counter back at zero.
        if all(x == 0.0 for x in cur) and any(x != 0.0 for x in last):
            return total, cur
        return [t + (c - p) for t, c, p in zip(total, cur, last, strict=True)], cur
    out = [t + (c - p if c >= p else c) for t, c, p in zip(total, cur, last, strict=True)]
    return out, cur
