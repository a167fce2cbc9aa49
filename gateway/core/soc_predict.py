"""The count step of one cell: ``predict`` (the count and the growth of its uncertainty) and
``tidy`` (keep the state in range). Pure; see ``gateway.core.soc_cell`` for the model and the
state.
"""

from __future__ import annotations

import math

from gateway.core.soc_cell import _MAX_VAR, CellState, StepInputs, Tuning

__all__ = ["predict", "tidy"]


def predict(
    cell: CellState, step: StepInputs, tune: Tuning, extra_a: float, r_scale: float
) -> None:
    """Advance ``cell`` by the step's charge (count) and grow its uncertainty by kind.

    Args:
        cell: the cell (initialised).
        step: the string's step.
        tune: settings.
        extra_a: this cell's current on top of the pack current (balancing; A, into the cell).
        r_scale: resistance factor of the cell's temperature against 25 degC.
    """
    q_nom = step.q_nom_ah
    dt = step.dt_s
    cap = cell.capacity_ah
    known_dt = step.known_dt_s
    ratio = q_nom / cap
    x_ah = extra_a * step.extra_dt_s / 3600.0
    # The count less the learned current offset: k_pct is this step's SoC (%) per C of offset.
    k_pct = 100.0 * known_dt / 3600.0 * ratio
    off_c = cell.off_c
    d_pct = 100.0 * step.d_ah / cap - off_c * k_pct
    if off_c != 0.0:
        cell.cell_ah -= off_c * q_nom * known_dt / 3600.0  # for the capacity anchors
    x_pct = 100.0 * x_ah / cap
    dx_pct = d_pct + x_pct
    cell.soc_pct += dx_pct
    cell.count_soc_pct += dx_pct
    if x_ah != 0.0:
        cell.cell_ah += x_ah
    r1 = cell.r1_ohm_25c * r_scale
    _advance_rc(cell, tune, known_dt, dt, step.rc_current_a + extra_a, r1)
    rc0 = cell.rc
    sc0 = cell.sc
    si0 = cell.si
    sg0 = cell.sg
    sx0 = cell.sx
    rc = rc0 + tune.drift_var_per_s * dt + step.hold_var * ratio * ratio
    # The offset's error adds up over the time the current was counted; a learned offset's
    # variance grows back towards the prior (the offset moves with temperature and age).
    off_var = cell.off_var + tune.offset_drift_var_c2_per_s * dt
    off_var = min(off_var, tune.offset_var_c2)
    cell.off_var = off_var
    d_off = math.sqrt(off_var) * k_pct
    sc = sc0 + d_off
    sg = sg0 + tune.gain_frac * d_pct
    si = si0 + dx_pct * math.sqrt(cell.capacity_var) / cap
    sx = sx0 + tune.extra_frac * x_pct
    d_rc = rc - rc0
    grow = d_rc + (sc * sc - sc0 * sc0) + (sg * sg - sg0 * sg0) + (si * si - si0 * si0)
    grow += sx * sx - sx0 * sx0
    p00 = cell.p00 + grow
    # The count alone: its random part grows like the filter's, its systematic parts add up
    # linearly (corrections shrink the filter's parts, never the count's); ``count_sys_pct``,
    # which bounds the corrections, adds each step's part whatever its sign.
    crand = cell.count_rand_var + d_rc
    csys = cell.count_sys_pct + (d_off + abs(sg - sg0) + abs(si - si0) + abs(sx - sx0))
    # The same parts as errors: gain, capacity and balancing follow the net charge since the
    # trusted point (signed: a charge and the discharge after it cancel), the offset the time.
    cell.count_sg += sg - sg0
    cell.count_si += si - si0
    cell.count_sx += sx - sx0
    cell.count_k += k_pct
    cell.count_off_pct += d_off
    cell.since_v_s += dt
    if cell.sb > cell.bias_peak_sb:
        _keep_bias_peak(cell)
    cell.rc = rc
    cell.sc = sc
    cell.sg = sg
    cell.si = si
    cell.sx = sx
    cell.p00 = p00
    gap_dt = step.gap_dt_s
    if gap_dt > 0.0:
        crand = _count_gap(cell, step, tune, gap_dt, r1, ratio, crand)
    cell.count_rand_var = crand if crand < _MAX_VAR else _MAX_VAR
    cell.count_sys_pct = 50.0 if csys > 50.0 else csys  # min(csys, 50.0), NaN kept


