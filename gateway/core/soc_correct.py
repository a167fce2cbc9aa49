"""Weighing one cell's voltage: the correction under load (and the SoC-domain fusion the
recalibrations share).

Part of the per-cell estimator (``gateway.core.soc_cell`` holds the state and the count; the
model is in its docstring; the rest recalibration is in ``gateway.core.soc_rest``). Each
function changes only the ``CellState`` it is given.
"""

from __future__ import annotations

import math

from gateway.core.chemistry import Chemistry
from gateway.core.soc_cell import (
    _MAX_VAR,
    START_MAX_C,
    CellState,
    StepInputs,
    Tuning,
    _voltage_soc_at,
    voltage_soc,
)
from gateway.core.soc_confirm import confirmed

__all__ = ["FULL_VAR", "correct", "count_bound", "fuse_interval"]

FULL_VAR = 0.25
"""Variance (%^2) of the SoC at a full charge, 0.5 % (1 sigma): the least a trusted top's is
(``gateway.core.soc_top``: the OCV table's own error there)."""


# --- correct (under load) -------------------------------------------------------------------


def correct(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    step: StepInputs,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
    *,
    sample_dt_s: float | None = None,
    own_current_a: float = 0.0,
) -> bool:
    """Correct ``cell`` with a voltage outside a rest recalibration; return whether it was used.

    Named steps, in order (only the first two while resting):

    1. ``_refine_in_start_window``: within ``START_WINDOW_S`` of a start from voltage, the
       voltage refines that start instead.
    2. ``_contradiction``: a voltage whose SoC interval lies beyond ``k_sigma`` sigmas of the
       estimate is fused in the SoC domain, whatever the slope (moves an estimate parked on a
       plateau once the cell reaches a knee), once the next sample confirms it
       (``gateway.core.soc_confirm``); until then the sample is not used.
    3. ``_mean_slope``: the OCV's mean slope over the plausible interval (``soc +- k sigma``);
       below ``min_slope`` the voltage is not used.
    4. ``_fuse_flat`` where the OCV is flat at the estimate, else 5. ``_kalman_update`` (the
       EKF on (soc, v1), adaptive noise, skipped while the innovations follow the current).

    The rule ("never worse than counting", ``count_bound``): after steps 4 and 5 the estimate
    may stand away from the count since the last trusted point by at most ``count_z`` count
    sigmas, unless the mean normalised innovations, taken separately while charging and while
    discharging, show a SoC error (the same sign in both directions, or a strong one in one
    direction the other does not contradict); an error that flips sign with the current is the
    circuit's, not the SoC's, and does not move the bound.

    ``sample_dt_s``: the time since the cell's previous voltage sample (``None``: the step's
    ``dt_s``, a voltage every step). The averages over time (the innovations, the start window)
    advance by it, so a voltage weighs the same however often the estimator is stepped between
    samples. ``own_current_a``: the part of ``cur_k`` that is the cell's own (balancing), not
    the pack's.
    """
    dt = step.dt_s if sample_dt_s is None else sample_dt_s
    if cell.start_left_s > 0.0 and _refine_in_start_window(
        cell, chem, step, v, cur_k, temp_c, r_scale, dt, own_current_a
    ):
        return True
    r0 = cell.r0_ohm_25c * r_scale
    r1 = cell.r1_ohm_25c * r_scale
    v2 = cell.r2_ohm_25c * r_scale * cell.w2_a
    pol = tune.model_error_fraction * (r0 + r1) * cur_k
    r_nom = tune.r_load_v2 + pol * pol
    ocv_v = v - r0 * cur_k - cell.v1_v - v2
    half = 2.0 * math.sqrt(r_nom + cell.p11) + tune.hysteresis_v
    mid = chem.ocv_soc(ocv_v, temp_c)
    fused, zs = _contradiction(cell, chem, tune, ocv_v, half, temp_c, mid)
    if fused is not False:
        return fused is True  # None: a contradiction not confirmed yet, the sample unused
    if step.resting:
        return False  # a resting voltage is weighed once per rest_s (recalibrate_rest)
    if _mean_slope(cell, chem, tune) < tune.min_slope_v_per_pct:
        return False
    slope = chem.ocv.slope(cell.soc_pct)
    if slope < tune.min_slope_v_per_pct:
        if zs is None:
            zs = _voltage_soc_at(chem, ocv_v, half, temp_c, mid)
        return _fuse_flat(cell, tune, zs)
    return _kalman_update(cell, chem, tune, step, v, cur_k, temp_c, slope, (r0, r1, v2), r_nom, dt)


