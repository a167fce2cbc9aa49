"""One cell's estimator state and the four things done to it: predict, correct, recalibrate, learn.

``SocEstimator`` (``gateway.core.soc``) owns one ``CellState`` per cell and, each step, computes
what is common to the string (``StepInputs``: time, current, rest) once and calls these functions
per cell. Each function changes only the ``CellState`` it is given, reads no clock and no global,
and can be tested alone.

The model (first-order equivalent circuit, charge positive)::

    v_cell = OCV(soc, T) + v1 + v2 + R0 * i
    soc'   = soc + 100 * i * dt / (3600 * Q)          (coulomb counting: the backbone)
    v1'    = a * v1 + R1 * (1 - a) * i,   a = exp(-dt / tau1)
    v2     = R2 * w2,  w2' = a2 * w2 + (1 - a2) * i,   a2 = exp(-dt / tau2)

The second, slow RC pair (``tau2`` in the thousands of seconds: solid diffusion over long loads)
is not a filter state: its current ``w2`` is known from the count and ``R2`` is the chemistry's
(``Chemistry.r2_mohm_ah``, 0 for the built-in chemistries; not identified: within the
identification's memory a slow RC pair and a SoC error are the same slow offset). ``w2`` also
marks the slow transients the identification learns from. ``v1`` may carry a state noise of a
fraction of its own size (``Tuning.rc_sigma_fraction``, off by default) so that polarisation the
circuit does not hold is taken up by ``v1`` rather than by the SoC.

* ``predict``: the count, and the growth of the uncertainty by kind (see ``CellState``).
* ``correct``: the voltage under load, weighed by how well the model currently predicts it
  (innovation-based adaptive noise), and held within what the count allows (``count_bound``).
* ``recalibrate``: a rested voltage (after ``rest_s``) or a full charge, fused in the SoC domain
  through the interval of SoCs the voltage allows (plateau- and hysteresis-aware).
* ``learn``: R0 and R1 by recursive least squares with forgetting; capacity between two
  confident SoC points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gateway.core.chemistry import Chemistry

__all__ = [
    "CellState",
    "StepInputs",
    "Tuning",
    "anchor",
    "correct",
    "count_bound",
    "forget_anchor",
    "init_from_voltage",
    "learn_resistance",
    "predict",
    "recalibrate_full",
    "recalibrate_rest",
    "rls_start",
    "soc_interval",
    "tidy",
    "voltage_soc",
]

_NAN = math.nan
_MAX_VAR = 2500.0  # 50 % sigma: knowing nothing, no need to grow further
START_WINDOW_S = 60.0
"""A start from voltage takes the mean of the voltages over this long (one noisy sample on a
plateau maps onto several points; the error band is not narrowed, only its middle found) ..."""
START_MAX_C = 0.05
"""... from the samples at up to this current (C-rate): the window's charge then moves the SoC
by under 0.1 %, so each sample is taken as a reading of the start's OCV."""
_RLS_OFFSET_SIGMA_V = 0.1  # the identification's offset: what a SoC error does to the OCV


