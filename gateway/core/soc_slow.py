"""The cell's slow polarisation (solid diffusion), learned from the rests after a load. Pure.

Over hours of load a cell's particle surfaces drift from their mean: the voltage reads the OCV
of a surface SoC that lies behind the cell's SoC by about ``k * w2 / Q`` (% of SoC; ``k`` in %
of SoC per C, ``w2`` the slow branch's current, time constant ``tau2``, ``Q`` the capacity).
The first-order circuit (``tau1`` of minutes) does not hold it, so near a knee it is read as a
SoC error (docs/PERFORMANCE.md, s5-max cause (B)). The size differs between cells by ten
times and more, so no fixed prior fits (s6-knee); under load it cannot be told from a SoC
error (s8-knee). In a rest it can: the current is gone, the SoC stands still, and the
voltage relaxes by the shift alone. Between two rest blocks (``gateway.core.soc_rest``: the
mean OCV per ``rest_s``, the modelled RC voltages taken off) the mean OCV changes by
``slope * k * (w2_b - w2_a) / Q``, so each pair of blocks is one sample of ``k``:

    y = OCV_b - OCV_a - slope(soc) * dsoc  (V),    x = slope(soc) * (w2_b - w2_a) / Q  (V/(%/C))

(``dsoc``: the SoC the count moved between the blocks' middles: a rest current, below
``rest_current_c``, moves it up to 0.25 % per 15-minute block, which on the steep top of an
LFP cell is several millivolts; that part of the change is the SoC's, not the relaxation's.)

``k`` is their weighted least-squares estimate with a prior of 0 +- ``PRIOR_SIGMA_PCT_PER_C``,
each pair weighed by the block means' noise plus ``FLOOR_PCT`` of SoC (the count's unknown
drift over a block, the table's error between them), held within 0..``K_MAX_PCT_PER_C``
(a relaxation the other way is a circuit that over-holds the fast part: nothing slow to
learn). The evidence is capped (``INFO_MAX``) so that an ageing cell's value can still move.
Only rests after a discharge teach it (both blocks' slow current negative): the knee it is for
is the low one after a long discharge, and the rests after a charge are mostly at the top,
where on the LFP pack simulator (no diffusion in it) they taught 0.3..1.4 %/C of what the top's
steep end and its CV phase leave. The evidence is the pack's, shared by its cells
(``SlowEvidence``): per cell, one rest's noise gave the simulator's cells 0..20 %/C and spread
their SoCs (active balancing day 2: 99.5 -> 97.7 %).

The voltage is then weighed (identification and correction) at the surface SoC
``soc + shift_pct(...)``, under load and in a rest alike (a rest's first voltages still read the
surface), the surface held within 0..100 % (``gateway.core.soc_weigh``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "FLOOR_PCT",
    "INFO_MAX",
    "K_MAX_PCT_PER_C",
    "PRIOR_SIGMA_PCT_PER_C",
    "XY_MAX",
    "SlowEvidence",
    "SlowShift",
    "learn_slow",
    "restore_slow",
    "shift_pct",
]

PRIOR_SIGMA_PCT_PER_C = 10.0
"""The prior's sigma of ``k`` (% of SoC per C): about what an LFP cell shows (s6-knee)."""
FLOOR_PCT = 0.1
"""Error of one pair of rest blocks beyond their noise, in % of SoC (a 0.2 % FS offset not yet
learned moves the count 0.1 % over a 15-minute block)."""
K_MAX_PCT_PER_C = 60.0
"""The largest ``k`` taken (% of SoC per C)."""
INFO_MAX = 1.0
"""The most evidence kept, in 1/(%/C)^2 (a sigma of 1 %/C): older evidence is scaled down."""
XY_MAX = K_MAX_PCT_PER_C * (INFO_MAX + 1.0 / PRIOR_SIGMA_PCT_PER_C**2)
"""The largest |sum x y / var| kept (1/(%/C)): the estimate's range at the most evidence."""


@dataclass(slots=True)
class SlowEvidence:
    """The pack's evidence on the slow polarisation, shared by its cells (one build: one
    diffusion; a per-cell value from one rest's noise would spread the cells' SoCs): ``info``
    = sum x^2 / var (1/(%/C)^2), ``xy`` = sum x y / var (1/(%/C)), and the estimate
    ``k_pct_per_c`` (% of SoC per C) they give (``restore_slow``). A lone cell has its own."""

    k_pct_per_c: float = 0.0
    info: float = 0.0
    xy: float = 0.0