def _refine_in_start_window(
    cell: CellState,
    chem: Chemistry,
    step: StepInputs,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
    dt: float,
    own_current_a: float,
) -> bool:
    """``correct`` step 1: run the start window down by ``dt`` (s); refine the start with a
    sample alike its own (a small pack current, no balancing current); return whether used."""
    cell.start_left_s = max(0.0, cell.start_left_s - dt)
    if abs(cur_k) <= START_MAX_C * step.q_nom_ah and own_current_a == 0.0:
        _refine_start(cell, chem, v, cur_k, temp_c, r_scale)
        return True
    return False


def _contradiction(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    ocv_v: float,
    half: float,
    temp_c: float,
    mid: float,
) -> tuple[bool | None, tuple[float, float] | None]:
    """``correct`` step 2: fuse a voltage that contradicts the estimate once confirmed; return
    (fused, interval), fused ``None`` for a contradiction not confirmed yet.

    ``ocv_v``: the IR-corrected voltage (V), ``half`` its error under load plus the hysteresis
    (V), ``mid`` its own SoC (%). A ``mid`` within ``k_sigma`` sigmas cannot contradict (the
    interval only widens it); else the SoC interval ``z +- sz`` (returned for reuse)
    contradicts when beyond ``k_sigma`` combined sigmas. It is fused (``fuse_interval``, the
    count restarted) when the previous sample contradicted too and agrees with it
    (``confirmed``: one sample far off, a glitch, moved the SoC by its whole error).
    """
    soc = cell.soc_pct
    sigma = math.sqrt(cell.p00 + cell.sb * cell.sb)
    pending = cell.pending
    prev, pending.contradiction = pending.contradiction, None
    if abs(mid - soc) <= tune.k_sigma * sigma:
        return False, None
    z, sz = _voltage_soc_at(chem, ocv_v, half, temp_c, mid)
    if abs(z - soc) <= tune.k_sigma * math.sqrt(sigma * sigma + sz * sz):
        return False, (z, sz)
    act = confirmed(prev, z, sz, soc, tune.k_sigma)
    if act is None:
        pending.contradiction = (z, sz)
        return None, (z, sz)
    fuse_interval(cell, act[0], act[1], contradicted=True)
    return True, (z, sz)


def _mean_slope(cell: CellState, chem: Chemistry, tune: Tuning) -> float:
    """``correct`` step 3: the OCV's mean slope (V/%) over ``soc +- k_sigma`` sigmas."""
    soc = cell.soc_pct
    k = tune.k_sigma * math.sqrt(cell.p00 + cell.sb * cell.sb)
    s_lo, s_hi = max(0.0, soc - k), min(100.0, soc + k)
    if s_hi - s_lo > 1e-9:
        return (chem.ocv.voltage(s_hi) - chem.ocv.voltage(s_lo)) / (s_hi - s_lo)
    return chem.ocv.slope(soc)


def _fuse_flat(cell: CellState, tune: Tuning, zs: tuple[float, float]) -> bool:
    """``correct`` step 4: informative over the interval, flat at the estimate (a linearisation
    there would see nothing): the voltage's SoC interval ``zs`` (z, sz in %) is fused in the
    SoC domain when at least twice as precise as the estimate, never to below its own variance
    (its error under load does not average out), then ``count_bound``. Returns whether used.
    """
    z, sz = zs
    p_before = cell.p00
    if 4.0 * sz * sz > p_before:
        return False  # says little the estimate does not know
    fuse_interval(cell, z, sz, contradicted=False)
    cell.p00 = max(cell.p00, min(p_before, sz * sz))
    count_bound(cell, tune)
    return True