@dataclass(slots=True)
class CellState:
    """Everything the estimator knows about one cell (mutable: updated in place each step).

    SoC variance ``p00`` (%^2) is the filter's; beside it, what it is made of, so that
    cell-to-cell differences can be weighed (in a series string the count's errors are common
    and cancel in differences): ``rc`` common random variance (drift, gaps, restore), and signed
    systematic sigmas (they add up linearly and their sign follows the charge that made them)
    ``sc`` current offset, ``sg`` current gain (common), ``si`` capacity, ``sx`` balancing
    current tolerance (the cell's own). ``sb`` is the load bias taken in by corrections under
    load (model error that does not average out), kept beside the filter and added to the
    reported sigma until a rest or full removes it.
    """

    initialised: bool = False
    soc_pct: float = _NAN
    v1_v: float = 0.0
    p00: float = 0.0  # var(soc), %^2
    p01: float = 0.0  # cov(soc, v1), % V
    p11: float = 0.0  # var(v1), V^2
    rc: float = 0.0
    sc: float = 0.0
    sg: float = 0.0
    si: float = 0.0
    sx: float = 0.0
    sb: float = 0.0
    cell_ah: float = 0.0  # balancing charge counted for this cell alone
    capacity_ah: float = 0.0
    capacity_var: float = 0.0  # Ah^2
    r0_ohm_25c: float = 0.0
    r1_ohm_25c: float = 0.0
    tau1_s: float = 1.0
    r2_ohm_25c: float = 0.0
    tau2_s: float = 1200.0
    w2_a: float = 0.0  # the slow RC branch's current (A): v2 = R2 * w2 (advanced by predict)
    # Recursive least squares for [R0, R1, offset] (symmetric 3x3 covariance, upper triangle
    # row by row) and the RC branch's filtered current (its regressor, A).
    rls_p: list[float] = field(default_factory=lambda: [0.0] * 6)
    rls_offset_v: float = 0.0
    rls_w_a: float = 0.0
    rls_samples: int = 0
    # Innovation statistics (exponentially weighted): mean square innovation under load (V^2,
    # the adaptive measurement noise) and the mean normalised innovation while charging and
    # while discharging (the consistency test).
    y2_v2: float = 0.0
    nu_charge: float = 0.0
    nu_discharge: float = 0.0
    # The count alone since the last trusted point (start, rested voltage, full): where
    # "never worse than counting" measures the corrections from, and the variance it has.
    count_soc_pct: float = _NAN
    count_rand_var: float = 0.0  # %^2: the trusted point's variance, drift, gaps
    count_sys_pct: float = 0.0  # %: systematic parts (offset, gain, capacity), added linearly
    # Last voltage used and its receive time and current (for freshness and identification).
    last_v_t: float = -math.inf
    last_v: float = _NAN
    last_v_i: float = _NAN
    # Capacity anchors: SoC, counted Ah at that moment, and that SoC's variance.
    anchor_soc: float = _NAN
    anchor_ah: float = _NAN
    anchor_var: float = _NAN
    # The start from voltage, refined over its first START_WINDOW_S: the mean OCV so far, the
    # number of samples in it, its half-width (V) and the time left (s; 0: window closed).
    start_left_s: float = 0.0
    start_n: int = 0
    start_ocv_v: float = _NAN
    start_half_v: float = 0.0
    rest_used: int = -1  # the rest (by number) already recalibrated on
    full_latched: bool = False  # full seen; cleared by a discharge

    @property
    def count_var(self) -> float:
        """Variance (%^2) of the count alone since the last trusted point."""
        return min(_MAX_VAR, self.count_rand_var + self.count_sys_pct * self.count_sys_pct)

    def restart_count(self, var: float) -> None:
        """The estimate is a trusted point (variance ``var``): count from here."""
        self.count_soc_pct = self.soc_pct
        self.count_rand_var = var
        self.count_sys_pct = 0.0

    def sigma_pct(self) -> float:
        """The SoC's reported 1-sigma uncertainty (%): the filter's plus the load bias."""
        return min(50.0, math.sqrt(self.p00 + self.sb * self.sb))


@dataclass(frozen=True, slots=True)
class StepInputs:
    """What one step means for every cell of the string (computed once per step).

    Charge figures are in Ah and % of the *nominal* capacity; ``predict`` rescales them to each
    cell's own capacity.
    """

    dt_s: float
    known_dt_s: float  # part of dt with a known current
    gap_dt_s: float  # part of dt with an unknown current
    current_a: float  # pack current now (0 when unknown)
    current_known: bool
    d_ah: float  # charge counted this step (pack current)
    extra_dt_s: float  # time the balancing currents flowed
    hold_var: float  # %^2 of nominal: the current's path between two samples
    resting: bool
    rest_id: int  # -1, or an id of the completed rest_s multiple (one recalibration each)
    q_nom_ah: float
    accumulated_ah: float  # pack charge counted since start (for capacity anchors)
    # Over several steps (a cell weighed every few steps, ``StepWindow``): the constant pack
    # current that drives the RC branch as the steps' currents did, and the sum of the squared
    # gap lengths (each gap's unknown charge is one guess). For one step: current_a, gap_dt^2.
    rc_current_a: float
    gap_sq_s2: float


