"""Per-cell state of charge, capacity and resistance estimation. Pure and clock-injected.

Each cell runs a two-state extended Kalman filter over a first-order equivalent circuit::

    v_cell = OCV(soc, T) + v1 + R0 * i          (i > 0 charging)
    soc'   = soc + 100 * i * dt / (3600 * Q)    (coulomb counting: the backbone)
    v1'    = a * v1 + R1 * (1 - a) * i,   a = exp(-dt / tau1)

The count carries the estimate; the voltage corrects it only where the OCV curve is steep enough
to say something (``min_ocv_slope_mv_per_pct``). On the flat middle of an LFP curve the filter
skips the voltage, trusts the count and lets the variance grow. After a rest of ``rest_s`` the
relaxed voltage is close to the OCV and is used with a much smaller measurement noise: that is
the rest recalibration. A charge that ends at the upper voltage with a tapered current sets the
cell to 100 %.

Capacity (SoH) per cell comes from the charge counted between two confident SoC points (a rest
recalibration on a steep part of the curve, or full), resistance R0 per cell from the voltage
step that answers a current step (reported referred to 25 degC with the chemistry's temperature
factor, so that it tracks ageing rather than the weather). Everything is plain Python floats
held in per-cell lists, so a 512-cell pack stepped at 10 Hz stays cheap (see
``bench/soc_accuracy.py`` for the figures).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from gateway.core.chemistry import Chemistry
from gateway.core.config import Section
from gateway.core.model import CellEstimate, PackSnapshot, SocReport
from gateway.core.pack import PackConfig, cell_temps

__all__ = ["STATE_VERSION", "SocConfig", "SocEstimator", "pack_soc_pct"]

STATE_VERSION = 1
"""Version of the dict written by ``SocEstimator.export_state``."""

_NAN = math.nan
_REF_TEMP_C = 25.0


class SocConfig(Section):
    """State estimator settings."""

    ocv_table: str | None = None
    """Path of a user OCV table (CSV ``soc_pct,ocv_v``); default: the chemistry's built-in table."""
    voltage_sigma_mv: float = Field(default=12.0, gt=0)
    """Voltage error under load: sensor noise plus what the circuit model misses (1 sigma)."""
    model_error_fraction: float = Field(default=1.0, ge=0)
    """Circuit-model error under load as a fraction of the modelled polarisation (R0+R1)*I."""
    load_bias_mv: float = Field(default=5.0, ge=0)
    """Part of the voltage error under load that does not average out over samples (model
    error that lasts as long as the current): it bounds how far repeated corrections under load
    can be trusted, and is added to the reported sigma until a rest or full removes it ..."""
    load_bias_fraction: float = Field(default=0.5, ge=0)
    """... plus this fraction of the modelled polarisation (R0 + R1) * I ..."""
    load_bias_pct_per_c: float = Field(default=10.0, ge=0)
    """... or, if larger, this many % of SoC per C of current: diffusion the 1-RC circuit does
    not model shifts the loaded voltage like a surface SoC off the bulk SoC (PyBaMM's LFP near
    empty: 1.4 % at 0.09 C, about 47 mV on the steep end)."""
    rest_voltage_sigma_mv: float = Field(default=4.0, gt=0)
    """Voltage error after a rest of ``rest_s`` (the relaxed voltage is almost the OCV)."""
    rest_current_c: float = Field(default=0.01, ge=0)
    """Current (as a C-rate) below which the pack counts as resting."""
    rest_s: float = Field(default=900.0, ge=0)
    """Rest needed before the voltage is taken as OCV for a recalibration (repeated each rest_s)."""
    min_ocv_slope_mv_per_pct: float = Field(default=1.5, ge=0)
    """Below this OCV slope the voltage is not used: the count is trusted (flat LFP middle)."""
    count_drift_pct_per_sqrt_h: float = Field(default=0.5, ge=0)
    """How fast the count's uncertainty grows with time (random drift), % per sqrt(h)."""
    current_offset_sigma_c: float = Field(default=0.002, ge=0)
    """Current-sensor offset (1 sigma, C-rate): a systematic error, so the count's uncertainty
    grows linearly with time until the voltage corrects it (0.002 C: 0.2 % per hour)."""
    current_gain_sigma_pct: float = Field(default=1.0, ge=0)
    """Current-sensor gain uncertainty: the count's error per charge moved, % (systematic: it
    adds up linearly over the charge moved)."""
    current_hold_s: float = Field(default=60.0, gt=0)
    """A current known at both ends of a step is held across it up to this long (the estimator
    may be stepped less often than ``stale_s``); the change between the two samples counts as
    uncertainty. Longer steps, or a current unknown at either end, count as a gap."""
    extra_current_sigma_pct: float = Field(default=10.0, ge=0)
    """Uncertainty of the per-cell balancing currents passed to ``step`` (bleed resistor and
    voltage tolerance), % of the charge they move (systematic, per cell)."""
    gap_current_c: float = Field(default=0.2, ge=0)
    """Current (C-rate, 1 sigma) assumed while the current is unknown (stale, missing, a gap)."""
    stale_s: float = Field(default=5.0, gt=0)
    """A value older than this is not used; time beyond it counts as a gap."""
    full_current_c: float = Field(default=0.05, gt=0)
    """A charge current below this C-rate at the upper voltage means the cell is full."""
    full_voltage_margin_v: float = Field(default=0.015, ge=0)
    """A cell within this margin of the chemistry's upper voltage counts as at the upper voltage."""
    confident_sigma_pct: float = Field(default=2.0, gt=0)
    """A SoC known to within this (1 sigma) at a rest or at full anchors a capacity measurement."""
    capacity_min_delta_pct: float = Field(default=30.0, gt=0, le=100)
    """Smallest SoC difference between two anchors that yields a capacity sample."""
    r0_min_step_c: float = Field(default=0.1, gt=0)
    """Smallest current step (C-rate) used to measure R0."""
    r0_max_step_dt_s: float = Field(default=2.0, gt=0)
    """Longest interval between the two samples of a current step used to measure R0."""
    r0_gain: float = Field(default=0.05, gt=0, le=1)
    """Weight of one R0 sample in the running R0 estimate."""
    min_interval_s: float = Field(default=0.05, ge=0, le=10)
    """Steps closer together than this return the last report (the control loop may step on every
    frame; the count loses nothing, the filter sees the latest value of each cell)."""
    restore_sigma_pct: float = Field(default=5.0, ge=0)
    """Uncertainty added to a restored SoC (the pack may have moved while we were down)."""


