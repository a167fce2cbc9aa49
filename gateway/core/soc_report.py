"""The SoC estimator's report: pack SoC, per-cell figures and relative sigma. Pure.

``ReportFigures`` keeps each cell's report figures and recomputes those of the cells weighed in a
step; ``relative_sigma`` is each cell's uncertainty against the rest of the string (see
``SocEstimator.relative_sigma_pct``); ``pack_soc_pct`` is the SoC the inverter sees.
"""

from __future__ import annotations

import math

from gateway.core.model import CellEstimate, SocReport
from gateway.core.soc_cell import CellState

__all__ = ["ReportFigures", "pack_soc_pct", "relative_sigma"]

_NAN = math.nan
_NO_ESTIMATE = CellEstimate(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)


def pack_soc_pct(soc_min_pct: float, soc_max_pct: float) -> float:
    """The pack SoC the inverter sees: the min cell near empty, the max cell near full.

    ``min / (min + (100 - max))`` is 100 when one cell is full (nothing can take more charge), 0
    when one cell is empty, and equals the common value when all cells agree. With one cell full
    and another empty at once the pack can neither charge nor discharge; that reads 0 (the safe
    side for an inverter deciding to discharge).
    """
    room = 100.0 - soc_max_pct
    denom = soc_min_pct + room
    if denom <= 1e-9:
        return 0.0
    return min(100.0, max(0.0, 100.0 * soc_min_pct / denom))


class ReportFigures:
    """Each cell's report figures, refreshed for the cells weighed (``refresh``).

    Args:
        n: number of cells.
        q_nom_ah: nominal capacity (Ah), the reference of the SoH.
    """

    def __init__(self, n: int, q_nom_ah: float) -> None:
        self._n = n
        self._q_nom_ah = q_nom_ah
        self._all_init = False
        self._total = [0.0] * n
        self._common = [0.0] * n
        self._reported = [0.0] * n  # CellState.total_var
        self._est: list[CellEstimate] = []

    def clear(self) -> None:
        """Forget the figures (the cells were replaced): the next refresh recomputes all."""
        self._all_init = False
        self._est = []

    def refresh(self, cells: list[CellState], lo: int, hi: int) -> SocReport | None:
        """The report with the figures of cells ``lo..hi-1`` recomputed (the rest kept).

        Every cell's relative sigma is taken against the median cell's common variance; cells
        outside ``lo..hi`` keep the one they had when last weighed. ``None`` while some cell
        has not had a valid voltage.
        """
        n = self._n
        if not self._all_init:
            if not all(c.initialised for c in cells):
                return None
            self._all_init = True
            lo, hi = 0, n
        if len(self._est) != n:
            lo, hi = 0, n
        # One pass over the cells: the same figures as relative_sigma and sigma_pct.
        total = self._total
        common = self._common
        reported = self._reported
        for k in range(lo, hi):
            c = cells[k]
            bv = c.bias_var()
            total[k] = c.p00 + bv
            common[k] = c.rc + c.sc * c.sc + c.sg * c.sg + bv
            reported[k] = c.total_var()
        ref = sorted(common)[n // 2]
        sqrt = math.sqrt
        est = self._est
        if len(est) != n:
            est = self._est = [_NO_ESTIMATE] * n
        for k in range(lo, hi):
            c = cells[k]
            tot = reported[k]
            com = common[k]
            own = total[k] - com  # the filter's own part (the count's cap is mostly common)
            own = own if own > 0.0 else 0.0  # max(0.0, own), NaN included
            rel = sqrt(min(tot, own + abs(com - ref)))
            # Positional (cheaper than keywords), in CellEstimate's field order
            # (test_report_fields_are_the_cell_states_own fails on a reorder).
            est[k] = CellEstimate(
                c.soc_pct,
                min(50.0, sqrt(tot)),
                c.capacity_ah,
                c.r0_ohm_25c * 1000.0,
                min(50.0, rel),
                sqrt(c.capacity_var),
                c.r1_ohm_25c * 1000.0,
                c.tau1_s,
            )
        socs = [e.soc_pct for e in est]
        lo_soc, hi_soc = min(socs), max(socs)
        return SocReport(
            soc_pct=pack_soc_pct(lo_soc, hi_soc),
            soc_mean_pct=math.fsum(socs) / n,
            soh_pct=100.0 * min([e.capacity_ah for e in est]) / self._q_nom_ah,
            cells=tuple(est),
        )


def relative_sigma(cells: list[CellState]) -> list[float]:
    """Each cell's SoC sigma relative to the string (%), without the initialisation check.

    See ``SocEstimator.relative_sigma_pct``.
    """
    n = len(cells)
    # The model bias under load is counted as common: every cell sees the same current
    # through similar cells (cells at other SoCs differ, which the median term covers).
    total = [c.p00 + c.bias_var() for c in cells]
    common = [c.rc + c.sc * c.sc + c.sg * c.sg + c.bias_var() for c in cells]
    ref = sorted(common)[n // 2]
    out: list[float] = []
    for k in range(n):
        own = max(0.0, total[k] - common[k])
        # At most the reported sigma (``CellState.total_var``: the count may cap it).
        out.append(math.sqrt(min(cells[k].total_var(), own + abs(common[k] - ref))))
    return out
