"""The open-circuit voltage curve of a cell: OCV against SoC, with its temperature coefficient.

Pure. The built-in curves and cell parameters are in :mod:`gateway.core.chemistry`; a user's
table in the form they have it is parsed by :mod:`gateway.core.ocv_file`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from gateway.core.tables import interp

__all__ = ["REF_TEMP_C", "OcvTable"]

REF_TEMP_C = 25.0
"""The temperature the OCV curve (and the cell resistances of a chemistry) refer to (degC)."""


@dataclass(frozen=True, slots=True)
class OcvTable:
    """Piecewise-linear OCV curve; ``soc_pct`` strictly increasing, ``ocv_v`` non-decreasing.

    ``docv_dt_mv_per_k`` (optional, one value per row) is the OCV's temperature coefficient:
    ``OCV(soc, T) = OCV(soc) + dOCV/dT(soc) * (T - 25 degC)``.
    """

    soc_pct: tuple[float, ...]
    ocv_v: tuple[float, ...]
    docv_dt_mv_per_k: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.soc_pct) != len(self.ocv_v) or len(self.soc_pct) < 2:
            raise ValueError("an OCV table needs at least two rows of equal length")
        if any(b <= a for a, b in zip(self.soc_pct, self.soc_pct[1:], strict=False)):
            raise ValueError("soc_pct must be strictly increasing")
        if any(b < a for a, b in zip(self.ocv_v, self.ocv_v[1:], strict=False)):
            raise ValueError("ocv_v must not decrease as soc_pct increases")
        if self.docv_dt_mv_per_k and len(self.docv_dt_mv_per_k) != len(self.soc_pct):
            raise ValueError("docv_dt_mv_per_k needs one value per row")

    def voltage(self, soc_pct: float, temp_c: float = REF_TEMP_C) -> float:
        """OCV at ``soc_pct`` (clamped to the table) and ``temp_c``."""
        # tables.interp inlined (the estimator calls this per cell per step).
        xs, ys = self.soc_pct, self.ocv_v
        if soc_pct <= xs[0]:
            v = ys[0]
        elif soc_pct >= xs[-1]:
            v = ys[-1]
        else:
            i = bisect.bisect_right(xs, soc_pct)
            x0, y0 = xs[i - 1], ys[i - 1]
            v = y0 + (ys[i] - y0) * (soc_pct - x0) / (xs[i] - x0)
        if self.docv_dt_mv_per_k and temp_c != REF_TEMP_C:
            v += interp(soc_pct, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
        return v

    def soc(self, ocv_v: float, temp_c: float = REF_TEMP_C) -> float:
        """SoC at ``ocv_v`` (clamped) and ``temp_c``; on a flat stretch, the middle of it."""
        if self.docv_dt_mv_per_k and temp_c != REF_TEMP_C:
            s = self._soc_25(ocv_v)
            # Refer the voltage to 25 degC with the coefficient where we landed; twice is plenty
            # (the coefficient is a few tenths of a mV/K and changes slowly).
            for _ in range(2):
                dv = interp(s, self.soc_pct, self.docv_dt_mv_per_k) * (temp_c - 25.0) / 1e3
                s = self._soc_25(ocv_v - dv)
            return s
        return self._soc_25(ocv_v)

    def _soc_25(self, ocv_v: float) -> float:
        xs, ys = self.ocv_v, self.soc_pct
        if ocv_v <= xs[0]:
            return ys[0]
        if ocv_v >= xs[-1]:
            return ys[-1]
        lo = bisect.bisect_left(xs, ocv_v)
        if xs[lo] == ocv_v:  # exactly on one or more table points
            hi = bisect.bisect_right(xs, ocv_v, lo)
            return (ys[lo] + ys[hi - 1]) / 2
        x0, y0 = xs[lo - 1], ys[lo - 1]
        return y0 + (ys[lo] - y0) * (ocv_v - x0) / (xs[lo] - x0)

    def slope(self, soc_pct: float) -> float:
        """dOCV/dSoC in volts per percent at ``soc_pct``."""
        xs, ys = self.soc_pct, self.ocv_v
        i = bisect.bisect_right(xs, soc_pct)
        if i < 1:
            i = 1
        elif i > len(xs) - 1:
            i = len(xs) - 1
        return (ys[i] - ys[i - 1]) / (xs[i] - xs[i - 1])
