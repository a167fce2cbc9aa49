"""How far each cell is from balanced, and the thresholds it is held against. Pure.

The imbalance of a cell is in ampere-hours when an SoC estimate is in use: passive balancing
bleeds each cell's excess over the band that lets the pack deliver ``min(capacity)``
(``band_excess_ah``; the theory in :mod:`gateway.core.balancing`), active balancing moves each
cell toward the pack's capacity-weighted mean SoC. Without an estimate it is in volts: above the
lowest cell (passive) or the mean (active). ``soc_imbalance`` and ``voltage_imbalance`` return
both the imbalance and the start and stop thresholds of each cell, so the planner decides the
same way in either unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.balancing_config import BalancingConfig
from gateway.core.model import BalancingMode, CellEstimate

__all__ = [
    "Imbalance",
    "band_excess_ah",
    "band_excess_low_ah",
    "soc_imbalance",
    "voltage_imbalance",
]


def band_excess_low_ah(
    soc_pct: list[float], capacity_ah: list[float], capacity_sigma_ah: list[float], z: float
) -> list[float]:
    """Each cell's excess over the band (``band_excess_ah``) when the capacities are off.

    The smallest excess found with this cell's capacity ``z`` sigma up or down and every other
    capacity at ``z`` sigma down, as estimated or ``z`` sigma up (the smallest capacity and the
    lowest charge set the band for every cell, so their errors move all excesses). A lower
    bound to bleed against: what is above it is not explained by a capacity error of that size.
    Non-finite sigmas count as 0. O(n): the minimum over the other cells comes from the two
    smallest.
    """
    n = len(capacity_ah)
    sig = [z * x if math.isfinite(x) and x > 0 else 0.0 for x in capacity_sigma_ah]
    frac = [s / 100.0 for s in soc_pct]
    low = [math.inf] * n
    for other in (-1.0, 0.0, 1.0):
        caps = [max(1e-6, c + other * d) for c, d in zip(capacity_ah, sig, strict=True)]
        q = [f * c for f, c in zip(frac, caps, strict=True)]
        c_lo = _two_smallest(caps)
        q_lo = _two_smallest(q)
        for i in range(n):
            c_rest = c_lo[1] if c_lo[2] == i else c_lo[0]
            q_rest = q_lo[1] if q_lo[2] == i else q_lo[0]
            for own in (-1.0, 1.0):
                ci = max(1e-6, capacity_ah[i] + own * sig[i])
                qi = frac[i] * ci
                e = qi - min(q_rest, qi) - ci + min(c_rest, ci)
                low[i] = min(low[i], e)
    return [max(0.0, x) for x in low]


def _two_smallest(xs: list[float]) -> tuple[float, float, int]:
    """The smallest value, the second smallest, and the index of the smallest."""
    best, second, at = math.inf, math.inf, -1
    for k, x in enumerate(xs):
        if x < best:
            best, second, at = x, best, k
        elif x < second:
            second = x
    return best, second, at


def band_excess_ah(soc_pct: list[float], capacity_ah: list[float]) -> list[float]:
    """Each cell's charge above the band that lets the pack deliver ``min(capacity)``.

    ``sum()`` of the result is the least charge passive balancing must dissipate; its ``max()``
    is the capacity the pack loses to imbalance now. See the module docstring.
    """
    q = [s / 100.0 * c for s, c in zip(soc_pct, capacity_ah, strict=True)]
    m = min(q)
    cmin = min(capacity_ah)
    return [max(0.0, qi - m - (ci - cmin)) for qi, ci in zip(q, capacity_ah, strict=True)]


@dataclass(frozen=True, slots=True)
class Imbalance:
    """Each cell's imbalance and the thresholds it is held against, in one unit.

    ``dev`` is signed: Ah above the cell's target (SoC) or V above the reference cell
    (fallback). A cell starts when ``dev_start`` (passive with capacity sigmas: the excess that
    remains with the capacities off, ``band_excess_low_ah``; else ``dev``) exceeds ``start``,
    and stops when ``dev`` falls under ``stop``. ``dev * scale`` is in ``unit`` (``Ah`` or
    ``mV``) for reasons. SoC only: ``capacity_ah`` and ``sigma_ah`` (each cell's SoC uncertainty
    against the others, in Ah) of every cell, ``start_pct`` (the start threshold in percent of
    capacity); active only: ``pair_sigma_ah`` (what a donor/receiver difference must exceed,
    combined per pair) and ``drift`` (how a cell's deviation moves per Ah through the pack).
    """

    dev: list[float]
    dev_start: list[float]
    start: list[float]
    stop: list[float]
    unit: str
    scale: float
    use_soc: bool
    capacity_ah: list[float]
    sigma_ah: list[float]
    start_pct: float = 0.0
    pair_sigma_ah: list[float] | None = None
    drift: list[float] | None = None


def soc_imbalance(
    config: BalancingConfig, mode: BalancingMode, cells: tuple[CellEstimate, ...]
) -> Imbalance:
    """Each cell's imbalance in Ah from the SoC estimate (``mode`` passive or active)."""
    cfg = config
    caps = [c.capacity_ah for c in cells]
    socs = [c.soc_pct for c in cells]
    # Cell-to-cell uncertainty where the estimate has it (see ``sigma_factor``).
    sig = [
        (c.soc_rel_sigma_pct if math.isfinite(c.soc_rel_sigma_pct) else c.soc_sigma_pct)
        / 100.0
        * c.capacity_ah
        for c in cells
    ]
    passive = mode is BalancingMode.PASSIVE
    drift: list[float] | None = None
    if passive:
        dev = band_excess_ah(socs, caps)
        dev_start = dev
        cap_sig = [c.capacity_sigma_ah for c in cells]
        if cfg.capacity_sigma_factor > 0 and any(x > 0 for x in cap_sig):  # NaN: False
            dev_start = band_excess_low_ah(socs, caps, cap_sig, cfg.capacity_sigma_factor)
    else:
        mean = math.fsum(s * c for s, c in zip(socs, caps, strict=True)) / math.fsum(caps)
        # The pack current alone moves a cell's deviation from the mean SoC by
        # (1 - cap / mean cap) per Ah through the pack; the self-check allows for it.
        mean_cap = math.fsum(caps) / len(caps)
        drift = [1.0 - c / mean_cap for c in caps]
        dev = [(s - mean) / 100.0 * c for s, c in zip(socs, caps, strict=True)]
        dev_start = dev
    start_pct = cfg.start_pct if passive else cfg.active_start_pct
    stop_pct = cfg.stop_pct if passive else cfg.active_stop_pct
    pair_sig: list[float] | None = None
    if passive:
        start = [
            max(start_pct / 100.0 * c, cfg.sigma_factor * s) for c, s in zip(caps, sig, strict=True)
        ]
    else:
        # Active: a transfer needs the donor clearly above the receiver (tested per pair by
        # the planner); against the mean alone each cell's own sigma would hold back pairs
        # whose difference is far beyond doubt.
        start = [start_pct / 100.0 * c for c in caps]
        pair_sig = [cfg.sigma_factor * s for s in sig]
    stop = [stop_pct / 100.0 * c for c in caps]
    return Imbalance(
        dev, dev_start, start, stop, "Ah", 1.0, True, caps, sig, start_pct, pair_sig, drift
    )


def voltage_imbalance(
    config: BalancingConfig, mode: BalancingMode, volts: list[float]
) -> Imbalance:
    """Each cell's imbalance in V: above the lowest cell (passive) or the mean (active)."""
    n = len(volts)
    ref = min(volts) if mode is BalancingMode.PASSIVE else math.fsum(volts) / n
    dev = [v - ref for v in volts]
    start = [config.voltage_start_mv / 1000.0] * n
    stop = [config.voltage_stop_mv / 1000.0] * n
    return Imbalance(dev, dev, start, stop, "mV", 1000.0, False, [], [])