@dataclass(frozen=True, slots=True)
class Tuning:
    """The settings the per-cell functions use, in the units they use (from ``SocConfig``)."""

    r_load_v2: float
    model_error_fraction: float
    r_rest_v2: float
    hysteresis_v: float
    min_slope_v_per_pct: float
    k_sigma: float
    drift_var_per_s: float
    gain_frac: float
    offset_pct_per_s: float  # of nominal capacity
    extra_frac: float
    gap_current_c: float
    bias_floor_v: float
    bias_fraction: float
    bias_pct_per_c: float
    confident_var: float
    capacity_min_delta_pct: float
    innovation_window_s: float
    count_z: float
    consistency_bias: float
    rls_memory_s: float
    rls_min_current_c: float
    r_factor_lo: float
    r_factor_hi: float
    rc_sigma_fraction: float


# --- start ----------------------------------------------------------------------------------


def soc_interval(
    chem: Chemistry, ocv_v: float, half_width_v: float, temp_c: float
) -> tuple[float, float]:
    """The SoC interval (%) whose OCV lies within ``ocv_v +- half_width_v`` at ``temp_c``.

    On a flat stretch (the LFP plateau) a few millivolts map onto tens of points; on a steep one
    onto a fraction of a point. The interval, not the local slope, is what the voltage says.
    """
    return (
        chem.ocv_soc(ocv_v - half_width_v, temp_c),
        chem.ocv_soc(ocv_v + half_width_v, temp_c),
    )


def voltage_soc(
    chem: Chemistry, ocv_v: float, half_width_v: float, temp_c: float
) -> tuple[float, float]:
    """What an OCV reading says about the SoC: ``(soc_pct, sigma_pct)``.

    The value is the SoC of ``ocv_v`` itself (on a flat stretch, the middle of it); the sigma is
    a quarter of the width of the SoC interval ``ocv_v +- half_width_v`` maps onto (a 2-sigma
    band; at least 0.05 %), not the local slope: a curve with flat stretches between steep ones
    (LFP) maps a few millivolts onto tens of points even where it is locally steep.
    """
    return _voltage_soc_at(chem, ocv_v, half_width_v, temp_c, chem.ocv_soc(ocv_v, temp_c))


def _voltage_soc_at(
    chem: Chemistry, ocv_v: float, half_width_v: float, temp_c: float, mid: float
) -> tuple[float, float]:
    """``voltage_soc`` with ``mid = chem.ocv_soc(ocv_v, temp_c)`` already computed."""
    lo = chem.ocv_soc(ocv_v - half_width_v, temp_c)
    hi = chem.ocv_soc(ocv_v + half_width_v, temp_c)
    z = min(max(mid, lo), hi)
    return z, max((hi - lo) / 4.0, 0.05)


def init_from_voltage(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    v: float,
    cur_a: float,
    temp_c: float,
    current_known: bool,
    q_nom_ah: float,
) -> None:
    """Start ``cell`` from its first valid voltage: the SoC distribution that voltage allows.

    The OCV is the voltage less the modelled IR drop; its error band (2 sigma) is the sensor and
    unmodelled polarisation (half the IR drop), an unknown current's IR drop when the current is
    not known yet, and the OCV hysteresis. The start is the middle of the SoC interval that band
    maps onto, with sigma = a quarter of its width (at least 1 %): wide on the LFP plateau,
    narrow on a steep part, so the reported sigma is honest from the first sample.
    """
    r_scale = chem.r_temp_factor(temp_c)
    r0 = cell.r0_ohm_25c * r_scale
    ocv_v = v - r0 * cur_a
    err_v = math.sqrt(tune.r_load_v2) + 0.5 * abs(r0 * cur_a)
    if not current_known:
        err_v += r0 * tune.gap_current_c * q_nom_ah
    half = 2.0 * err_v + tune.hysteresis_v
    z, sz = voltage_soc(chem, ocv_v, half, temp_c)
    sigma = min(50.0, max(1.0, sz))
    # A window only for a start at a small, known current (the samples are then alike).
    small = current_known and abs(cur_a) <= START_MAX_C * q_nom_ah
    cell.start_left_s = START_WINDOW_S if small else 0.0
    cell.start_n = 1
    cell.start_ocv_v = ocv_v
    cell.start_half_v = half
    cell.initialised = True
    cell.soc_pct = z
    cell.v1_v = 0.0
    cell.p00 = sigma * sigma
    cell.p01 = 0.0
    # The start is the cell's own voltage reading: all of it individual.
    cell.rc = cell.sc = cell.sg = cell.si = cell.sx = cell.sb = 0.0
    r1 = cell.r1_ohm_25c
    cell.p11 = (r1 * max(abs(cur_a), 0.05 * q_nom_ah)) ** 2
    cell.w2_a = 0.0
    cell.restart_count(cell.p00)


