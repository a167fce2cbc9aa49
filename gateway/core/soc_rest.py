"""Recalibrating one cell from a rest: the rested voltages in blocks of ``rest_s``, each block's
mean weighed as the OCV. Part of the per-cell estimator (``gateway.core.soc_cell`` holds the
state; ``gateway.core.soc_correct`` the correction under load and the full recalibration). Each
function changes only the ``CellState`` it is given.
"""

from __future__ import annotations

import math

from gateway.core.chemistry import Chemistry
from gateway.core.soc_cell import CellState, Tuning, voltage_soc
from gateway.core.soc_correct import fuse_interval
from gateway.core.soc_offset import learn_offset
from gateway.core.soc_slow import learn_slow

__all__ = ["REST_MIN_SAMPLES", "accumulate_rest", "end_rest", "recalibrate_rest"]

REST_MIN_SAMPLES = 10
"""Fewest rested voltages in a block for its mean to stand for the rest (``recalibrate_rest``)."""


def accumulate_rest(
    cell: CellState,
    v: float,
    cur_k: float,
    r_scale: float,
    counted_ah: float = 0.0,
) -> float:
    """Add a rested voltage ``v`` (V, at ``cur_k`` A) to ``cell``'s rest block; ``counted_ah``:
    the charge counted for the cell so far (Ah; the slow term's block, ``SlowShift.add``).
    Returns the sample's OCV (V).

    Kept: the number of samples and the sums of their OCVs (the voltage less the rest
    current's IR drop and the modelled RC voltages) and of their squares, each less the
    block's first OCV (so the sums stay small and exact).
    """
    ocv_v = v - cell.r0_ohm_25c * r_scale * cur_k - cell.v1_v
    ocv_v -= cell.r2_ohm_25c * r_scale * cell.w2_a
    if cell.rest_n == 0:
        cell.rest_ref_v = ocv_v
    d = ocv_v - cell.rest_ref_v
    cell.rest_n += 1
    cell.rest_sum_v += d
    cell.rest_sq_v2 += d * d
    cell.slow.add(cell.w2_a, counted_ah)
    return ocv_v


def end_rest(cell: CellState) -> None:
    """The rest is over, or the estimate was replaced or refined during it: forget the rest's
    blocks (the next recalibration is weighed as a rest's first)."""
    cell.rest_n = 0
    cell.rest_sum_v = cell.rest_sq_v2 = 0.0
    cell.rest_prev_v = math.nan
    cell.rest_p_var = math.nan
    cell.pending.rest_ocv_v = math.nan
    cell.slow.end_rest()


def _rest_block(
    cell: CellState, sample_var_v2: float, slope_v_per_pct: float
) -> tuple[float, float] | None:
    """The rest block's mean OCV and its error (V, 1 sigma, without the hysteresis), or
    ``None`` when there is no earlier block of this rest to judge relaxation by (or too few
    samples). Starts a new block.

    ``sample_var_v2``: one relaxed sample's error variance (V^2, ``rest_voltage_sigma_mv``
    squared). The error: the part of it the samples' own scatter does not explain (the OCV
    table's and the model's error: no averaging removes it), the mean's noise (the scatter
    over the number of samples), and the relaxation left, judged from the voltage's own drift:
    the change of the mean OCV since the previous block (a relaxation that decays faster than
    one block has less than that left to go; a real rest current's SoC change is in it too).
    The change since the previous block also teaches the cell's slow polarisation
    (``learn_slow``; ``slope_v_per_pct``: the OCV slope at the estimate, V/%).
    """
    n = cell.rest_n
    prev = cell.rest_prev_v
    out = None
    if n > 0:
        mean = cell.rest_sum_v / n
        raw = cell.rest_ref_v + mean
        var = max(0.0, cell.rest_sq_v2 / n - mean * mean) * n / (n - 1) if n > 1 else 0.0
        if n >= REST_MIN_SAMPLES:
            learn_slow(cell.slow, n, raw, prev, 2.0 * var / n, slope_v_per_pct, cell.capacity_ah)
        else:
            cell.slow.end_rest()
        if n >= REST_MIN_SAMPLES and not math.isnan(prev):
            drift = raw - prev
            table = max(0.0, sample_var_v2 - var)
            out = (raw, math.sqrt(table + var / n + drift * drift))
        cell.rest_prev_v = raw
    cell.rest_n = 0
    cell.rest_sum_v = cell.rest_sq_v2 = 0.0
    return out