def _kalman_update(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    step: StepInputs,
    v: float,
    cur_k: float,
    temp_c: float,
    slope: float,
    circuit: tuple[float, float, float],
    r_nom: float,
    sample_dt_s: float,
) -> bool:
    """``correct``'s extended Kalman update on (soc, v1) at the local OCV ``slope`` (V/%).

    ``circuit``: R0 and R1 at the cell's temperature (ohm) and the slow pair's voltage v2 (V);
    ``r_nom``: the nominal measurement noise (V^2); ``sample_dt_s``: the time since the previous
    sample (the innovation averages' step). Returns whether the voltage was used (not
    while the innovations follow the current's sign).
    """
    r0, r1, v2 = circuit
    soc = cell.soc_pct
    y = v - (chem.ocv_voltage(soc, temp_c) + cell.v1_v + v2 + r0 * cur_k)
    h0 = slope
    p00, p01, p11 = cell.p00, cell.p01, cell.p11
    hph = h0 * (h0 * p00 + 2.0 * p01) + p11
    lam = math.exp(-sample_dt_s / tune.innovation_window_s)
    cell.y2_v2 = lam * cell.y2_v2 + (1.0 - lam) * y * y
    r_meas = max(r_nom, cell.y2_v2 - hph)
    ph0 = h0 * p00 + p01
    ph1 = h0 * p01 + p11
    s = h0 * ph0 + ph1 + r_meas
    k0 = ph0 / s
    k1 = ph1 / s
    # The consistency test weighs the innovation against the nominal noise: the adaptive noise
    # takes up any lasting bias, a SoC error included, which would hide it.
    nu = y / math.sqrt(hph + r_nom)
    if cur_k > 0.0:
        cell.nu_charge = lam * cell.nu_charge + (1.0 - lam) * nu
    else:
        cell.nu_discharge = lam * cell.nu_discharge + (1.0 - lam) * nu
    b = tune.consistency_bias
    if (cell.nu_charge > b and cell.nu_discharge < -b) or (
        cell.nu_charge < -b and cell.nu_discharge > b
    ):
        # The innovations follow the current's sign: the circuit is wrong for this cell (a
        # resistance, or diffusion it does not hold), not the SoC. Keep counting.
        return False
    prior = (soc, cell.v1_v, p00, p01, p11)
    cell.soc_pct = soc + k0 * y
    cell.v1_v += k1 * y
    cell.p00 = p00 - k0 * ph0
    cell.p01 = p01 - k0 * ph1
    cell.p11 = p11 - k1 * ph1
    g = 1.0 - k0 * h0
    _scale_parts(cell, g)
    # A constant bias b in the measurement leaves g * e + (1 - g) * b: under load the whole
    # measurement error may be such a bias (model error).
    bias_v = tune.bias_floor_v + tune.bias_fraction * abs((r0 + r1) * cur_k)
    bias = max(bias_v / h0, tune.bias_pct_per_c * abs(cur_k) / step.q_nom_ah)
    cell.sb = abs(g) * cell.sb + (1.0 - abs(g)) * bias
    if count_bound(cell, tune):
        # Held at the bound: the voltage was not believed, so neither is its information.
        cell.v1_v, cell.p00, cell.p01, cell.p11 = prior[1], prior[2], prior[3], prior[4]
    return True


def _refine_start(
    cell: CellState,
    chem: Chemistry,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
) -> None:
    """Within the start window (at a small current): the start's OCV is the mean of the samples.

    The estimate moves by the change of that mean's SoC (what was counted since stays); its
    sigma stays the start's (hysteresis and the unknown polarisation do not average out, only
    the noise does).
    """
    ocv_v = (
        v - cell.r0_ohm_25c * r_scale * cur_k - cell.v1_v - cell.r2_ohm_25c * r_scale * cell.w2_a
    )
    old = cell.start_ocv_v
    n = cell.start_n
    mean = old + (ocv_v - old) / (n + 1)
    cell.start_n = n + 1
    cell.start_ocv_v = mean
    z_old, _ = voltage_soc(chem, old, cell.start_half_v, temp_c)
    z_new, _ = voltage_soc(chem, mean, cell.start_half_v, temp_c)
    cell.soc_pct = min(100.0, max(0.0, cell.soc_pct + (z_new - z_old)))
    cell.count_soc_pct = cell.soc_pct