# --- predict --------------------------------------------------------------------------------


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
    x_ah = extra_a * step.extra_dt_s / 3600.0
    d_pct = 100.0 * step.d_ah / cap
    x_pct = 100.0 * x_ah / cap
    dx_pct = d_pct + x_pct
    cell.soc_pct += dx_pct
    cell.count_soc_pct += dx_pct
    if x_ah != 0.0:
        cell.cell_ah += x_ah
    cur_k = step.rc_current_a + extra_a
    tau = cell.tau1_s
    known_dt = step.known_dt_s
    a = math.exp(-known_dt / tau) if known_dt > 0.0 else 1.0
    # The slow branch's current (no uncertainty of its own; a gap's unknown current: decay).
    a2 = math.exp(-known_dt / cell.tau2_s) if known_dt > 0.0 else 1.0
    w2 = cell.w2_a * a2 + (1.0 - a2) * cur_k
    r1 = cell.r1_ohm_25c * r_scale
    v1 = cell.v1_v * a + r1 * (1.0 - a) * cur_k
    rc0 = cell.rc
    sc0 = cell.sc
    si0 = cell.si
    sg0 = cell.sg
    sx0 = cell.sx
    ratio = q_nom / cap
    rc = rc0 + tune.drift_var_per_s * dt + step.hold_var * ratio * ratio
    sc = sc0 + tune.offset_pct_per_s * dt * ratio
    sg = sg0 + tune.gain_frac * d_pct
    si = si0 + dx_pct * math.sqrt(cell.capacity_var) / cap
    sx = sx0 + tune.extra_frac * x_pct
    d_rc = rc - rc0
    grow = d_rc + (sc * sc - sc0 * sc0) + (sg * sg - sg0 * sg0) + (si * si - si0 * si0)
    grow += sx * sx - sx0 * sx0
    p00 = cell.p00 + grow
    p01 = cell.p01 * a
    # The RC voltage is uncertain by a fraction of its own size (diffusion and SoC dependence
    # the circuit does not hold): a state noise correlated over tau1, not white measurement
    # noise, so a lasting model error is taken up by v1 rather than by the SoC (off by default:
    # it did not generalise to the held-out cells, docs/PERFORMANCE.md).
    qv = tune.rc_sigma_fraction * r1 * cur_k
    p11 = cell.p11 * a * a + 1e-8 * dt + qv * qv * (1.0 - a * a)
    # The count alone: its random part grows like the filter's, its systematic parts add up
    # linearly (corrections shrink the filter's parts, never the count's).
    crand = cell.count_rand_var + d_rc
    csys = cell.count_sys_pct + (abs(sc - sc0) + abs(sg - sg0) + abs(si - si0) + abs(sx - sx0))
    gap_dt = step.gap_dt_s
    if gap_dt > 0.0:
        # Unknown current for gap_dt: its charge is a zero-mean guess with this spread.
        a_gap = math.exp(-gap_dt / tau)
        sd = 100.0 * tune.gap_current_c * math.sqrt(step.gap_sq_s2) / 3600.0 * ratio
        p00 += sd * sd
        rc += sd * sd
        crand += sd * sd
        v1 *= a_gap
        w2 *= math.exp(-gap_dt / cell.tau2_s)
        p01 *= a_gap
        p11 = p11 * a_gap * a_gap + (r1 * tune.gap_current_c * q_nom) ** 2 * (1.0 - a_gap * a_gap)
    cell.v1_v = v1
    cell.w2_a = w2
    cell.rc = rc
    cell.sc = sc
    cell.sg = sg
    cell.si = si
    cell.sx = sx
    cell.p00 = p00
    cell.p01 = p01
    cell.p11 = p11
    cell.count_rand_var = crand if crand < _MAX_VAR else _MAX_VAR
    cell.count_sys_pct = 50.0 if csys > 50.0 else csys  # min(csys, 50.0), NaN kept


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
) -> bool:
    """Correct ``cell`` with a voltage outside a rest recalibration; return whether it was used.

    Three paths (only the first while resting):

    * **Contradiction**: the IR-corrected voltage, widened by its error under load and the
      hysteresis, allows a SoC interval that lies more than ``k_sigma`` sigmas (the estimate's and
      the voltage's together) from the estimate: the estimate is not what the voltage can be.
      Then it is fused in the SoC domain (``_fuse_interval``), whatever the local slope. This is
      what moves an estimate parked on a plateau once the cell reaches a knee.
    * **Interval fusion**: where the OCV is steep enough on average over the plausible interval
      (``soc +- k sigma``) but flat at the estimate, the voltage's SoC interval is fused in the
      SoC domain when it is at least twice as precise as the estimate (never below its own
      variance: a load voltage's error does not average out).
    * **Kalman update**: where the OCV is steep enough over the plausible interval and at the
      estimate (mean and local slope >= ``min_slope``), the extended Kalman update on (soc, v1).
      Its measurement noise is the larger of the nominal one (sensor, model error growing with
      the current) and what the innovations show
      (``E[y^2] - H P H'``, exponentially weighted over ``innovation_window_s``): a model that is
      wrong for this cell predicts badly and is trusted less, automatically. While the mean
      normalised innovations taken while charging and while discharging point opposite ways
      beyond ``consistency_bias`` (the error follows the current: the circuit is wrong, not
      the SoC), the update is skipped.

    After the last two, ``count_bound`` holds the estimate within what the count allows.

    Within ``START_WINDOW_S`` of a start from voltage, the voltage refines that start instead
    (``_refine_start``).
    """
    if cell.start_left_s > 0.0:
        cell.start_left_s = max(0.0, cell.start_left_s - step.dt_s)
        # Samples alike the start's: a small pack current and no balancing current of its own.
        if abs(cur_k) <= START_MAX_C * step.q_nom_ah and cur_k == step.current_a:
            _refine_start(cell, chem, v, cur_k, temp_c, r_scale)
            return True
    r0 = cell.r0_ohm_25c * r_scale
    r1 = cell.r1_ohm_25c * r_scale
    v2 = cell.r2_ohm_25c * r_scale * cell.w2_a
    soc = cell.soc_pct
    sigma = math.sqrt(cell.p00 + cell.sb * cell.sb)
    pol = tune.model_error_fraction * (r0 + r1) * cur_k
    r_nom = tune.r_load_v2 + pol * pol
    ocv_v = v - r0 * cur_k - cell.v1_v - v2
    half = 2.0 * math.sqrt(r_nom + cell.p11) + tune.hysteresis_v
    # Cheap first: the voltage's own SoC within k sigma of the estimate cannot contradict it
    # (the interval test below only widens the allowance).
    mid = chem.ocv_soc(ocv_v, temp_c)
    zs: tuple[float, float] | None = None
    if abs(mid - soc) > tune.k_sigma * sigma:
        zs = z, sz = _voltage_soc_at(chem, ocv_v, half, temp_c, mid)
        if abs(z - soc) > tune.k_sigma * math.sqrt(sigma * sigma + sz * sz):
            _fuse_interval(cell, z, sz, contradicted=True)
            return True
    if step.resting:
        return False  # a resting voltage is weighed once per rest_s (recalibrate_rest)
    k = tune.k_sigma * sigma
    s_lo, s_hi = max(0.0, soc - k), min(100.0, soc + k)
    slope = chem.ocv.slope(soc)
    if s_hi - s_lo > 1e-9:
        mean_slope = (chem.ocv.voltage(s_hi) - chem.ocv.voltage(s_lo)) / (s_hi - s_lo)
    else:
        mean_slope = slope
    if mean_slope < tune.min_slope_v_per_pct:
        return False
    if slope < tune.min_slope_v_per_pct:
        # Informative over the interval, flat at the estimate: a linearisation here would see
        # nothing. Fuse what the voltage allows in the SoC domain, never to below its own
        # variance (its error under load does not average out over samples).
        z, sz = zs if zs is not None else _voltage_soc_at(chem, ocv_v, half, temp_c, mid)
        p_before = cell.p00
        if 4.0 * sz * sz > p_before:
            return False  # says little the estimate does not know
        _fuse_interval(cell, z, sz, contradicted=False)
        cell.p00 = max(cell.p00, min(p_before, sz * sz))
        count_bound(cell, tune)
        return True
    y = v - (chem.ocv_voltage(soc, temp_c) + cell.v1_v + v2 + r0 * cur_k)
    h0 = slope
    p00, p01, p11 = cell.p00, cell.p01, cell.p11
    hph = h0 * (h0 * p00 + 2.0 * p01) + p11
    lam = math.exp(-step.dt_s / tune.innovation_window_s)
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