def recalibrate_rest(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
) -> bool:
    """Recalibrate ``cell`` from its rest; return whether the rested voltage was used.

    Called once per ``rest_s`` of rest, with the voltages since the previous call in the cell's
    rest block (``accumulate_rest``), at a sample that agrees with the one before it
    (``gateway.core.soc_confirm.rest_agrees``: the caller's check). The first time in a rest,
    the voltage ``v`` (V, at ``cur_k`` A; less the small IR drop of the rest current) is the OCV
    to within the rest sigma (2 sigma, ``rest_voltage_sigma_mv``: noise and relaxation left
    after one ``rest_s``) plus the OCV hysteresis. From the second time on, the block's mean OCV
    is the OCV now (a rest current is below ``rest_current_c``, mostly the current sensor's
    offset the count has not learned yet, so the count's drift during the block is not followed;
    a real rest current at that limit moves the SoC by at most its charge over half a block) to
    within the part of one sample's error the block's scatter does not explain (the table's, the
    model's), the block's noise (scatter / sqrt(n)) and the relaxation left (its drift from the
    previous block), 2 sigma, plus the hysteresis, never more than one sample's band: a long,
    relaxed rest weighs as much as its evidence, a rest still relaxing less (Plett, *Battery
    Management Systems* vol. 2, 2015, ch. 3: OCV from a relaxed rest; the hysteresis does not
    average out). Each block is weighed against the largest variance the estimate reported in
    this rest, the one before its first recalibration unless it has grown since (the blocks
    share the hysteresis and the table's error).

    The SoC interval that band allows is the measurement (``voltage_soc``). It is used when
    the voltage lies on a steep part of the curve (the slope at the voltage's own SoC, not at
    the estimate, is at least ``min_slope``), or when it contradicts the estimate (beyond
    ``k_sigma`` combined sigmas, e.g. a restored SoC while the pack moved): judged over the whole
    plausible interval. On a plateau with an estimate the voltage does not contradict, the count
    is kept. A voltage used without contradiction is a trusted point: the count since the last
    one teaches the current offset (``learn_offset``).
    """
    cell.pending.contradiction = None  # this sample is weighed here, not by ``correct``
    r0 = cell.r0_ohm_25c * r_scale
    ocv_v = v - r0 * cur_k - cell.v1_v - cell.r2_ohm_25c * r_scale * cell.w2_a
    half = 2.0 * math.sqrt(tune.r_rest_v2) + tune.hysteresis_v
    block = _rest_block(cell, tune.r_rest_v2, chem.ocv.slope(cell.soc_pct))
    if block is not None:
        b_half = 2.0 * block[1] + tune.hysteresis_v
        if b_half < half:
            ocv_v, half = block[0], b_half
    z, sz = voltage_soc(chem, ocv_v, half, temp_c)
    p_tot = cell.p00 + cell.sb * cell.sb
    contradicted = abs(z - cell.soc_pct) > tune.k_sigma * math.sqrt(p_tot + sz * sz)
    if not contradicted and chem.ocv.slope(z) < tune.min_slope_v_per_pct:
        return False
    if not contradicted:
        learn_offset(cell, tune, z, sz * sz)
        # The rest's blocks share the hysteresis and the table's error: each is weighed against
        # the estimate as the rest's first was (the variance it reported before the rest, as
        # ``fuse_interval`` weighs it), not against a variance the earlier blocks shrank.
        prior = cell.total_var()
        if not math.isnan(cell.rest_p_var):
            prior = max(prior, cell.rest_p_var)
        cell.rest_p_var = prior
        fuse_interval(cell, z, sz, contradicted=False, prior_var=prior)
    else:
        cell.rest_p_var = math.nan  # replaced: the next block is weighed as a first
        fuse_interval(cell, z, sz, contradicted=True)
    if not contradicted:
        cell.restart_count(cell.p00)
    return True
