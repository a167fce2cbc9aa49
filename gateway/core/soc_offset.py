"""The current sensor's offset, learned from the count between trusted points. Pure.

A current sensor's offset ``b`` (measured less true current) makes the count drift by
``k * b`` between two trusted points, ``k`` the time between them in SoC per unit of offset
(``CellState.count_k``, % per C). At a trusted point (a full charge; a rested voltage on a steep
part of the OCV curve that does not contradict the estimate) the count since the previous one
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
"""

from __future__ import annotations

import math

from gateway.core.soc_cell import CellState, Tuning

__all__ = ["GATE_SIGMAS", "learn_offset"]

GATE_SIGMAS = 4.0
"""A residual beyond this many of its sigmas is not an offset (a wrong restore, a full seen
early): it teaches nothing."""


def learn_offset(cell: CellState, tune: Tuning, z: float, z_var: float) -> bool:
    """Learn the current offset from the count against a trusted SoC ``z`` (variance ``z_var``,
    %^2); call before the trusted point restarts the count. Returns whether it learned.

    The learned offset stays within 3 prior sigmas (``offset_var_c2``) of zero.
    """
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