def _fuse_interval(cell: CellState, z: float, sz: float, *, contradicted: bool) -> None:
    """Fuse a SoC measurement ``z`` +- ``sz`` (from a voltage's SoC interval) into ``cell``.

    ``contradicted``: the estimate is inconsistent with ``z`` (beyond k sigma); its variance is
    first widened by the squared distance (so the fusion lands near ``z``), and the count is
    restarted from the result (the count was what was wrong).
    """
    p00 = cell.p00 + cell.sb * cell.sb
    rc = cell.rc + cell.sb * cell.sb
    cell.sb = 0.0
    if contradicted:
        d2 = (z - cell.soc_pct) ** 2
        p00 += d2
        rc += d2
    r = sz * sz
    k0 = p00 / (p00 + r)
    k1 = cell.p01 / (p00 + r)
    cell.soc_pct += k0 * (z - cell.soc_pct)
    cell.p11 -= k1 * cell.p01
    cell.p01 *= 1.0 - k0
    cell.p00 = (1.0 - k0) * p00
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
        f = cell.p00 / total
        cell.rc *= f
        f = math.sqrt(f)
        cell.sc *= f
        cell.sg *= f
        cell.si *= f
        cell.sx *= f


# --- recalibrate (rest, full) ---------------------------------------------------------------