def _keep_bias_peak(cell: CellState) -> None:
    """The estimate carries its largest load bias since the last trusted point: keep what the
    next trusted point needs to test it (``gateway.core.soc_offset.learn_load_bias``)."""
    cell.bias_peak_sb = cell.sb
    cell.bias_peak_d = cell.soc_pct - cell.count_soc_pct
    cell.bias_peak_p00 = cell.p00
    cell.bias_peak_cvar = cell.count_err_var


def _advance_rc(
    cell: CellState, tune: Tuning, known_dt: float, dt: float, cur_k: float, r1: float
) -> None:
    """``predict``'s RC part: the RC voltage, the branches' currents and their covariances
    advanced by ``known_dt`` s at the cell's current ``cur_k`` (A), ``r1`` at its temperature."""
    a = math.exp(-known_dt / cell.tau1_s) if known_dt > 0.0 else 1.0
    # The slow branch's current (no uncertainty of its own; a gap's unknown current: decay).
    a2 = math.exp(-known_dt / cell.tau2_s) if known_dt > 0.0 else 1.0
    w2 = cell.w2_a * a2 + (1.0 - a2) * cur_k
    v1 = cell.v1_v * a + r1 * (1.0 - a) * cur_k
    # The RC branch's current (the identification's regressor), advanced every step like v1.
    w1 = cell.rls_w_a * a + (1.0 - a) * cur_k
    # The RC voltage is uncertain by a fraction of its own size (diffusion and SoC dependence
    # the circuit does not hold): a state noise correlated over tau1, not white measurement
    # noise, so a lasting model error is taken up by v1 rather than by the SoC (off by default:
    # it did not generalise to the held-out cells, docs/PERFORMANCE.md).
    qv = tune.rc_sigma_fraction * r1 * cur_k
    cell.p11 = cell.p11 * a * a + 1e-8 * dt + qv * qv * (1.0 - a * a)
    cell.p01 = cell.p01 * a
    cell.v1_v = v1
    cell.rls_w_a = w1
    cell.w2_a = w2


def _count_gap(
    cell: CellState,
    step: StepInputs,
    tune: Tuning,
    gap_dt: float,
    r1: float,
    ratio: float,
    crand: float,
) -> float:
    """``predict``'s part for a gap (unknown current for ``gap_dt`` s), on the predicted state.

    The gap's charge is a zero-mean guess with a spread of ``gap_current_c``; the RC branches
    decay. Returns the count's random variance ``crand`` with the gap's part added.
    """
    # Unknown current for gap_dt: its charge is a zero-mean guess with this spread.
    a_gap = math.exp(-gap_dt / cell.tau1_s)
    sd = 100.0 * tune.gap_current_c * math.sqrt(step.gap_sq_s2) / 3600.0 * ratio
    cell.p00 += sd * sd
    cell.rc += sd * sd
    crand += sd * sd
    cell.v1_v *= a_gap
    cell.rls_w_a *= a_gap
    cell.w2_a *= math.exp(-gap_dt / cell.tau2_s)
    cell.p01 *= a_gap
    q_nom = step.q_nom_ah
    cell.p11 = cell.p11 * a_gap * a_gap + (r1 * tune.gap_current_c * q_nom) ** 2 * (
        1.0 - a_gap * a_gap
    )
    return crand


def tidy(cell: CellState) -> None:
    """Keep the covariance a covariance (rounding) and the variance parts and SoC in range."""
    p00 = cell.p00
    if p00 > _MAX_VAR:
        cell.scale_variance_parts(_MAX_VAR / p00)
        p00 = _MAX_VAR
    elif p00 < 1e-6:
        p00 = 1e-6
    cell.p00 = p00
    cell.sb = min(cell.sb, 50.0)
    p11 = cell.p11
    if p11 < 1e-12:
        p11 = cell.p11 = 1e-12
    lim = math.sqrt(p00 * p11)
    if cell.p01 > lim:
        cell.p01 = lim
    elif cell.p01 < -lim:
        cell.p01 = -lim
    s = cell.soc_pct
    if s < 0.0:
        cell.soc_pct = 0.0
    elif s > 100.0:
        cell.soc_pct = 100.0
