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
* ``recalibrate``: a rested voltage (after ``rest_s``) or a tapered charge at the top
  (``gateway.core.soc_top``), fused in the SoC domain through the interval of SoCs the voltage
  allows (plateau- and hysteresis-aware).
* ``learn``: R0 and R1 by recursive least squares with forgetting; capacity between two
  confident SoC points.

This module holds the state and the start; ``gateway.core.soc_predict`` holds ``predict`` and
``tidy``, ``gateway.core.soc_correct`` the correction and the recalibrations,
``gateway.core.soc_learn`` the identification and the capacity anchors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from gateway.core.chemistry import Chemistry
from gateway.core.soc_bias import LoadBiasEvidence
from gateway.core.soc_confirm import Pending
from gateway.core.soc_slow import SlowShift

__all__ = [
    "CellState",
    "StepInputs",
    "Tuning",
    "init_from_voltage",
    "soc_interval",
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
    reported sigma (as much of it as the trusted points found: ``bias_m``, ``bias_var``) until a
    rest or full removes it.
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
    rls_w_a: float = 0.0  # advanced by predict every step (as v1 is), read by learn_resistance
    rls_samples: int = 0
    # Time since this cell's last voltage sample was taken (s; advanced by predict, reset when a
    # voltage is weighed): what the per-sample averages (innovations, identification memory,
    # the start window) weigh a sample by, whatever the step rate.
    since_v_s: float = 0.0
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
    # (each part's sigma is its source's error over the time or net charge since that point)
    # The current sensor's offset as this cell's count has learned it (measured less true, C of
    # nominal; subtracted from the count) and its variance (C^2), from the counts between
    # trusted points (``gateway.core.soc_offset``); since the last trusted point, the count's
    # sensitivity to that offset (% of SoC per C) and the offset's part of ``count_sys_pct``.
    off_c: float = 0.0
    off_var: float = math.inf  # inf: nothing learned yet (``predict`` takes the prior)
    count_k: float = 0.0
    count_off_pct: float = 0.0
    # The gain, capacity and balancing errors since the last trusted point, signed (%): each
    # follows the net charge that made it, so a charge and the discharge after it cancel.
    count_sg: float = 0.0
    count_si: float = 0.0
    count_sx: float = 0.0
    # The load bias ``sb`` as the trusted points found it: the pack's evidence, shared by its
    # cells (``gateway.core.soc_bias``; a lone cell has its own).
    bias: LoadBiasEvidence = field(default_factory=LoadBiasEvidence)
    # Since the last trusted point, the moment the estimate carried the largest load bias: that
    # bias (%), the estimate less the count then (%), the filter's variance then (%^2) and the
    # count's error variance then (%^2). The next trusted point tests the estimate of that
    # moment through the count (``learn_load_bias``).
    bias_peak_sb: float = 0.0
    bias_peak_d: float = 0.0
    bias_peak_p00: float = 0.0
    bias_peak_cvar: float = 0.0
    # Last voltage used and its receive time and current (for freshness and identification).
    last_v_t: float = -math.inf
    last_v: float = _NAN
    last_v_i: float = _NAN
    # A voltage taken from the snapshot that waits for the current reading of its moment (it
    # came first, and that reading is due: ``SocEstimator._paired_current``): value, time.
    wait_v: float = _NAN
    wait_t: float = -math.inf
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
    # The rested voltages since the last rest recalibration (``accumulate_rest``): how many,
    # the first one's OCV (V, the reference), the sums of the OCVs less it (V) and of their
    # squares (V^2), and the previous block's mean OCV (V; NaN: no block yet in this rest).
    rest_n: int = 0
    rest_ref_v: float = 0.0
    rest_sum_v: float = 0.0
    rest_sq_v2: float = 0.0
    rest_prev_v: float = _NAN
    rest_p_var: float = _NAN  # the reported SoC variance before the rest's first use (%^2)
    slow: SlowShift = field(default_factory=SlowShift)  # learned from rests (soc_slow)
    pending: Pending = field(default_factory=Pending)  # the previous sample's (soc_confirm)
    full_latched: bool = False  # a trusted top seen (soc_top); cleared by a discharge

    @property
    def count_var(self) -> float:
        """Variance (%^2) of the count alone since the last trusted point."""
        return min(_MAX_VAR, self.count_rand_var + self.count_sys_pct * self.count_sys_pct)

    @property
    def count_err_var(self) -> float:
        """Variance (%^2) of the count's error since the last trusted point: ``count_var`` with
        the gain, capacity and balancing parts taken over the net charge (their errors follow
        it: a charge and the discharge after it cancel) rather than every step's part."""
        sys_pct = self.count_off_pct + abs(self.count_sg) + abs(self.count_si)
        sys_pct += abs(self.count_sx)
        return min(_MAX_VAR, self.count_rand_var + sys_pct * sys_pct)

    def restart_count(self, var: float) -> None:
        """The estimate is a trusted point (variance ``var``): count from here."""
        self.count_soc_pct = self.soc_pct
        self.count_rand_var = var
        self.count_sys_pct = 0.0
        self.count_k = 0.0
        self.count_off_pct = 0.0
        self.count_sg = self.count_si = self.count_sx = 0.0
        self.bias_peak_sb = 0.0

    def scale_variance_parts(self, f: float) -> None:
        """Scale the parts of the SoC variance by ``f`` (the random walk ``rc`` by ``f``, the
        systematic sigmas by its square root), as when ``p00`` is scaled by ``f``."""
        self.rc *= f
        f = math.sqrt(f)
        self.sc *= f
        self.sg *= f
        self.si *= f
        self.sx *= f

    def bias_var(self) -> float:
        """The load bias's part of the reported variance (%^2): ``sb**2`` times the share of it
        the trusted points found (``bias_m``)."""
        return self.bias.m * self.sb * self.sb

    @property
    def bias_m(self) -> float:
        """The share of ``sb**2`` the trusted points found (``LoadBiasEvidence.m``)."""
        return self.bias.m

    def total_var(self) -> float:
        """The SoC's reported variance (%^2): the filter's plus the load bias (``bias_var``: as
        much of it as the trusted points found), or, when smaller,
        what the count says: its variance since the last trusted point plus the squared distance
        of the estimate from it. The estimate is the count shifted by a known amount (the
        corrections since that point), so its error is the count's error plus that shift, and
        its mean square that sum (``count_err_var``: the count's own, not the filter's). Both
        describe the same error; the smaller description holds too.
        """
        tot = self.p00 + self.bias_var()
        d = self.soc_pct - self.count_soc_pct
        cv = self.count_err_var + d * d
        return cv if cv < tot else tot  # NaN (no count yet): the filter's

    def sigma_pct(self) -> float:
        """The SoC's reported 1-sigma uncertainty (%): ``sqrt(total_var())``, at most 50."""
        return min(50.0, math.sqrt(self.total_var()))


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
    offset_var_c2: float = 0.0  # the current offset's prior variance (C^2)
    offset_drift_var_c2_per_s: float = 0.0  # how fast a learned offset's variance grows back
    bias_prior_weight: float = 3.0  # the load-bias claim, in informative trusted points
    bias_memory_s: float = math.inf  # how long the evidence on the load bias lasts (s)


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
    cell.since_v_s = 0.0
    cell.restart_count(cell.p00)


# --- predict --------------------------------------------------------------------------------