def recalibrate_rest(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
) -> bool:
    """Recalibrate ``cell`` from a voltage after a rest; return whether the voltage was used.

    The relaxed voltage (less the small IR drop of the rest current) is the OCV to within the
    rest sigma (2 sigma) plus the OCV hysteresis: the SoC interval it allows is the measurement
    (``voltage_soc``). It is used when the voltage lies on a steep part of the curve (the slope
    at the voltage's own SoC, not at the estimate, is at least ``min_slope``), or when it
    contradicts the estimate (beyond ``k_sigma`` combined sigmas, e.g. a restored SoC while the
    pack moved): judged over the whole plausible interval. On a plateau with an estimate the
    voltage does not contradict, the count is kept.
    """
    r0 = cell.r0_ohm_25c * r_scale
    ocv_v = v - r0 * cur_k - cell.v1_v - cell.r2_ohm_25c * r_scale * cell.w2_a
    half = 2.0 * math.sqrt(tune.r_rest_v2) + tune.hysteresis_v
    z, sz = voltage_soc(chem, ocv_v, half, temp_c)
    p_tot = cell.p00 + cell.sb * cell.sb
    contradicted = abs(z - cell.soc_pct) > tune.k_sigma * math.sqrt(p_tot + sz * sz)
    if not contradicted and chem.ocv.slope(z) < tune.min_slope_v_per_pct:
        return False
    _fuse_interval(cell, z, sz, contradicted=contradicted)
    if not contradicted:
        cell.restart_count(cell.p00)
    return True


def recalibrate_full(cell: CellState) -> None:
    """The cell is full (upper voltage, tapered charge current): 100 % to within 0.5 %."""
    cell.soc_pct = 100.0
    cell.sb = 0.0
    if cell.p00 > 0.25:
        f = 0.25 / cell.p00
        cell.rc *= f
        f = math.sqrt(f)
        cell.sc *= f
        cell.sg *= f
        cell.si *= f
        cell.sx *= f
        cell.p00 = 0.25
    cell.p01 = 0.0
    cell.restart_count(cell.p00)