def count_bound(cell: CellState, tune: Tuning) -> bool:
    """Hold the estimate within what the count allows; return whether it had to.

    The rule ("never worse than counting"): corrections under load may move the estimate away
    from the count since the last trusted point (start, rested voltage, full) by at most
    ``count_z`` times the count's own sigma over that time (``count_var``: its start plus what
    offset, gain, capacity, drift and gaps have added since). A larger move needs evidence that
    lasts: the exponentially weighted mean normalised innovation, taken separately while
    charging and while discharging, is beyond ``consistency_bias`` with the same sign in both,
    or beyond five times that in one direction while the other does not point the opposite way.
    A SoC error shifts the voltage the same way in both directions of current, while a wrong
    resistance or a diffusion the circuit does not model shifts it with the current's sign (and,
    normalised by a noise that includes the circuit's error allowance, by about one sigma at
    most); only the first is evidence against the count. When the evidence holds, the count's
    variance is widened to cover the move (the count was wrong), and the bound moves with it.
    """
    dev = cell.soc_pct - cell.count_soc_pct
    bound = tune.count_z * math.sqrt(cell.count_var)
    if abs(dev) <= bound:
        return False
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
        return False
    cell.soc_pct = cell.count_soc_pct + math.copysign(bound, dev)
    return True


def fuse_interval(
    cell: CellState,
    z: float,
    sz: float,
    *,
    contradicted: bool,
    prior_var: float | None = None,
) -> None:
    """Fuse a SoC measurement ``z`` +- ``sz`` (from a voltage's SoC interval) into ``cell``.

    ``contradicted``: the estimate is inconsistent with ``z`` (beyond k sigma); its variance is
    first widened by the squared distance (so the fusion lands near ``z``), and the count is
    restarted from the result (the count was what was wrong).

    The estimate is weighed by the variance it reports, ``prior_var`` (%^2) or, by default,
    ``CellState.total_var()``: the filter's ``p00`` plus the load bias as much of it as the
    trusted points found (``bias_var``: ``bias_m * sb**2``), or the count's description of the
    same error when smaller. The measurement ends the load bias (``sb`` becomes 0) and the
    variance left is the usual ``(1 - k) * P`` (Gelb, *Applied Optimal Estimation*, 1974,
    ch. 4). Folding the whole claim ``sb**2`` into ``P`` whatever the learned share (as before)
    weighed the estimate by more uncertainty than it reported: a rest on the LFP step after a
    charge through it raised the reported sigma (3.4 -> 4.5 points on the light profile,
    docs/PERFORMANCE.md, branch s8-sigma).
    """
    p = cell.total_var() if prior_var is None else prior_var
    rc = cell.rc + cell.bias_var()
    if p < cell.p00:
        # The count's description is the smaller: the parts shrink with the variance.
        cell.scale_variance_parts(p / cell.p00)
        rc = cell.rc
    cell.sb = 0.0
    if contradicted:
        d2 = (z - cell.soc_pct) ** 2
        p += d2
        rc += d2
    r = sz * sz
    k0 = p / (p + r)
    k1 = cell.p01 / (p + r)
    cell.soc_pct += k0 * (z - cell.soc_pct)
    cell.p11 -= k1 * cell.p01
    cell.p01 *= 1.0 - k0
    cell.p00 = (1.0 - k0) * p
    cell.rc = rc
    _scale_parts(cell, 1.0 - k0)
    cell.soc_pct = min(100.0, max(0.0, cell.soc_pct))
    if contradicted:
        cell.restart_count(cell.p00)


def _scale_parts(cell: CellState, g: float) -> None:
    """After a correction the prior error survives scaled by ``g``; keep the parts within p00."""
    cell.rc *= g * g
    ag = abs(g)
    cell.sc *= ag
    cell.sg *= ag
    cell.si *= ag
    cell.sx *= ag
    total = cell.rc + cell.sc**2 + cell.sg**2 + cell.si**2 + cell.sx**2
    if total > cell.p00 > 0.0:
        cell.scale_variance_parts(cell.p00 / total)