def pack_soc_pct(soc_min_pct: float, soc_max_pct: float) -> float:
    """The pack SoC the inverter sees: the min cell near empty, the max cell near full.

    ``min / (min + (100 - max))`` is 100 when one cell is full (nothing can take more charge), 0
    when one cell is empty, and equals the common value when all cells agree. With one cell full
    and another empty at once the pack can neither charge nor discharge; that reads 0 (the safe
    side for an inverter deciding to discharge).
    """
    room = 100.0 - soc_max_pct
    denom = soc_min_pct + room
    if denom <= 1e-9:
        return 0.0
    return min(100.0, max(0.0, 100.0 * soc_min_pct / denom))


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


class SocEstimator:
    """Per-cell SoC, capacity and R0 estimator for one pack.

    Args:
        config: estimator settings.
        pack: the pack (cell count, nominal capacity).
        chemistry: OCV curve and nominal circuit parameters (possibly with a user OCV table).

    Raises:
        ValueError: ``chemistry`` is not the pack's.
    """

    def __init__(self, config: SocConfig, pack: PackConfig, chemistry: Chemistry) -> None:
        if chemistry.name != pack.chemistry:
            raise ValueError(
                f"chemistry (={chemistry.name!r}) is not the pack's (={pack.chemistry!r})"
            )
        self.config = config
        self.pack = pack
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None
        self.chemistry = chemistry
        n = pack.cells
        self._n = n
        self._q_nom_ah = pack.capacity_ah
        cap = pack.capacity_ah
        # Per-cell filter state (struct of arrays: cheap to loop over in plain Python).
        self._init: list[bool] = [False] * n
        self._soc: list[float] = [_NAN] * n
        self._v1: list[float] = [0.0] * n
        self._p00: list[float] = [0.0] * n  # var(soc) in %^2
        self._p01: list[float] = [0.0] * n  # cov(soc, v1) in % V
        self._p11: list[float] = [0.0] * n  # var(v1) in V^2
        # What var(soc) is made of. In a series string the count's errors (current offset, gain,
        # gaps) are the same for every cell, so they cancel in cell-to-cell differences; a
        # cell's own start, capacity error and voltage noise do not. Systematic parts are kept
        # as sigmas that add up linearly; random parts as variances.
        self._rc: list[float] = [0.0] * n  # common random variance (drift, gaps, restore)
        # Systematic errors as signed sensitivities (their sign follows the charge that made
        # them: a capacity or gain error over a charge and the matching discharge cancels).
        self._sc: list[float] = [0.0] * n  # common: current-sensor offset (grows with time)
        self._sg: list[float] = [0.0] * n  # common: current-sensor gain (follows net charge)
        self._si: list[float] = [0.0] * n  # individual: capacity (follows the cell's net charge)
        self._sx: list[float] = [0.0] * n  # individual: balancing current tolerance
        # (individual random variance = p00 - rc - the squares of the above: start, voltage
        # noise)
        # Bias taken in from corrections under load: the circuit model's error is not noise
        # that averages out over samples but stays for as long as the current does, so the
        # filter's own variance (which treats each sample as independent) shrinks below what
        # the estimate is worth. Tracked as a sigma beside the filter (not in it, so it does not
        # make the filter follow the biased voltage harder) and added to the reported sigma.
        self._sb: list[float] = [0.0] * n
        self._cell_ah: list[float] = [0.0] * n  # balancing charge counted per cell
        self._cap: list[float] = [cap] * n
        self._cap_var: list[float] = [(0.1 * cap) ** 2] * n
        self._r0_25: list[float] = [chemistry.r0_ohm(cap)] * n  # referred to 25 degC
        self._last_v_t: list[float] = [-math.inf] * n  # receive time of the last voltage used
        self._last_v: list[float] = [_NAN] * n
        self._last_v_i: list[float] = [_NAN] * n  # the current at that voltage sample
        # Capacity anchors: SoC, counted Ah at that moment, and variance of that SoC.
        self._anchor_soc: list[float] = [_NAN] * n
        self._anchor_ah: list[float] = [_NAN] * n
        self._anchor_var: list[float] = [_NAN] * n
        self._rest_used: list[int] = [-1] * n  # the rest (by number) already recalibrated on
        self._full_latched: list[bool] = [False] * n  # full seen; cleared by a discharge
        # Pack-level state: one current flows through every series cell.
        self._ah = 0.0  # net charge counted since start (charge positive)
        self._discharged_ah = 0.0
        self._cycles0 = 0.0  # cycles restored from a previous run
        self._last_now_s: float | None = None
        self._last_i: float | None = None  # the pack current at the last step, if known then
        self._rest_since_s: float | None = None
        self._rest_epoch = 0  # counts rests begun
        self._report: SocReport | None = None

    # --- public -------------------------------------------------------------------------

    @property
    def cell_count(self) -> int:
        """Number of cells estimated."""
        return self._n

    @property
    def cycles(self) -> float:
        """Equivalent full cycles: charge discharged over nominal capacity (incl. restored)."""
        return self._cycles0 + self._discharged_ah / self._q_nom_ah

    def step(
        self,
        snapshot: PackSnapshot,
        now_s: float,
        *,
        cell_extra_current_a: Sequence[float] | None = None,
    ) -> SocReport | None:
        """Advance to ``now_s`` with the latest ``snapshot``.

        Returns ``None`` until every cell has had one valid voltage (its SoC starts from the
        OCV); afterwards a report every step. Missing, non-finite or stale values are skipped and
        make the uncertainty grow; a gap in time is counted as unknown current.

        Args:
            snapshot: the pack as of ``now_s``.
            now_s: monotonic seconds (injected).
            cell_extra_current_a: per-cell current (A, positive into the cell) on top of the pack
                current since the previous step, e.g. ``BalancingPlanner.cell_currents_a()``
                of the plan that ran (a bleeding cell has a negative value). Counted like the pack
                current. ``None``: none.

        Raises:
            ValueError: the snapshot or ``cell_extra_current_a`` has another cell count, or an
                extra current is not finite.
        """
        cfg = self.config
        chem = self.chemistry
        n = self._n
        if snapshot.cell_count != n:
            raise ValueError(f"snapshot has {snapshot.cell_count} cells, estimator {n}")
        extra: list[float] | None = None
        if cell_extra_current_a is not None:
            extra = [float(x) for x in cell_extra_current_a]
            if len(extra) != n:
                raise ValueError(f"cell_extra_current_a has {len(extra)} cells, estimator {n}")
            bad = [k for k, x in enumerate(extra) if not math.isfinite(x)]
            if bad:
                raise ValueError(f"cell_extra_current_a[{bad[0]}] (={extra[bad[0]]}) is not finite")
            if not any(extra):
                extra = None
        if self._last_now_s is not None and 0.0 <= now_s - self._last_now_s < cfg.min_interval_s:
            return self._report
        dt = 0.0 if self._last_now_s is None else now_s - self._last_now_s
        dt = max(dt, 0.0)  # a clock that went backwards: treat as no time passed
        self._last_now_s = now_s

        # Pack current: known when present, finite and fresh.
        i_a = snapshot.current_a
        i_age = snapshot.current_age_s
        i_known = _finite(i_a) and (i_age is None or i_age <= cfg.stale_s)
        cur = float(i_a) if i_known and i_a is not None else 0.0
        # Time covered by the current sample; the rest of dt is a gap with unknown current. A
        # current known at both ends of the step is held across it (up to current_hold_s): a
        # step longer than stale_s is then not a gap (treating it as one would throw away the
        # charge of every step beyond stale_s and call the loss a zero-mean guess).
        prev_i = self._last_i
        hold_var = 0.0  # % of nominal capacity squared, common to every cell
        if not i_known:
            known_dt = 0.0
        elif prev_i is not None and dt <= cfg.current_hold_s:
            known_dt = dt
            # The path between the two samples is unknown: up to half the change each way.
            sd = 100.0 * abs(cur - prev_i) * dt / 2.0 / 3600.0 / self._q_nom_ah
            hold_var = sd * sd
        else:
            known_dt = min(dt, cfg.stale_s)
        gap_dt = dt - known_dt
        self._last_i = cur if i_known else None
        # Balancing currents flow whether or not the pack current is known (the plan ran).
        extra_dt = min(dt, cfg.current_hold_s)

        d_ah = cur * known_dt / 3600.0
        self._ah += d_ah
        if d_ah < 0.0:
            self._discharged_ah -= d_ah
        if gap_dt > 0.0:
            # Charge moved during a gap is unknown: no capacity sample may span it.
            self._forget_anchors()

        # Rest: a small current for long enough.
        q_nom = self._q_nom_ah
        resting = i_known and abs(cur) <= cfg.rest_current_c * q_nom
        if not resting:
            self._rest_since_s = None
        elif self._rest_since_s is None:
            self._rest_since_s = now_s - known_dt
            self._rest_epoch += 1
        # One recalibration per completed rest_s of a rest: (rest number, multiple of rest_s).
        rest_id = -1
        if resting and self._rest_since_s is not None:
            n_rest = int((now_s - self._rest_since_s) // cfg.rest_s) if cfg.rest_s > 0 else 1
            if n_rest >= 1:
                rest_id = self._rest_epoch * 1_000_000 + min(n_rest, 999_999)
        rested = rest_id >= 0

        # The cell sensors only (a balancing board's sensor says nothing of a cell's OCV).
        temps = cell_temps(snapshot.cell_temp_c, self._cell_sensors)
        m = len(temps)
        volts = snapshot.cell_voltage_v
        ages = snapshot.cell_voltage_age_s
        t_snap = snapshot.t_s
        ocv = chem.ocv
        tau = chem.tau1_s
        a = math.exp(-known_dt / tau) if known_dt > 0.0 else 1.0
        a_gap = math.exp(-gap_dt / tau) if gap_dt > 0.0 else 1.0
        drift = cfg.count_drift_pct_per_sqrt_h
        q_drift = drift * drift * dt / 3600.0
        gain = cfg.current_gain_sigma_pct / 100.0
        # Offset: systematic, % of capacity per step (grows linearly, like the error it models).
        offset_pct = 100.0 * cfg.current_offset_sigma_c * dt / 3600.0
        extra_err = cfg.extra_current_sigma_pct / 100.0
        bias_floor_v = cfg.load_bias_mv / 1000.0
        bias_frac = cfg.load_bias_fraction
        bias_pct_c = cfg.load_bias_pct_per_c
        rc_l, sc_l, si_l, cell_ah_l = self._rc, self._sc, self._si, self._cell_ah
        sg_l, sx_l = self._sg, self._sx
        sb_l = self._sb
        cap_var_l = self._cap_var
        r_load = (cfg.voltage_sigma_mv / 1000.0) ** 2
        model_err = cfg.model_error_fraction
        r_rest = (cfg.rest_voltage_sigma_mv / 1000.0) ** 2
        min_slope = cfg.min_ocv_slope_mv_per_pct / 1000.0
        v_lo = chem.min_v - 0.5
        v_hi = chem.max_v + 0.5
        full_v = chem.max_v - cfg.full_voltage_margin_v
        full_i = cfg.full_current_c * q_nom
        step_i = cfg.r0_min_step_c * q_nom
        conf_var = cfg.confident_sigma_pct**2
        r1_nom_25 = chem.r1_ohm(q_nom)
        soc_l, v1_l, p00_l, p01_l, p11_l = self._soc, self._v1, self._p00, self._p01, self._p11
        cap_l, r0_l = self._cap, self._r0_25

        stale_s = cfg.stale_s
        step_dt = cfg.r0_max_step_dt_s
        r0_gain = cfg.r0_gain
        r0_nom_lo = 0.2 * chem.r0_ohm(q_nom)
        r0_nom_hi = 5.0 * chem.r0_ohm(q_nom)
        # Per sensor, not per cell: a sensor covers n/m cells.
        sensor_t = [t if t is not None and math.isfinite(t) else _REF_TEMP_C for t in temps]
        sensor_r = [chem.r_temp_factor(t) for t in sensor_t]
        last_v_t, last_v, last_v_i = self._last_v_t, self._last_v, self._last_v_i

        for k in range(n):
            j = k * m // n
            temp_c = sensor_t[j] if m else _REF_TEMP_C
            r_scale = sensor_r[j] if m else 1.0
            v = volts[k]
            v_ok = v is not None and math.isfinite(v) and v_lo <= v <= v_hi
            if v_ok and v is not None:
                age = ages[k]
                rx_t = t_snap - (age if age is not None else 0.0)
                fresh = rx_t > last_v_t[k] and (age is None or age <= stale_s)
            else:
                fresh = False
            r0 = r0_l[k] * r_scale
            x_a = extra[k] if extra is not None else 0.0
            cur_k = cur + x_a  # this cell's current
            x_ah = x_a * extra_dt / 3600.0

            if not self._init[k]:
                if fresh and v is not None:
                    self._init_cell(k, v, cur_k if i_known else 0.0, r0, temp_c, i_known)
                    last_v_t[k] = rx_t
                    last_v[k] = v
                    last_v_i[k] = cur_k if i_known else _NAN
                continue

            # --- predict -------------------------------------------------------------
            cap = cap_l[k]
            d_pct = 100.0 * d_ah / cap
            x_pct = 100.0 * x_ah / cap
            soc = soc_l[k] + d_pct + x_pct
            if x_ah != 0.0:
                cell_ah_l[k] += x_ah
            r1 = r1_nom_25 * r_scale
            v1 = v1_l[k] * a + r1 * (1.0 - a) * cur_k
            # Process noise, by kind (see __init__): the total goes into the filter, the split
            # tells what cell-to-cell differences are worth.
            rc0, sc0, si0, sg0, sx0 = rc_l[k], sc_l[k], si_l[k], sg_l[k], sx_l[k]
            sb = sb_l[k]
            rc = rc0 + q_drift + hold_var * (q_nom / cap) ** 2
            sc = sc0 + offset_pct * (q_nom / cap)
            sg = sg0 + gain * d_pct
            si = si0 + (d_pct + x_pct) * math.sqrt(cap_var_l[k]) / cap
            sx = sx0 + extra_err * x_pct
            p00 = (
                p00_l[k]
                + (rc - rc0)
                + (sc * sc - sc0 * sc0)
                + (sg * sg - sg0 * sg0)
                + (si * si - si0 * si0)
                + (sx * sx - sx0 * sx0)
            )
            p01 = p01_l[k] * a
            p11 = p11_l[k] * a * a + 1e-8 * dt
            if gap_dt > 0.0:
                # Unknown current for gap_dt: its charge is a zero-mean guess with this spread.
                sd = 100.0 * cfg.gap_current_c * gap_dt / 3600.0 * (q_nom / cap)
                p00 += sd * sd
                rc += sd * sd
                v1 *= a_gap
                p01 *= a_gap
                p11 = p11 * a_gap * a_gap + (r1 * cfg.gap_current_c * q_nom) ** 2 * (
                    1.0 - a_gap * a_gap
                )

            # --- correct -------------------------------------------------------------
            if fresh and i_known and v is not None:
                slope = ocv.slope(soc)
                # At rest the relaxed voltage is the OCV: one recalibration per rest_s of rest
                # (repeating it every sample would count correlated errors as independent).
                use_rest = rested and self._rest_used[k] != rest_id
                if slope >= min_slope and (use_rest or not resting):
                    h0 = slope
                    if use_rest and sb > 0.0:
                        # A relaxed voltage carries no load bias: let the filter weigh it
                        # against everything the estimate may be off by.
                        p00 += sb * sb
                        rc += sb * sb
                        sb = 0.0
                    y = v - (chem.ocv_voltage(soc, temp_c) + v1 + r0 * cur_k)
                    if use_rest:
                        r_meas = r_rest
                    else:
                        # The circuit misses part of the polarisation (diffusion): the error
                        # grows with the current.
                        pol = model_err * (r0 + r1) * cur_k
                        r_meas = r_load + pol * pol
                    ph0 = h0 * p00 + p01
                    ph1 = h0 * p01 + p11
                    s = h0 * ph0 + ph1 + r_meas
                    k0 = ph0 / s
                    k1 = ph1 / s
                    soc += k0 * y
                    v1 += k1 * y
                    p00 -= k0 * ph0
                    p01 -= k0 * ph1
                    p11 -= k1 * ph1
                    # The prior error (every part of it) survives scaled by 1 - k0 * h0; what the
                    # voltage adds (its noise) is the cell's own.
                    g = 1.0 - k0 * h0
                    rc *= g * g
                    ag = abs(g)
                    sc, sg, si, sx = sc * ag, sg * ag, si * ag, sx * ag
                    f = _fit(rc, (sc, sg, si, sx), p00)
                    if f < 1.0:
                        rc *= f
                        f = math.sqrt(f)
                        sc, sg, si, sx = sc * f, sg * f, si * f, sx * f
                    # A constant bias b in the measurement leaves g * e + (1 - g) * b: under
                    # load the whole measurement error may be such a bias (model error).
                    sb *= abs(g)
                    if not use_rest:
                        bias_v = bias_floor_v + bias_frac * abs((r0 + r1) * cur_k)
                        bias = max(bias_v / h0, bias_pct_c * abs(cur_k) / q_nom)
                        sb += (1.0 - abs(g)) * bias
                if use_rest:
                    self._rest_used[k] = rest_id
                    if slope >= min_slope and p00 + sb * sb <= conf_var:
                        soc = self._anchor(k, min(100.0, max(0.0, soc)), p00)
                # R0 from a current step answered by a voltage step.
                lv_i = last_v_i[k]
                di = cur_k - lv_i
                if abs(di) >= step_i and rx_t - last_v_t[k] <= step_dt and math.isfinite(lv_i):
                    sample = (v - last_v[k]) / di / r_scale
                    if r0_nom_lo <= sample <= r0_nom_hi:
                        r0_l[k] += r0_gain * (sample - r0_l[k])
                # Full: upper voltage with a tapered charge current.
                if v >= full_v and cur > 0.0 and cur_k <= full_i:
                    soc = 100.0
                    sb = 0.0
                    if p00 > 0.25:
                        f = 0.25 / p00
                        rc *= f
                        f = math.sqrt(f)
                        sc, sg, si, sx = sc * f, sg * f, si * f, sx * f
                        p00 = 0.25
                    p01 = 0.0
                    if not self._full_latched[k]:
                        self._full_latched[k] = True
                        self._anchor(k, 100.0, p00)
                elif cur < 0.0:
                    self._full_latched[k] = False
                last_v_t[k] = rx_t
                last_v[k] = v
                last_v_i[k] = cur_k
            elif fresh:
                last_v_t[k] = rx_t
                last_v[k] = v if v is not None else _NAN
                last_v_i[k] = _NAN

            # Keep the covariance a covariance (rounding) and the SoC in range.
            # 50 % sigma is knowing nothing: no need to grow further.
            if p00 > 2500.0:
                f = 2500.0 / p00
                rc *= f
                f = math.sqrt(f)
                sc, sg, si, sx = sc * f, sg * f, si * f, sx * f
            p00 = min(max(p00, 1e-6), 2500.0)
            rc_l[k], sc_l[k], si_l[k], sg_l[k], sx_l[k] = rc, sc, si, sg, sx
            sb_l[k] = min(sb, 50.0)
            p11 = max(p11, 1e-12)
            lim = math.sqrt(p00 * p11)
            if p01 > lim:
                p01 = lim
            elif p01 < -lim:
                p01 = -lim
            soc_l[k] = 0.0 if soc < 0.0 else (100.0 if soc > 100.0 else soc)
            v1_l[k] = v1
            p00_l[k] = p00
            p01_l[k] = p01
            p11_l[k] = p11

        self._report = self.report()
        return self._report

    def report(self) -> SocReport | None:
        """The current estimate, or ``None`` while some cell has not had a valid voltage."""
        if not all(self._init):
            return None
        q_nom = self._q_nom_ah
        r_scale = 1000.0
        rel = self._relative_sigma()
        cells = tuple(
            CellEstimate(
                soc_pct=self._soc[k],
                soc_sigma_pct=min(50.0, math.sqrt(self._p00[k] + self._sb[k] ** 2)),
                capacity_ah=self._cap[k],
                resistance_mohm=self._r0_25[k] * r_scale,
                soc_rel_sigma_pct=min(50.0, rel[k]),
                capacity_sigma_ah=math.sqrt(self._cap_var[k]),
            )
            for k in range(self._n)
        )
        socs = self._soc
        lo, hi = min(socs), max(socs)
        return SocReport(
            soc_pct=pack_soc_pct(lo, hi),
            soc_mean_pct=math.fsum(socs) / self._n,
            soh_pct=100.0 * min(self._cap) / q_nom,
            cells=cells,
        )

    def relative_sigma_pct(self) -> tuple[float, ...] | None:
        """Each cell's SoC uncertainty relative to the rest of the string (1 sigma, %).

        In a series string one current flows through every cell, so the count's errors (sensor
        offset and gain, gaps, the time the gateway was down) move every cell's estimate alike:
        they are in ``soc_sigma_pct`` (what the absolute SoC is worth) but cancel in cell-to-cell
        differences. What remains is each cell's own: its start, its capacity error, the voltage
        noise of its corrections, the tolerance of its balancing current, and the part of the
        common error that corrections removed from some cells and not from others (taken against
        the median cell, as an upper bound ``|common_k - common_median|``). This is what a
        balancing decision (a cell's charge above the others) should be weighed against.
        ``None`` while some cell has not had a valid voltage.
        """
        if not all(self._init):
            return None
        return tuple(self._relative_sigma())

    def _relative_sigma(self) -> list[float]:
        """``relative_sigma_pct`` without the initialisation check."""
        # The model bias under load is counted as common: every cell sees the same current
        # through similar cells (cells at other SoCs differ, which the median term covers).
        sb2 = [b * b for b in self._sb]
        total = [p + b for p, b in zip(self._p00, sb2, strict=True)]
        common = [
            rc + sc * sc + sg * sg + b
            for rc, sc, sg, b in zip(self._rc, self._sc, self._sg, sb2, strict=True)
        ]
        ref = sorted(common)[self._n // 2]
        out = []
        for k in range(self._n):
            own = max(0.0, total[k] - common[k])
            out.append(math.sqrt(min(total[k], own + abs(common[k] - ref))))
        return out

    def export_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-friendly plain values."""
        return {
            "version": STATE_VERSION,
            "chemistry": self.chemistry.name,
            "cells": self._n,
            "nominal_capacity_ah": self._q_nom_ah,
            "initialised": list(self._init),
            "soc_pct": [_json_float(x) for x in self._soc],
            "soc_var": [p + b * b for p, b in zip(self._p00, self._sb, strict=True)],
            "soc_var_common": [
                min(p, rc + sc * sc + sg * sg) + b * b
                for p, rc, sc, sg, b in zip(
                    self._p00, self._rc, self._sc, self._sg, self._sb, strict=True
                )
            ],
            "v1_v": list(self._v1),
            "cov_soc_v1": list(self._p01),
            "v1_var": list(self._p11),
            "capacity_ah": list(self._cap),
            "capacity_var": list(self._cap_var),
            "r0_ohm_25c": list(self._r0_25),
            "cycles": self.cycles,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from ``export_state`` output (a previous run of the same pack).

        The SoC variance grows by ``restore_sigma_pct`` because the pack may have moved while we
        were down; the RC voltage restarts at zero.

        Raises:
            ValueError: the state is of another version, cell count or chemistry, or malformed.
                Nothing is changed then.
        """
        if not isinstance(state, dict):
            raise ValueError("state must be a mapping")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"state version (={state.get('version')!r}) is not {STATE_VERSION}")
        if state.get("chemistry") != self.chemistry.name:
            raise ValueError(
                f"state chemistry (={state.get('chemistry')!r}) is not {self.chemistry.name!r}"
            )
        n = self._n
        if state.get("cells") != n:
            raise ValueError(f"state cell count (={state.get('cells')!r}) is not {n}")
        q_nom = self._q_nom_ah
        q_state = state.get("nominal_capacity_ah")
        if not isinstance(q_state, int | float) or not math.isclose(q_state, q_nom, rel_tol=1e-9):
            # Other cells (or a corrected rating): their learned capacities are not these.
            raise ValueError(f"state nominal_capacity_ah (={q_state!r}) is not {q_nom}")

        def vec(key: str, lo: float, hi: float, allow_nan: bool = False) -> list[float]:
            raw = state.get(key)
            if not isinstance(raw, list) or len(raw) != n:
                raise ValueError(f"state {key} must be a list of {n} numbers")
            out: list[float] = []
            for j, x in enumerate(raw):
                if x is None and allow_nan:
                    out.append(_NAN)
                    continue
                if isinstance(x, bool) or not isinstance(x, int | float):
                    raise ValueError(f"state {key}[{j}] (={x!r}) is not a number")
                xf = float(x)
                if not (lo <= xf <= hi):
                    raise ValueError(f"state {key}[{j}] (={xf}) is outside {lo}..{hi}")
                out.append(xf)
            return out

        init_raw = state.get("initialised")
        if not isinstance(init_raw, list) or len(init_raw) != n:
            raise ValueError(f"state initialised must be a list of {n} booleans")
        if not all(isinstance(b, bool) for b in init_raw):
            raise ValueError("state initialised must hold booleans")
        soc = vec("soc_pct", 0.0, 100.0, allow_nan=True)
        soc_var = vec("soc_var", 0.0, 1e6)
        # Older states have no split: all individual (the cautious reading for differences).
        if "soc_var_common" in state:
            soc_var_common = vec("soc_var_common", 0.0, 1e6)
        else:
            soc_var_common = [0.0] * n
        v1 = vec("v1_v", -5.0, 5.0)
        p01 = vec("cov_soc_v1", -1e6, 1e6)
        p11 = vec("v1_var", 0.0, 1e3)
        cap = vec("capacity_ah", 0.2 * q_nom, 2.0 * q_nom)
        cap_var = vec("capacity_var", 0.0, (10.0 * q_nom) ** 2)
        r0 = vec("r0_ohm_25c", 0.0, 10.0)
        cycles = state.get("cycles")
        if isinstance(cycles, bool) or not isinstance(cycles, int | float) or not cycles >= 0:
            raise ValueError(f"state cycles (={cycles!r}) must be a number >= 0")
        for j in range(n):
            if init_raw[j] and not math.isfinite(soc[j]):
                raise ValueError(f"state soc_pct[{j}] is missing for an initialised cell")

        extra = self.config.restore_sigma_pct**2
        self._init = [bool(b) for b in init_raw]
        self._soc = soc
        self._p00 = [min(2500.0, p + extra) for p in soc_var]
        # While we were down the pack moved for every cell alike: the added part is common.
        self._rc = [
            min(c, p) + extra if p + extra <= 2500.0 else (min(c, p) + extra) * 2500.0 / (p + extra)
            for c, p in zip(soc_var_common, soc_var, strict=True)
        ]
        self._sc = [0.0] * n
        self._si = [0.0] * n
        self._sg = [0.0] * n
        self._sx = [0.0] * n
        self._sb = [0.0] * n
        self._cell_ah = [0.0] * n
        self._last_i = None
        self._v1 = [0.0 * x for x in v1]  # relaxed while we were down
        self._p01 = [0.0 * x for x in p01]
        self._p11 = [max(p, 1e-12) for p in p11]
        self._cap = cap
        self._cap_var = cap_var
        self._r0_25 = r0
        self._cycles0 = float(cycles)
        self._discharged_ah = 0.0
        self._report = self.report()
        self._last_v_t = [-math.inf] * n
        self._last_v = [_NAN] * n
        self._last_v_i = [_NAN] * n
        self._forget_anchors()

    # --- internals ----------------------------------------------------------------------

    def _init_cell(
        self, k: int, v: float, cur: float, r0: float, temp_c: float, i_known: bool
    ) -> None:
        """Start cell ``k`` from the OCV of its first valid voltage."""
        chem = self.chemistry
        ocv_v = v - r0 * cur
        soc = chem.ocv_soc(ocv_v, temp_c)
        slope = max(chem.ocv.slope(soc), 1e-5)
        # Voltage error: sensor and polarisation we cannot see (half the IR drop), plus an
        # unknown current's IR drop when the current is not known yet.
        err_v = self.config.voltage_sigma_mv / 1000.0 + 0.5 * abs(r0 * cur)
        if not i_known:
            err_v += r0 * self.config.gap_current_c * self._q_nom_ah
        # The local slope alone is not enough: a curve with flat stretches between steep ones
        # (LFP) maps a voltage +-2 sigma onto a wide SoC range even where it is locally steep.
        # Half that range (the +-2 sigma span over 4) is the start's sigma, if wider.
        lo = chem.ocv_soc(ocv_v - 2.0 * err_v, temp_c)
        hi = chem.ocv_soc(ocv_v + 2.0 * err_v, temp_c)
        sigma = min(50.0, max(1.0, err_v / slope, (hi - lo) / 4.0))
        self._init[k] = True
        self._soc[k] = soc
        self._v1[k] = 0.0
        self._p00[k] = sigma * sigma
        self._p01[k] = 0.0
        # The start is the cell's own voltage reading: all of it individual.
        self._rc[k] = 0.0
        self._sc[k] = 0.0
        self._si[k] = 0.0
        self._sg[k] = 0.0
        self._sx[k] = 0.0
        self._sb[k] = 0.0
        r1 = chem.r1_ohm(self._q_nom_ah)
        self._p11[k] = (r1 * max(abs(cur), 0.05 * self._q_nom_ah)) ** 2

    def _anchor(self, k: int, soc: float, var: float) -> float:
        """Cell ``k`` is confidently at ``soc``: measure capacity against the last anchor."""
        a_soc = self._anchor_soc[k]
        if math.isfinite(a_soc):
            d_soc = soc - a_soc
            if abs(d_soc) >= self.config.capacity_min_delta_pct:
                d_ah = self._ah + self._cell_ah[k] - self._anchor_ah[k]
                sample = d_ah / (d_soc / 100.0)
                q_nom = self._q_nom_ah
                if 0.5 * q_nom <= sample <= 1.5 * q_nom:
                    # Relative error of the sample: both anchors' SoC errors over the distance,
                    # and the sensor gain error.
                    rel_var = (var + self._anchor_var[k]) / (d_soc * d_soc) + (
                        self.config.current_gain_sigma_pct / 100.0
                    ) ** 2
                    s_var = rel_var * sample * sample
                    c_var = self._cap_var[k]
                    kg = c_var / (c_var + s_var)
                    self._cap[k] += kg * (sample - self._cap[k])
                    self._cap_var[k] = (1.0 - kg) * c_var + (0.002 * q_nom) ** 2
        self._anchor_soc[k] = soc
        self._anchor_ah[k] = self._ah + self._cell_ah[k]
        self._anchor_var[k] = var
        return soc

    def _forget_anchors(self) -> None:
        n = self._n
        self._anchor_soc = [_NAN] * n
        self._anchor_ah = [_NAN] * n
        self._anchor_var = [_NAN] * n


def _fit(rc: float, sigmas: tuple[float, ...], p00: float) -> float:
    """Factor (<= 1) on the variance parts that keeps them within var(soc) after a correction
    (the link to v1 can take a little more than the scaling of each part)."""
    total = rc + math.fsum(x * x for x in sigmas)
    return p00 / total if total > p00 > 0.0 else 1.0


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