# --- learn ----------------------------------------------------------------------------------


def rls_start(cell: CellState, r0_ohm: float, r1_ohm: float, r2_ohm: float = 0.0) -> None:
    """Start the resistance identification from the chemistry's values (half of each as sigma).

    ``r2_ohm``: the slow branch's resistance (not identified: a slow RC pair and the offset
    cannot be told apart within the identification's memory).
    """
    cell.r0_ohm_25c = r0_ohm
    cell.r1_ohm_25c = r1_ohm
    cell.r2_ohm_25c = r2_ohm
    cell.rls_p = [(0.5 * r0_ohm) ** 2, 0.0, 0.0, (0.5 * r1_ohm) ** 2, 0.0, _RLS_OFFSET_SIGMA_V**2]
    cell.rls_offset_v = 0.0
    cell.rls_w_a = 0.0
    cell.rls_samples = 0


def learn_resistance(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    step: StepInputs,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
    r0_nom_ohm: float,
    r1_nom_ohm: float,
) -> None:
    """Identify R0 and R1 (at 25 degC) by recursive least squares with forgetting.

    Regression (linear in the parameters for a known tau1, the chemistry's)::

        v - OCV(soc, T) - v2 = R0 * f(T) * i + R1 * f(T) * w + c,   w' = a * w + (1 - a) * i

    with ``w`` the RC branch's current, ``v2`` the slow branch's modelled voltage and ``c`` an
    offset that takes up what a slowly wrong SoC does to the OCV (so a SoC error is not learned
    as resistance). Forgetting factor ``exp(-dt / rls_memory_s)``; updates only while the
    current differs from its RC-filtered self or from its slowly filtered self (``w2``) by
    ``rls_min_current_c`` (a transient, fast or slow: in a steady, settled current R0, R1 and
    the offset cannot be told apart; over a slow one R1 takes up the part of the slower
    polarisation the circuit's fixed time constants miss), nor where the OCV at the estimate
    is uncertain by more than half the voltage noise (slope times SoC sigma); the covariance is
    not inflated beyond its start (no windup); R0 and R1 are held within
    ``r_factor_lo..r_factor_hi`` times the chemistry's. Source: the standard RLS with
    exponential forgetting (Ljung, *System Identification*, 2nd ed., sec. 11.2); the
    linear-in-parameters form of the RC circuit with a fixed time constant as in Plett,
    *Battery Management Systems* vol. 2, ch. 3.
    """
    known_dt = step.known_dt_s
    a = math.exp(-known_dt / cell.tau1_s) if known_dt > 0.0 else 1.0
    # The RC branch's drive over the step (differs from the current now only over a window).
    w = a * cell.rls_w_a + (1.0 - a) * (cur_k + (step.rc_current_a - step.current_a))
    cell.rls_w_a = w
    # Excitation: in a steady, settled current (i = w = w2) the resistances and the offset are
    # the same regressor; only while the current differs from its filtered selves do they
    # separate.
    thr = tune.rls_min_current_c * step.q_nom_ah
    w2 = cell.w2_a
    if (abs(cur_k - w) < thr and abs(cur_k - w2) < thr) or step.gap_dt_s > 0.0:
        return
    # Where the OCV at the estimate is uncertain (a steep part with a SoC not known well) the
    # SoC error would be learned as resistance: up to half the voltage noise of it is allowed.
    soc = cell.soc_pct
    r_load_v2 = tune.r_load_v2
    if chem.ocv.slope(soc) * math.sqrt(cell.p00) > 0.5 * math.sqrt(r_load_v2):
        return
    u = v - chem.ocv_voltage(soc, temp_c) - cell.r2_ohm_25c * r_scale * w2
    x0, x1 = r_scale * cur_k, r_scale * w  # x2 = 1.0 (the offset's regressor)
    p00, p01, p02, p11, p12, p22 = cell.rls_p
    # P x (the products with x2 = 1.0 are exact: written out as the plain terms)
    g0 = p00 * x0 + p01 * x1 + p02
    g1 = p01 * x0 + p11 * x1 + p12
    g2 = p02 * x0 + p12 * x1 + p22
    lam = math.exp(-step.dt_s / tune.rls_memory_s)
    # The covariance is in the parameters' units: the equation error's variance weighs it.
    den = lam * r_load_v2 + x0 * g0 + x1 * g1 + g2
    k0, k1, k2 = g0 / den, g1 / den, g2 / den
    r0_old = cell.r0_ohm_25c
    r1_old = cell.r1_ohm_25c
    offset = cell.rls_offset_v
    e = u - (r0_old * x0 + r1_old * x1 + offset)
    r0 = r0_old + k0 * e
    r1 = r1_old + k1 * e
    cell.rls_offset_v = offset + k2 * e
    cell.r0_ohm_25c = min(max(r0, tune.r_factor_lo * r0_nom_ohm), tune.r_factor_hi * r0_nom_ohm)
    cell.r1_ohm_25c = min(max(r1, tune.r_factor_lo * r1_nom_ohm), tune.r_factor_hi * r1_nom_ohm)
    # P = (P - k g') / lam, but no growth past the start along a direction with no excitation.
    n00 = p00 - k0 * g0
    n01 = p01 - k0 * g1
    n02 = p02 - k0 * g2
    n11 = p11 - k1 * g1
    n12 = p12 - k1 * g2
    n22 = p22 - k2 * g2
    cap0, cap1, cap2 = (0.5 * r0_nom_ohm) ** 2, (0.5 * r1_nom_ohm) ** 2, _RLS_OFFSET_SIGMA_V**2
    inv = 1.0 / lam
    d0 = min(n00 * inv, cap0)
    d1 = min(n11 * inv, cap1)
    d2 = min(n22 * inv, cap2)
    # Keep the off-diagonals consistent with the capped diagonals.
    s0 = math.sqrt(max(d0 / n00, 0.0)) if n00 > 0.0 else 0.0
    s1 = math.sqrt(max(d1 / n11, 0.0)) if n11 > 0.0 else 0.0
    s2 = math.sqrt(max(d2 / n22, 0.0)) if n22 > 0.0 else 0.0
    cell.rls_p = [d0, n01 * s0 * s1, n02 * s0 * s2, d1, n12 * s1 * s2, d2]
    cell.rls_samples += 1