@dataclass(slots=True)
class SlowShift:
    """One cell's part: the pack's ``evidence`` and the current rest block's sums of the slow
    current (A, ``w2_sum``) and of the charge counted for the cell (Ah, ``ah_sum``) beside the
    previous block's means (NaN: no block yet in this rest)."""

    evidence: SlowEvidence = field(default_factory=SlowEvidence)
    w2_sum: float = 0.0
    ah_sum: float = 0.0
    prev_w2_a: float = math.nan
    prev_ah: float = math.nan

    @property
    def k_pct_per_c(self) -> float:
        """The slow polarisation in use (% of SoC per C)."""
        return self.evidence.k_pct_per_c

    def add(self, w2_a: float, counted_ah: float) -> None:
        """Add one rested sample's slow current (A) and counted charge (Ah) to the block."""
        self.w2_sum += w2_a
        self.ah_sum += counted_ah

    def end_rest(self) -> None:
        """Forget the rest's blocks."""
        self.w2_sum = self.ah_sum = 0.0
        self.prev_w2_a = self.prev_ah = math.nan


def restore_slow(ev: SlowEvidence, info: float, xy: float) -> None:
    """Set the evidence (as saved: ``info`` within 0..``INFO_MAX``, ``|xy|`` within
    ``XY_MAX``) and the estimate it gives."""
    ev.info, ev.xy = info, xy
    ev.k_pct_per_c = _estimate(info, xy)


def _estimate(info: float, xy: float) -> float:
    """``k`` (% of SoC per C) from the evidence and the prior, held within its range."""
    k = xy / (info + 1.0 / PRIOR_SIGMA_PCT_PER_C**2)
    return min(max(k, 0.0), K_MAX_PCT_PER_C)


def shift_pct(slow: SlowShift, w2_a: float, capacity_ah: float) -> float:
    """The surface SoC less the cell's (%): ``k * w2 / Q`` (``w2_a`` in A, charge positive)."""
    if slow.k_pct_per_c == 0.0 or capacity_ah <= 0.0:
        return 0.0
    return slow.k_pct_per_c * w2_a / capacity_ah


def learn_slow(
    slow: SlowShift,
    n: int,
    mean_v: float,
    prev_v: float,
    noise_var_v2: float,
    slope_v_per_pct: float,
    capacity_ah: float,
) -> None:
    """Close a rest block of ``n`` samples and learn ``k`` from it and the block before.

    ``mean_v``: this block's mean OCV (V), ``prev_v`` the previous block's (V; NaN: none);
    ``noise_var_v2``: the variance of their difference from the samples' scatter (V^2);
    ``slope_v_per_pct``: the OCV slope at the cell's SoC (V/%); ``capacity_ah``: the cell's.
    """
    w2 = slow.w2_sum / n if n > 0 else math.nan
    ah = slow.ah_sum / n if n > 0 else math.nan
    prev_w2, prev_ah = slow.prev_w2_a, slow.prev_ah
    slow.prev_w2_a, slow.prev_ah = w2, ah
    slow.w2_sum = slow.ah_sum = 0.0
    if math.isnan(prev_w2 + prev_v + w2) or capacity_ah <= 0.0:
        return
    if not (prev_w2 < 0.0 and w2 < 0.0):
        return  # not after a discharge
    x = slope_v_per_pct * (w2 - prev_w2) / capacity_ah
    y = mean_v - prev_v - slope_v_per_pct * 100.0 * (ah - prev_ah) / capacity_ah
    var = noise_var_v2 + (slope_v_per_pct * FLOOR_PCT) ** 2
    if var <= 0.0:
        return
    ev = slow.evidence
    info = ev.info + x * x / var
    xy = ev.xy + x * y / var
    if info > INFO_MAX:
        f = INFO_MAX / info
        info *= f
        xy *= f
    # Beyond the range the estimate is clamped anyway: keep the sum where one pair of the other
    # sign can still bring it back (and a saved state within ``XY_MAX``).
    lim = K_MAX_PCT_PER_C * (info + 1.0 / PRIOR_SIGMA_PCT_PER_C**2)
    restore_slow(ev, info, min(max(xy, -lim), lim))
