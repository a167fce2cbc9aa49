"""The current sensor's offset, learned from the count between trusted points. Pure.

A current sensor's offset ``b`` (measured less true current) makes the count drift by
``k * b`` between two trusted points, ``k`` the time between them in SoC per unit of offset
(``CellState.count_k``, % per C). At a trusted point (a tapered charge at the top,
``gateway.core.soc_top``; a rested voltage on a steep part of the OCV curve that does not
contradict the estimate) the count since the previous one
(``CellState.count_soc_pct``) less what the trusted point says is a measurement of the offset
left after what was already learned::

    r = count - z = k * (b - b_learned) + e,   var(e) = count's other variance + var(z)

``e``: the previous trusted point's error, the count's random drift and gaps, and the gain,
capacity and balancing errors over the net charge since (``count_rand_var``, ``count_sg``,
``count_si``, ``count_sx``; see ``CellState.count_err_var``). A scalar Kalman update on ``b``
(Gelb, *Applied Optimal Estimation*, 1974, ch. 4) moves the learned offset and shrinks its
variance, which then grows the count's uncertainty more slowly (``predict``: ``sc`` grows by
``sqrt(off_var) * k``); the learned offset is subtracted from the count. Between trusted points
the variance grows back towards the prior (``current_offset_drift_c_per_sqrt_day``: the offset
moves with temperature and age).

The same trusted point tests the load bias ``sb`` (``learn_load_bias``): the estimate's error at
the moment it carried its largest bias since the previous point, against that bias, says how
much of it held; the learned share, pooled over the pack's cells (``gateway.core.soc_bias``),
scales the bias's part of the reported sigma.
"""

from __future__ import annotations

import math

from gateway.core.soc_cell import CellState, Tuning

__all__ = ["BIAS_Q_MAX", "GATE_SIGMAS", "learn_load_bias", "learn_offset"]

GATE_SIGMAS = 4.0
"""A residual beyond this many of its sigmas is not an offset (a wrong restore, a full seen
early): it teaches nothing."""


def learn_offset(cell: CellState, tune: Tuning, z: float, z_var: float) -> bool:
    """Learn the current offset from the count against a trusted SoC ``z`` (variance ``z_var``,
    %^2); call before the trusted point restarts the count. Returns whether it learned.

    The learned offset stays within 3 prior sigmas (``offset_var_c2``) of zero. The estimate
    at the same point first tests the load bias it carries (``learn_load_bias``).
    """
    learn_load_bias(cell, tune, z, z_var)
    k = cell.count_k
    prior = tune.offset_var_c2
    if not (k > 0.0 and prior > 0.0 and math.isfinite(cell.count_soc_pct)):
        return False
    v = min(cell.off_var, prior)
    other = abs(cell.count_sg) + abs(cell.count_si) + abs(cell.count_sx)
    s = k * k * v + cell.count_rand_var + other * other + z_var
    r = cell.count_soc_pct - z
    if not (r * r <= GATE_SIGMAS * GATE_SIGMAS * s):
        return False
    g = v * k / s
    lim = 3.0 * math.sqrt(prior)
    cell.off_c = min(lim, max(-lim, cell.off_c + g * r))
    cell.off_var = v * (1.0 - g * k)
    return True


BIAS_Q_MAX = 9.0
"""One trusted point says at most that the bias was 3 times ``sb`` (a wrong restore, a full
seen early: one point must not outweigh the claim many times over)."""


def learn_load_bias(cell: CellState, tune: Tuning, z: float, z_var: float) -> bool:
    """Test the load bias ``sb`` the estimate carried against a trusted SoC ``z`` (variance
    ``z_var``, %^2); call before the trusted point restarts the count. Returns whether it
    learned.

    ``sb`` bounds the model error the corrections under load have taken in (``correct``). The
    moment since the last trusted point the estimate carried the largest bias (kept by
    ``predict``: ``CellState.bias_peak_*``; now, if larger) is tested: the estimate's error then
    is its distance from the count then plus the count's error, which the trusted point shows
    (``count - z``) up to what the count has erred since (the growth of ``count_err_var``). So
    ``r = d_peak + count - z = beta * sb + e``, ``e`` of variance ``p00`` (then) + ``z_var`` +
    that growth, ``beta`` the share of the bound that held (its sign follows the load: its mean
    square is what is learned). ``q = (r**2 - var(e)) / sb**2`` estimates ``beta**2`` (within
    ``0..BIAS_Q_MAX``); the points are averaged with the claim (``beta**2 = 1``, weight
    ``bias_prior_weight``), each weighed by ``(sb**2 / (sb**2 + var(e)))**2`` (the inverse of
    ``q``'s variance up to a constant: a point whose error the bias could not dominate says
    little). The evidence goes to ``CellState.bias``, which a pack's cells share: the model
    that makes the bias is the pack's (``gateway.core.soc_bias``), so one cell's test moves
    every cell's learned share (``bias_m``), which scales the bias's part of the reported
    variance (``CellState.bias_var``); the evidence fades with ``bias_memory_s``
    (``LoadBiasEvidence.fade``, once per estimator step).
    """
    count = cell.count_soc_pct
    if cell.sb >= cell.bias_peak_sb:
        sb, d, p00, grown = cell.sb, cell.soc_pct - count, cell.p00, 0.0
    else:
        sb, d, p00 = cell.bias_peak_sb, cell.bias_peak_d, cell.bias_peak_p00
        grown = max(0.0, cell.count_err_var - cell.bias_peak_cvar)
    sb2 = sb * sb
    pe = p00 + z_var + grown
    r = d + count - z
    if not (sb2 > 0.0 and math.isfinite(r) and pe >= 0.0):
        return False
    w, wq = _evidence(sb2, pe, r)
    cell.bias.add(w, wq, tune.bias_prior_weight)
    return True


def _evidence(part: float, other: float, r: float) -> tuple[float, float]:
    """One trusted point's evidence on a variance ``part`` (%^2) claimed beside ``other``
    (%^2) for a residual ``r`` (%): the weight ``(part / (part + other))**2`` and the weight
    times the share of ``part`` the residual shows, ``(r**2 - other) / part`` (within
    ``0..BIAS_Q_MAX``)."""
    q = min(BIAS_Q_MAX, max(0.0, (r * r - other) / part))
    f = part / (part + other)
    w = f * f
    return w, w * q