def anchor(cell: CellState, tune: Tuning, step: StepInputs, soc: float, var: float) -> None:
    """Cell is confidently at ``soc`` (variance ``var``): learn capacity against the last anchor.

    A capacity sample is the charge counted between two anchors at least
    ``capacity_min_delta_pct`` apart over their SoC difference; it is weighed by both anchors'
    SoC errors over the distance and the current sensor's gain error (a scalar Kalman update).
    """
    q_nom = step.q_nom_ah
    counted = step.accumulated_ah + cell.cell_ah
    if math.isfinite(cell.anchor_soc):
        d_soc = soc - cell.anchor_soc
        if abs(d_soc) >= tune.capacity_min_delta_pct:
            sample = (counted - cell.anchor_ah) / (d_soc / 100.0)
            if 0.5 * q_nom <= sample <= 1.5 * q_nom:
                rel_var = (var + cell.anchor_var) / (d_soc * d_soc) + tune.gain_frac**2
                s_var = rel_var * sample * sample
                c_var = cell.capacity_var
                kg = c_var / (c_var + s_var)
                cell.capacity_ah += kg * (sample - cell.capacity_ah)
                cell.capacity_var = (1.0 - kg) * c_var + (0.002 * q_nom) ** 2
    cell.anchor_soc = soc
    cell.anchor_ah = counted
    cell.anchor_var = var


def forget_anchor(cell: CellState) -> None:
    """No capacity sample may span what came before (a gap of unknown charge)."""
    cell.anchor_soc = _NAN
    cell.anchor_ah = _NAN
    cell.anchor_var = _NAN


def tidy(cell: CellState) -> None:
    """Keep the covariance a covariance (rounding) and the variance parts and SoC in range."""
    p00 = cell.p00
    if p00 > _MAX_VAR:
        f = _MAX_VAR / p00
        cell.rc *= f
        f = math.sqrt(f)
        cell.sc *= f
        cell.sg *= f
        cell.si *= f
        cell.sx *= f
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
