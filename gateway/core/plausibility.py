"""Plausibility: which readings no healthy cell or sensor can show. Pure.

A reading outside its role's window (per chemistry for cell voltages), a sentinel the decoder
turned into NaN, or a cell voltage the measured pack voltage contradicts is a *measurement
fault*, not a cell condition: the value counts as invalid while it lasts (CCL = DCL = 0 A through
the ``implausible:`` limit term and the ``measurement_fault`` alarm), it never feeds the over- or
under-voltage checks, so it never latches them, and the gateway recovers by itself once plausible
values return.

Windows are deliberately wide: they catch what cannot be a cell (0 V, 65.535 V, a 0xFF sensor
read as 215 degC), not a cell in trouble. A real cell that leaves its operating window is still
handled by protection, which latches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pydantic import Field

from gateway.core.config import Section

__all__ = [
    "PLAUSIBILITY_DEFAULTS",
    "PlausibilityConfig",
    "PlausibilityWindows",
    "contradicted_cells",
]

# Cell voltages no cell of the chemistry shows, healthy or merely over- or under-charged: LFP
# cells are rated 2.5..3.65 V and NMC cells 2.5/3.0..4.2 V (datasheets), so a reading beyond
# these wider bounds is the measurement, not the cell. The sensor and shunt windows are the
# usual ranges of NTC front ends (-40..125 degC) and a generous 10 C of current.
PLAUSIBILITY_DEFAULTS: dict[str, tuple[float, float]] = {
    "lfp": (1.0, 4.5),
    "nmc": (1.5, 4.8),
}


class PlausibilityConfig(Section):
    """What counts as a measurement fault (a value no healthy cell or sensor can show).

    Such a value is invalid while it lasts: CCL and DCL are 0 A and ``measurement_fault`` is
    active; it never latches an over- or under-voltage alarm, and clears by itself.
    """

    cell_voltage_min_v: float | None = Field(default=None, ge=0.0, le=10.0, allow_inf_nan=False)
    """Lowest plausible cell voltage (unset: LFP 1.0 V, NMC 1.5 V)."""
    cell_voltage_max_v: float | None = Field(default=None, gt=0.0, le=10.0, allow_inf_nan=False)
    """Highest plausible cell voltage (unset: LFP 4.5 V, NMC 4.8 V)."""
    cell_temp_min_c: float = Field(default=-40.0, ge=-273.15, le=200.0, allow_inf_nan=False)
    """Lowest plausible reading of a temperature sensor (cell or board)."""
    cell_temp_max_c: float = Field(default=125.0, ge=-273.15, le=200.0, allow_inf_nan=False)
    """Highest plausible reading of a temperature sensor (cell or board); a raw 0xFF read as
    215 degC is beyond it."""
    current_max_c: float = Field(default=10.0, gt=0.0, le=1000.0, allow_inf_nan=False)
    """Largest plausible pack current, as a C-rate (times ``pack.capacity_ah``), either way."""
    cross_check_v: float = Field(default=0.5, gt=0.0, le=100.0, allow_inf_nan=False)
    """A cell is contradicted by the measured pack voltage when the cell sum misses the pack
    voltage by more than this (and 2 % of it), and the cell alone stands out from the median
    cell by at least half the miss, in the same direction."""

    def model_post_init(self, __context: object) -> None:
        """Check the order of the windows."""
        lo, hi = self.cell_voltage_min_v, self.cell_voltage_max_v
        if lo is not None and hi is not None and not lo < hi:
            raise ValueError(
                f"plausibility.cell_voltage_min_v (={lo}) must be below "
                f"plausibility.cell_voltage_max_v (={hi})"
            )
        if not self.cell_temp_min_c < self.cell_temp_max_c:
            raise ValueError(
                f"plausibility.cell_temp_min_c (={self.cell_temp_min_c}) must be below "
                f"plausibility.cell_temp_max_c (={self.cell_temp_max_c})"
            )

    def windows(self, chemistry: str, cells: int, capacity_ah: float) -> PlausibilityWindows:
        """The resolved windows for a pack.

        Raises:
            ValueError: an own cell window that crosses a chemistry default (names both keys).
        """
        d_lo, d_hi = PLAUSIBILITY_DEFAULTS[chemistry]
        lo = d_lo if self.cell_voltage_min_v is None else self.cell_voltage_min_v
        hi = d_hi if self.cell_voltage_max_v is None else self.cell_voltage_max_v
        if not lo < hi:
            raise ValueError(
                f"plausibility.cell_voltage_min_v (={lo}) must be below "
                f"plausibility.cell_voltage_max_v (={hi}) for {chemistry}"
            )
        i_max = self.current_max_c * capacity_ah
        return PlausibilityWindows(
            cell_v=(lo, hi),
            temp_c=(self.cell_temp_min_c, self.cell_temp_max_c),
            current_a=(-i_max, i_max),
            # Twice the highest cell sum: a pack voltage between is a cell-count or wiring
            # question (the ``configuration`` alarm), beyond it no measurement.
            pack_v=(0.0, 2.0 * hi * cells),
            cross_check_v=self.cross_check_v,
        )


@dataclass(frozen=True, slots=True)
class PlausibilityWindows:
    """Resolved inclusive windows ``(low, high)`` per role, in SI units."""

    cell_v: tuple[float, float]
    temp_c: tuple[float, float]
    current_a: tuple[float, float]
    pack_v: tuple[float, float]
    cross_check_v: float = 0.5


def contradicted_cells(
    cells_v: tuple[float, ...], pack_v: float, tolerance_v: float
) -> tuple[int, ...]:
    """Cells whose reading the measured pack voltage contradicts.

    The sum of the cells must match the pack voltage (both measure the same string). When it
    misses by more than ``max(tolerance_v, 2 % of pack_v)``, the cells that stand out from the
    median cell in the direction of the miss, by at least half of it, are the ones to blame; a
    miss no single cell explains (a wrong pack voltage, a wrong cell count) blames no cell (the
    ``configuration`` alarm reports it).

    Args:
        cells_v: every cell voltage (V), all known.
        pack_v: the measured pack voltage (V).
        tolerance_v: the allowed miss (V), ``plausibility.cross_check_v``.

    Returns:
        The indices of the contradicted cells, ascending (empty when the sum agrees).
    """
    n = len(cells_v)
    if n < 2 or not math.isfinite(pack_v):
        return ()
    miss = math.fsum(cells_v) - pack_v
    if abs(miss) <= max(tolerance_v, 0.02 * abs(pack_v)):
        return ()
    ordered = sorted(cells_v)
    median = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
    half = 0.5 * abs(miss) * (1.0 - 1e-9)
    sign = 1.0 if miss > 0 else -1.0
    return tuple(i for i, v in enumerate(cells_v) if (v - median) * sign >= half)
