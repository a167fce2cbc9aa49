"""Never worse than counting: how far a correction under load may move a cell from its count.

Part of the per-cell estimator (``gateway.core.soc_correct`` weighs the voltages and calls
``count_bound`` after each correction under load). Each function changes only the
``CellState`` it is given.
"""

from __future__ import annotations

import math

from gateway.core.soc_cell import _MAX_VAR, START_MAX_C, CellState, Tuning

__all__ = ["count_bound", "restart_at_trusted_point", "weigh_count_offset"]


def count_bound(cell: CellState, tune: Tuning) -> bool:
    """Hold the estimate within what the count allows; return whether it had to.

    The rule ("never worse than counting"), two tests after every correction under load:

    1. **The count's offsets** (``_offset_bound``; once each direction of current has filled
       ``OFFSET_MIN_W`` of its window): the voltage's SoC minus the count's SoC, averaged
       separately while charging and while discharging (``weigh_count_offset``). An offset both
       directions share (the same sign; the smaller of the two) is the count's error and the
       estimate may move from the count by that much; an offset that flips sign with the
       current is the model's bias under load and may not move it. Allowance beyond that:
       ``count_z`` times the filter's sigma plus the drift the current offset's sigma can have
       added since the older of the two averages was last fed.
    2. **The count's sigma**: at most ``count_z`` times the count's own sigma since the last
       trusted point (``count_var``: its start plus offset, gain, capacity, drift and gaps
       since), unless the mean normalised innovations, taken separately while charging and
       while discharging, lie beyond ``consistency_bias`` with the same sign in both, or beyond
       five times that in one direction while the other does not point the opposite way (a
       SoC error shifts the voltage the same way in both directions, a wrong resistance or an
       unmodelled diffusion with the current's sign). Then the count's variance is widened to
       cover the move (the count was wrong), and the bound moves with it.

    Only one direction of current since the start (test 1 cannot separate a count error from a
    model bias): test 2 alone.
    """
    held = _offset_bound(cell, tune)
    dev = cell.soc_pct - cell.count_soc_pct
    bound = tune.count_z * math.sqrt(cell.count_var)
    if abs(dev) <= bound:
        return held
    b = tune.consistency_bias
    nc, nd = cell.nu_charge, cell.nu_discharge
    both = (nc > b and nd > b) or (nc < -b and nd < -b)
    # One direction alone is evidence when its innovations exceed what the circuit's error
    # allowance (in the nominal noise) explains several times over, and the other direction
    # does not point the opposite way.
    strong = 5.0 * b
    alone = (nc > strong and nd > -b) or (nc < -strong and nd < b)
    alone = alone or (nd > strong and nc > -b) or (nd < -strong and nc < b)
    if both or alone:
        cell.count_rand_var = min(_MAX_VAR, (dev / tune.count_z) ** 2)
        cell.count_sys_pct = 0.0
        return held
    cell.soc_pct = cell.count_soc_pct + math.copysign(bound, dev)
    return True


OFFSET_WINDOW_S = 1800.0  # the offsets' memory (s of samples under load in that direction)
OFFSET_MIN_W = 0.3  # each direction this much of its window filled before the rule applies


def weigh_count_offset(cell: CellState, mid: float, cur_k: float, dt: float, q_ah: float) -> None:
    """Average the voltage's SoC ``mid`` (%) minus the count's, by the current's direction.

    Only at a current above ``START_MAX_C`` (below it the direction says little); ``cur_k``
    (A, positive charging), ``q_ah`` the nominal capacity; ``dt``: the sample's weight (s). The
    averages are kept as weighted sums with their weights (``off_c_pct`` / ``off_c_w`` is the
    mean), so a direction seen for a short time is not pulled towards 0.
    """
    if abs(cur_k) <= START_MAX_C * q_ah:
        return
    lam = math.exp(-dt / OFFSET_WINDOW_S)
    r = mid - cell.count_soc_pct
    if cur_k > 0.0:
        cell.off_c_pct = lam * cell.off_c_pct + (1.0 - lam) * r
        cell.off_c_w = lam * cell.off_c_w + (1.0 - lam)
        cell.off_c_age_s = 0.0
    else:
        cell.off_d_pct = lam * cell.off_d_pct + (1.0 - lam) * r
        cell.off_d_w = lam * cell.off_d_w + (1.0 - lam)
        cell.off_d_age_s = 0.0


def _offset_bound(cell: CellState, tune: Tuning) -> bool:
    """``count_bound``'s test 1: the estimate between the count and the count plus the offset
    both directions share, widened by ``count_z`` times (the filter's sigma plus the offset
    drift since the older average); return whether it had to be held."""
    if min(cell.off_c_w, cell.off_d_w) < OFFSET_MIN_W:
        return False
    c, d = cell.off_c_pct / cell.off_c_w, cell.off_d_pct / cell.off_d_w
    common = math.copysign(min(abs(c), abs(d)), c) if c * d > 0.0 else 0.0
    age = max(cell.off_c_age_s, cell.off_d_age_s)
    margin = tune.count_z * (math.sqrt(cell.p00) + tune.offset_pct_per_s * age)
    lo, hi = min(0.0, common) - margin, max(0.0, common) + margin
    dev = cell.soc_pct - cell.count_soc_pct
    if lo <= dev <= hi:
        return False
    cell.soc_pct = cell.count_soc_pct + min(hi, max(lo, dev))
    return True


def restart_at_trusted_point(cell: CellState) -> None:
    """The estimate is a trusted point: count from here.

    The offsets are against the count, so they move by the count's correction (they keep the
    model's bias, not the old count's error).
    """
    shift = cell.soc_pct - cell.count_soc_pct
    if math.isfinite(shift):
        cell.off_c_pct -= shift * cell.off_c_w
        cell.off_d_pct -= shift * cell.off_d_w
    cell.restart_count(cell.p00)
