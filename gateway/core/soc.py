"""Per-cell state of charge, capacity and resistance estimation. Pure and clock-injected.

Each cell runs a two-state extended Kalman filter (SoC, v1) over an equivalent circuit with a
fast RC pair in the filter and a slow one (diffusion over long loads; ``R2`` from the chemistry,
0 for the built-in ones) driven by the count::

    v_cell = OCV(soc, T) + v1 + v2 + R0 * i     (i > 0 charging)
    soc'   = soc + 100 * i * dt / (3600 * Q)    (coulomb counting: the backbone)
    v1'    = a * v1 + R1 * (1 - a) * i,   a = exp(-dt / tau1)
    v2     = R2 * w2,  w2' = a2 * w2 + (1 - a2) * i,   a2 = exp(-dt / tau2)

``SocEstimator`` owns one ``CellState`` per cell and calls the per-cell functions of
``gateway.core.soc_cell`` (predict, correct, recalibrate, learn; each tested alone). The count
carries the estimate; a voltage is judged over the plausible interval (estimate +- k sigma) with
the OCV hysteresis allowed for: on the flat middle of an LFP curve the count is trusted and the
variance grows, a voltage that lies beyond the interval overrides the estimate (a restored or
drifted SoC), and after a rest of ``rest_s`` the relaxed voltage recalibrates. A charge that ends
at the upper voltage with a tapered current sets the cell to 100 %. Corrections under load are
weighed by how well the model predicts (innovation-based adaptive noise) and held within what
the count allows (``SocEstimator``'s docstring states the rule).

Capacity (SoH) per cell comes from the charge counted between two confident SoC points (a rest
recalibration on a steep part of the curve, or full); R0 and R1 per cell from recursive least
squares with forgetting (referred to 25 degC with the chemistry's temperature factor, so that
they track ageing rather than the weather). Everything is plain Python floats, so a 512-cell
pack stepped at 10 Hz stays within a few percent of a core (see ``bench/soc_accuracy.py``).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field

from gateway.core.chemistry import Chemistry
from gateway.core.config import Section
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import CellEstimate, PackSnapshot, SocReport
from gateway.core.pack import PackConfig, cell_temps
from gateway.core.soc_cell import (
    CellState,
    StepInputs,
    Tuning,
    anchor,
    correct,
    forget_anchor,
    init_from_voltage,
    learn_resistance,
    predict,
    recalibrate_full,
    recalibrate_rest,
    rls_start,
    tidy,
)
from gateway.core.soc_window import StepWindow

__all__ = ["STATE_VERSION", "SocConfig", "SocEstimator", "pack_soc_pct"]

STATE_VERSION = 1
"""Version of the dict written by ``SocEstimator.export_state``."""

_NAN = math.nan
_REF_TEMP_C = 25.0
_NO_ESTIMATE = CellEstimate(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
_DEFAULT_TIMEOUTS = TimeoutsConfig()


class SocConfig(Section):
    """State estimator settings."""

    ocv_table: str | None = None
    """Path of a user OCV table (CSV: SoC in % or fraction, OCV in V or mV, with or without a
    header; ``check-config`` says how it was read); default: the chemistry's built-in table."""
    voltage_sigma_mv: float = Field(default=12.0, gt=0)
    """Voltage error under load: sensor noise plus what the circuit model misses (1 sigma)."""
    model_error_fraction: float = Field(default=1.0, ge=0)
    """Circuit-model error under load as a fraction of the modelled polarisation (R0+R1)*I."""
    rc_sigma_fraction: float = Field(default=0.0, ge=0)
    """The RC voltage's own uncertainty under load, as a fraction of R1*I (a state noise that
    lasts about tau1): polarisation the circuit does not hold (diffusion over long loads) is
    taken up by the RC voltage instead of the SoC. Off by default: it helped the tuning cells
    and cells derived from them, and made three of four held-out cells worse (see
    docs/PERFORMANCE.md, "State of charge: cross-validation")."""
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
    """Below this OCV slope (at the estimate and on average over the estimate +- k sigma) a
    voltage under load is not used by the Kalman update: the count is trusted (flat LFP
    middle)."""
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
    may be stepped less often than the current times out); the change between the two samples
    counts as uncertainty. Longer steps, or a current unknown at either end, count as a gap."""
    extra_current_sigma_pct: float = Field(default=10.0, ge=0)
    """Uncertainty of the per-cell balancing currents passed to ``step`` (bleed resistor and
    voltage tolerance), % of the charge they move (systematic, per cell)."""
    gap_current_c: float = Field(default=0.2, ge=0)
    """Current (C-rate, 1 sigma) assumed while the current is unknown (stale, missing, a gap)."""
    stale_s: float | None = Field(default=None, gt=0)
    """Deprecated: set ``timeouts.cell_voltage_timeout_s`` and ``timeouts.current_timeout_s``
    (a current is counted for the longer of the two). Until then, one age for both, in force
    while neither of those keys is set."""
    full_current_c: float = Field(default=0.05, gt=0)
    """A charge current below this C-rate at the upper voltage means the cell is full."""
    full_voltage_margin_v: float = Field(default=0.015, ge=0)
    """A cell within this margin of the chemistry's upper voltage counts as at the upper voltage."""
    confident_sigma_pct: float = Field(default=2.0, gt=0)
    """A SoC known to within this (1 sigma) at a rest or at full anchors a capacity measurement."""
    capacity_min_delta_pct: float = Field(default=30.0, gt=0, le=100)
    """Smallest SoC difference between two anchors that yields a capacity sample."""
    rls_memory_s: float = Field(default=7200.0, gt=0)
    """Memory of the online resistance identification (R0, R1 by recursive least squares): the
    forgetting factor per step is ``exp(-dt / rls_memory_s)``."""
    rls_min_current_c: float = Field(default=0.03, ge=0)
    """Identification uses samples where the current differs from its RC-filtered value by at
    least this (C-rate): a transient. In a steady current there is no resistance to learn."""
    resistance_factor_min: float = Field(default=0.4, gt=0)
    """Identified R0 and R1 stay at or above this times the chemistry's values ..."""
    resistance_factor_max: float = Field(default=2.5, gt=0)
    """... and at or below this times them."""
    ocv_hysteresis_mv: float | None = Field(default=None, ge=0)
    """Half the OCV hysteresis (charge vs discharge branch), mV: a rested voltage is the OCV only
    to within it. ``None``: the chemistry's (LFP 10 mV, NMC 3 mV)."""
    plateau_k_sigma: float = Field(default=3.0, gt=0)
    """A voltage is judged over the estimate +- this many sigma: it is used when it is informative
    over that interval, and it overrides the estimate when it lies beyond it."""
    innovation_window_s: float = Field(default=600.0, gt=0)
    """Time over which the innovations (voltage less the model's prediction) are averaged for the
    adaptive measurement noise and the consistency test."""
    count_consistency_z: float = Field(default=2.0, gt=0)
    """Corrections under load may move the estimate from the count by at most this many of the
    count's own sigmas, unless the innovations show a SoC error (``consistency_bias``)."""
    consistency_bias: float = Field(default=0.2, gt=0)
    """Mean normalised innovation (while charging and while discharging, same sign) beyond which
    the count counts as contradicted."""
    min_interval_s: float = Field(default=0.05, ge=0, le=10)
    """Steps closer together than this return the last report (the control loop may step on every
    frame; the count loses nothing, the filter sees the latest value of each cell)."""
    restore_sigma_pct: float = Field(default=5.0, ge=0)
    """Uncertainty added to a restored SoC (the pack may have moved while we were down)."""
    cells_per_step: int = Field(default=64, ge=1, le=100_000)
    """Most cells whose voltage is weighed in one step. A larger pack is weighed in groups of
    this many, one group per step, round-robin (a 512-cell pack: each cell every 8th step); the
    steps between are counted exactly for every cell (``gateway.core.soc_window``). Bounds the
    step's cost; a pack of at most this many cells is weighed whole every step."""


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
    """Per-cell SoC, capacity and resistance estimator for one pack.

    One ``CellState`` per cell (``gateway.core.soc_cell``); each step computes what is common to
    the string once (``StepInputs``) and then, per cell: ``predict`` (the count), ``learn``
    (R0/R1 identification), ``recalibrate`` (after a rest, at full) or ``correct`` (under load).

    Never worse than counting, the rule: a correction under load may move a cell's estimate away
    from its count since the last trusted point (start, rested voltage, full) by at most
    ``count_consistency_z`` of the count's own sigmas, unless the innovations' mean, taken while
    charging and while discharging, points the same way beyond ``consistency_bias`` (evidence of
    a SoC error that a wrong resistance or unmodelled diffusion cannot give: those follow the
    current's sign). A rested voltage, or a voltage that lies beyond ``plateau_k_sigma`` of the
    estimate once its error band and the OCV hysteresis are allowed for, is a trusted point.

    Attributes:
        cells: one ``CellState`` per cell, in cell order (read them for diagnostics; the
            estimator owns and updates them).

    Args:
        config: estimator settings.
        pack: the pack (cell count, nominal capacity).
        chemistry: OCV curve and nominal circuit parameters (possibly with a user OCV table).

    Raises:
        ValueError: ``chemistry`` is not the pack's.
    """

    def __init__(
        self,
        config: SocConfig,
        pack: PackConfig,
        chemistry: Chemistry,
        timeouts: TimeoutsConfig = _DEFAULT_TIMEOUTS,
    ) -> None:
        if chemistry.name != pack.chemistry:
            raise ValueError(
                f"chemistry (={chemistry.name!r}) is not the pack's (={pack.chemistry!r})"
            )
        self.config = config
        self.pack = pack
        # How old a cell voltage and a current may be to be used (``timeouts``).
        self._voltage_age_s, self._current_age_s = timeouts.soc_ages_s(config.stale_s)
        self._cell_sensors = pack.cell_sensors() if pack.board_sensors else None
        self.chemistry = chemistry
        n = pack.cells
        self._n = n
        self._q_nom_ah = pack.capacity_ah
        self._tune = _tuning(config, chemistry)
        self._r0_nom = chemistry.r0_ohm(pack.capacity_ah)
        self._r1_nom = chemistry.r1_ohm(pack.capacity_ah)
        self._r2_nom = chemistry.r2_ohm(pack.capacity_ah)
        self._r_temp_factor = _r_temp_factor(chemistry)
        self._sensor_of: list[int] = []  # each cell's temperature sensor (for _sensor_m sensors)
        self._sensor_m = -1
        self.cells: list[CellState] = [self._new_cell() for _ in range(n)]
        # Pack-level state: one current flows through every series cell.
        self._ah = 0.0  # net charge counted since start (charge positive)
        self._discharged_ah = 0.0
        self._cycles0 = 0.0  # cycles restored from a previous run
        self._last_now_s: float | None = None
        self._last_i: float | None = None  # the pack current at the last step, if known then
        self._rest_since_s: float | None = None
        self._rest_epoch = 0  # counts rests begun
        self._report: SocReport | None = None
        # Sliced estimation: groups of cells_per_step cells, one group weighed per step.
        per = min(n, config.cells_per_step) if n else 1
        self._per_step = per
        self._windows = [StepWindow() for _ in range(max(1, -(-n // per)))]
        self._turn = 0
        self._x_as = [0.0] * n  # balancing charge (A s) per cell since its group was weighed
        self._no_sensor = [0] * n
        # The report's figures per cell, refreshed for the cells weighed (``_refresh``).
        self._all_init = False
        self._total = [0.0] * n
        self._common = [0.0] * n
        self._est: list[CellEstimate] = []

    def _new_cell(self) -> CellState:
        cap = self._q_nom_ah
        chem = self.chemistry
        cell = CellState(
            capacity_ah=cap,
            capacity_var=(0.1 * cap) ** 2,
            tau1_s=chem.tau1_s,
            tau2_s=chem.tau2_s,
        )
        rls_start(cell, self._r0_nom, self._r1_nom, self._r2_nom)
        return cell

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
        n = self._n
        if snapshot.cell_count != n:
            raise ValueError(f"snapshot has {snapshot.cell_count} cells, estimator {n}")
        extra = _check_extra(cell_extra_current_a, n)
        cfg = self.config
        if self._last_now_s is not None and 0.0 <= now_s - self._last_now_s < cfg.min_interval_s:
            return self._report
        step = self._step_inputs(snapshot, now_s)
        lo, hi, inputs, x_count = self._turn_window(step, extra)
        self._weigh(snapshot, step, inputs, lo, hi, extra, x_count)
        self._report = self._refresh(lo, hi)
        return self._report

    def _turn_window(
        self, step: StepInputs, extra: list[float] | None
    ) -> tuple[int, int, StepInputs, list[float] | None]:
        """This step's group of cells (round-robin) and the string's steps since it was weighed.

        Returns ``(lo, hi, inputs, x_count)``: the group is cells ``lo..hi-1``; ``inputs`` the
        window as one step; ``x_count`` the group's balancing currents over the window (their
        mean; this step's when the window is one step; ``None``: none).
        """
        windows = self._windows
        known_dt = step.known_dt_s
        a = math.exp(-known_dt / self.chemistry.tau1_s) if known_dt > 0.0 else 1.0
        for w in windows:
            w.add(step, a)
        g = self._turn
        self._turn = g + 1 if g + 1 < len(windows) else 0
        window = windows[g]
        sliced = window.steps > 1
        inputs = window.take()
        lo = g * self._per_step
        hi = min(self._n, lo + self._per_step)
        if len(windows) == 1:
            return lo, hi, inputs, extra
        x_as = self._x_as
        if extra is not None:
            edt = step.extra_dt_s
            self._x_as = x_as = [p + x * edt for p, x in zip(x_as, extra, strict=True)]
        x_count: list[float] | None
        if sliced:
            edt = inputs.extra_dt_s
            x_count = [x_as[k] / edt if edt > 0.0 else 0.0 for k in range(lo, hi)]
        else:
            x_count = extra[lo:hi] if extra is not None else None
        for k in range(lo, hi):
            x_as[k] = 0.0
        return lo, hi, inputs, x_count

    def _sensors(self, snapshot: PackSnapshot) -> tuple[list[float], list[float], list[int]]:
        """Per temperature sensor its value (25 degC when unknown) and resistance factor, and
        each cell's sensor: ``(sensor_t, sensor_r, of)``, cell ``k`` reads ``sensor_t[of[k]]``.
        The cell sensors only (a balancing board's sensor says nothing of a cell's OCV)."""
        temps = cell_temps(snapshot.cell_temp_c, self._cell_sensors)
        m = len(temps)
        if not m:
            return [_REF_TEMP_C], [1.0], self._no_sensor
        # Per sensor, not per cell: a sensor covers n/m cells.
        sensor_t = [t if t is not None and math.isfinite(t) else _REF_TEMP_C for t in temps]
        r_factor = self._r_temp_factor
        sensor_r = [r_factor(t) for t in sensor_t]
        # The sensor of each cell (k * m // n), the same for every step with m sensors.
        of = self._sensor_of
        n = self._n
        if len(of) != n or self._sensor_m != m:
            of = self._sensor_of = [k * m // n for k in range(n)]
            self._sensor_m = m
        return sensor_t, sensor_r, of

    def _weigh(
        self,
        snapshot: PackSnapshot,
        step: StepInputs,
        inputs: StepInputs,
        lo: int,
        hi: int,
        extra: list[float] | None,
        x_count: list[float] | None,
    ) -> None:
        """Advance cells ``lo..hi-1`` by ``inputs`` and weigh their latest voltages."""
        chem = self.chemistry
        tune = self._tune
        sensor_t, sensor_r, of = self._sensors(snapshot)
        volts = snapshot.cell_voltage_v
        ages = snapshot.cell_voltage_age_s
        t_snap = snapshot.t_s
        v_lo = chem.min_v - 0.5
        v_hi = chem.max_v + 0.5
        stale_s = self._voltage_age_s
        cur = step.current_a
        i_known = step.current_known
        isfinite = math.isfinite
        neg_inf = -math.inf
        cells = self.cells
        for k in range(lo, hi):
            cell = cells[k]
            v = volts[k]
            fresh = False
            rx_t = neg_inf
            if v is not None and isfinite(v) and v_lo <= v <= v_hi:
                age = ages[k]
                rx_t = t_snap - (age if age is not None else 0.0)
                fresh = rx_t > cell.last_v_t and (age is None or age <= stale_s)
            cur_k = cur + extra[k] if extra is not None else cur + 0.0
            j = of[k]
            if not cell.initialised:
                if fresh and v is not None:
                    i_k = cur_k if i_known else 0.0
                    init_from_voltage(
                        cell, chem, tune, v, i_k, sensor_t[j], i_known, self._q_nom_ah
                    )
                    cell.last_v_t = rx_t
                    cell.last_v = v
                    cell.last_v_i = cur_k if i_known else _NAN
                continue
            r_scale = sensor_r[j]
            predict(cell, inputs, tune, x_count[k - lo] if x_count is not None else 0.0, r_scale)
            if fresh and v is not None:
                if i_known:
                    self._weigh_voltage(cell, inputs, v, cur_k, sensor_t[j], r_scale)
                cell.last_v_t = rx_t
                cell.last_v = v
                cell.last_v_i = cur_k if i_known else _NAN
            tidy(cell)

    def _weigh_voltage(
        self,
        cell: CellState,
        inputs: StepInputs,
        v: float,
        cur_k: float,
        temp_c: float,
        r_scale: float,
    ) -> None:
        """Learn from and correct ``cell`` with a fresh voltage ``v`` at a known current."""
        chem = self.chemistry
        tune = self._tune
        learn_resistance(
            cell, chem, tune, inputs, v, cur_k, temp_c, r_scale, self._r0_nom, self._r1_nom
        )
        rest_id = inputs.rest_id
        if rest_id >= 0 and cell.rest_used != rest_id:
            # One recalibration per rest_s of rest (repeating it every sample would count
            # correlated errors as independent).
            cell.rest_used = rest_id
            recalibrate_rest(cell, chem, tune, v, cur_k, temp_c, r_scale)
            # A confident SoC at a rest where the OCV is steep is a capacity anchor.
            var = cell.p00 + cell.sb * cell.sb
            steep = chem.ocv.slope(cell.soc_pct) >= tune.min_slope_v_per_pct
            if steep and var <= tune.confident_var:
                anchor(cell, tune, inputs, cell.soc_pct, cell.p00)
        else:
            correct(cell, chem, tune, inputs, v, cur_k, temp_c, r_scale)
        cur = inputs.current_a
        cfg = self.config
        if v >= chem.max_v - cfg.full_voltage_margin_v and cur > 0.0:
            if cur_k <= cfg.full_current_c * self._q_nom_ah:
                recalibrate_full(cell)
                if not cell.full_latched:
                    cell.full_latched = True
                    anchor(cell, tune, inputs, 100.0, cell.p00)
        elif cur < 0.0:
            cell.full_latched = False

    def _step_inputs(self, snapshot: PackSnapshot, now_s: float) -> StepInputs:
        """What this step means for every cell: time, current, charge, rest (pack state moves)."""
        cfg = self.config
        dt = 0.0 if self._last_now_s is None else now_s - self._last_now_s
        dt = max(dt, 0.0)  # a clock that went backwards: treat as no time passed
        self._last_now_s = now_s
        i_a = snapshot.current_a
        i_age = snapshot.current_age_s
        i_known = _finite(i_a) and (i_age is None or i_age <= self._current_age_s)
        cur = float(i_a) if i_known and i_a is not None else 0.0
        # Time covered by the current sample; the rest of dt is a gap with unknown current. A
        # current known at both ends of the step is held across it (up to current_hold_s): a
        # step longer than the current's age limit is then not a gap (treating it as one would
        # throw away the charge of every step beyond it and call the loss a zero-mean guess).
        prev_i = self._last_i
        hold_var = 0.0
        if not i_known:
            known_dt = 0.0
        elif prev_i is not None and dt <= cfg.current_hold_s:
            known_dt = dt
            # The path between the two samples is unknown: up to half the change each way.
            sd = 100.0 * abs(cur - prev_i) * dt / 2.0 / 3600.0 / self._q_nom_ah
            hold_var = sd * sd
        else:
            known_dt = min(dt, self._current_age_s)
        gap_dt = dt - known_dt
        self._last_i = cur if i_known else None
        d_ah = cur * known_dt / 3600.0
        self._ah += d_ah
        if d_ah < 0.0:
            self._discharged_ah -= d_ah
        if gap_dt > 0.0:
            # Charge moved during a gap is unknown: no capacity sample may span it.
            for cell in self.cells:
                forget_anchor(cell)
        # Rest: a small current for long enough; one recalibration per completed rest_s.
        resting = i_known and abs(cur) <= cfg.rest_current_c * self._q_nom_ah
        if not resting:
            self._rest_since_s = None
        elif self._rest_since_s is None:
            self._rest_since_s = now_s - known_dt
            self._rest_epoch += 1
        rest_id = -1
        if resting and self._rest_since_s is not None:
            n_rest = int((now_s - self._rest_since_s) // cfg.rest_s) if cfg.rest_s > 0 else 1
            if n_rest >= 1:
                rest_id = self._rest_epoch * 1_000_000 + min(n_rest, 999_999)
        return StepInputs(
            dt_s=dt,
            known_dt_s=known_dt,
            gap_dt_s=gap_dt,
            current_a=cur,
            current_known=i_known,
            d_ah=d_ah,
            extra_dt_s=min(dt, cfg.current_hold_s),
            hold_var=hold_var,
            resting=resting,
            rest_id=rest_id,
            q_nom_ah=self._q_nom_ah,
            accumulated_ah=self._ah,
            rc_current_a=cur,
            gap_sq_s2=gap_dt * gap_dt,
        )

    def report(self) -> SocReport | None:
        """The current estimate, or ``None`` while some cell has not had a valid voltage."""
        return self._refresh(0, self._n)

    def _refresh(self, lo: int, hi: int) -> SocReport | None:
        """The report with the figures of cells ``lo..hi-1`` recomputed (the rest kept).

        Every cell's relative sigma is taken against the median cell's common variance; cells
        outside ``lo..hi`` keep the one they had when last weighed.
        """
        cells = self.cells
        n = self._n
        if not self._all_init:
            if not all(c.initialised for c in cells):
                return None
            self._all_init = True
            lo, hi = 0, n
        if len(self._est) != n:
            lo, hi = 0, n
        # One pass over the cells: the same figures as _relative_sigma and sigma_pct.
        total = self._total
        common = self._common
        for k in range(lo, hi):
            c = cells[k]
            total[k] = c.p00 + c.sb * c.sb
            common[k] = c.rc + c.sc * c.sc + c.sg * c.sg + c.sb * c.sb
        ref = sorted(common)[n // 2]
        sqrt = math.sqrt
        est = self._est
        if len(est) != n:
            est = self._est = [_NO_ESTIMATE] * n
        for k in range(lo, hi):
            c = cells[k]
            tot = total[k]
            com = common[k]
            own = tot - com
            own = own if own > 0.0 else 0.0  # max(0.0, own), NaN included
            rel = sqrt(min(tot, own + abs(com - ref)))
            # Positional (cheaper than keywords), in CellEstimate's field order
            # (test_report_fields_are_the_cell_states_own fails on a reorder).
            est[k] = CellEstimate(
                c.soc_pct,
                min(50.0, sqrt(tot)),
                c.capacity_ah,
                c.r0_ohm_25c * 1000.0,
                min(50.0, rel),
                sqrt(c.capacity_var),
                c.r1_ohm_25c * 1000.0,
                c.tau1_s,
            )
        socs = [e.soc_pct for e in est]
        lo_soc, hi_soc = min(socs), max(socs)
        return SocReport(
            soc_pct=pack_soc_pct(lo_soc, hi_soc),
            soc_mean_pct=math.fsum(socs) / n,
            soh_pct=100.0 * min([e.capacity_ah for e in est]) / self._q_nom_ah,
            cells=tuple(est),
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
        if not all(c.initialised for c in self.cells):
            return None
        return tuple(self._relative_sigma())

    def _relative_sigma(self) -> list[float]:
        """``relative_sigma_pct`` without the initialisation check."""
        # The model bias under load is counted as common: every cell sees the same current
        # through similar cells (cells at other SoCs differ, which the median term covers).
        total = [c.p00 + c.sb * c.sb for c in self.cells]
        common = [c.rc + c.sc * c.sc + c.sg * c.sg + c.sb * c.sb for c in self.cells]
        ref = sorted(common)[self._n // 2]
        out: list[float] = []
        for k in range(self._n):
            own = max(0.0, total[k] - common[k])
            out.append(math.sqrt(min(total[k], own + abs(common[k] - ref))))
        return out

    def export_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-friendly plain values."""
        cells = self.cells
        return {
            "version": STATE_VERSION,
            "chemistry": self.chemistry.name,
            "cells": self._n,
            "nominal_capacity_ah": self._q_nom_ah,
            "initialised": [c.initialised for c in cells],
            "soc_pct": [_json_float(c.soc_pct) for c in cells],
            "soc_var": [c.p00 + c.sb * c.sb for c in cells],
            "soc_var_common": [
                min(c.p00, c.rc + c.sc * c.sc + c.sg * c.sg) + c.sb * c.sb for c in cells
            ],
            "v1_v": [c.v1_v for c in cells],
            "cov_soc_v1": [c.p01 for c in cells],
            "v1_var": [c.p11 for c in cells],
            "capacity_ah": [c.capacity_ah for c in cells],
            "capacity_var": [c.capacity_var for c in cells],
            "r0_ohm_25c": [c.r0_ohm_25c for c in cells],
            "r1_ohm_25c": [c.r1_ohm_25c for c in cells],
            "r2_ohm_25c": [c.r2_ohm_25c for c in cells],
            "cycles": self.cycles,
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from ``export_state`` output (a previous run of the same pack).

        The SoC variance grows by ``restore_sigma_pct`` because the pack may have moved while we
        were down; the RC voltage restarts at zero. A restored SoC is not a trusted point: a
        rested voltage that contradicts it (``recalibrate_rest``) replaces it. States written
        before R1 was identified (no ``r1_ohm_25c``) start R1 from the chemistry.

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
        init_raw = state.get("initialised")
        if not isinstance(init_raw, list) or len(init_raw) != n:
            raise ValueError(f"state initialised must be a list of {n} booleans")
        if not all(isinstance(b, bool) for b in init_raw):
            raise ValueError("state initialised must hold booleans")
        soc = _vec(state, "soc_pct", n, 0.0, 100.0, allow_nan=True)
        soc_var = _vec(state, "soc_var", n, 0.0, 1e6)
        # Older states have no split: all individual (the cautious reading for differences).
        if "soc_var_common" in state:
            soc_var_common = _vec(state, "soc_var_common", n, 0.0, 1e6)
        else:
            soc_var_common = [0.0] * n
        _vec(state, "v1_v", n, -5.0, 5.0)
        _vec(state, "cov_soc_v1", n, -1e6, 1e6)
        p11 = _vec(state, "v1_var", n, 0.0, 1e3)
        cap = _vec(state, "capacity_ah", n, 0.2 * q_nom, 2.0 * q_nom)
        cap_var = _vec(state, "capacity_var", n, 0.0, (10.0 * q_nom) ** 2)
        r0 = _vec(state, "r0_ohm_25c", n, 0.0, 10.0)
        if "r1_ohm_25c" in state:
            r1 = _vec(state, "r1_ohm_25c", n, 0.0, 10.0)
        else:
            r1 = [self._r1_nom] * n
        if "r2_ohm_25c" in state:
            r2 = _vec(state, "r2_ohm_25c", n, 0.0, 10.0)
        else:
            r2 = [self._r2_nom] * n
        cycles = state.get("cycles")
        if isinstance(cycles, bool) or not isinstance(cycles, int | float) or not cycles >= 0:
            raise ValueError(f"state cycles (={cycles!r}) must be a number >= 0")
        for j in range(n):
            if init_raw[j] and not math.isfinite(soc[j]):
                raise ValueError(f"state soc_pct[{j}] is missing for an initialised cell")

        extra = self.config.restore_sigma_pct**2
        cells = []
        for j in range(n):
            cell = self._new_cell()
            lo, hi = self._r0_nom * 0.05, self._r0_nom * 20.0
            rls_start(
                cell, min(max(r0[j], lo), hi), min(max(r1[j], lo), hi * 2.0), min(r2[j], hi * 2.0)
            )
            cell.initialised = bool(init_raw[j])
            cell.soc_pct = soc[j]
            p = soc_var[j] + extra
            cell.p00 = min(2500.0, p)
            # While we were down the pack moved for every cell alike: the added part is common.
            common = min(soc_var_common[j], soc_var[j]) + extra
            cell.rc = common if p <= 2500.0 else common * 2500.0 / p
            cell.v1_v = 0.0  # relaxed while we were down
            cell.p11 = max(p11[j], 1e-12)
            cell.capacity_ah = cap[j]
            cell.capacity_var = cap_var[j]
            cell.restart_count(cell.p00)
            cells.append(cell)
        self.cells = cells
        # The cells are as of now: no step is pending for any of them.
        for w in self._windows:
            w.clear()
        self._x_as = [0.0] * n
        self._all_init = False
        self._est = []
        self._last_i = None
        self._cycles0 = float(cycles)
        self._discharged_ah = 0.0
        self._report = self.report()


def _tuning(cfg: SocConfig, chem: Chemistry) -> Tuning:
    """The settings in the units the per-cell functions use."""
    hyst_mv = cfg.ocv_hysteresis_mv
    if hyst_mv is None:
        hyst_mv = chem.hysteresis_mv
    return Tuning(
        r_load_v2=(cfg.voltage_sigma_mv / 1000.0) ** 2,
        model_error_fraction=cfg.model_error_fraction,
        r_rest_v2=(cfg.rest_voltage_sigma_mv / 1000.0) ** 2,
        hysteresis_v=hyst_mv / 1000.0,
        min_slope_v_per_pct=cfg.min_ocv_slope_mv_per_pct / 1000.0,
        k_sigma=cfg.plateau_k_sigma,
        drift_var_per_s=cfg.count_drift_pct_per_sqrt_h**2 / 3600.0,
        gain_frac=cfg.current_gain_sigma_pct / 100.0,
        offset_pct_per_s=100.0 * cfg.current_offset_sigma_c / 3600.0,
        extra_frac=cfg.extra_current_sigma_pct / 100.0,
        gap_current_c=cfg.gap_current_c,
        bias_floor_v=cfg.load_bias_mv / 1000.0,
        bias_fraction=cfg.load_bias_fraction,
        bias_pct_per_c=cfg.load_bias_pct_per_c,
        confident_var=cfg.confident_sigma_pct**2,
        capacity_min_delta_pct=cfg.capacity_min_delta_pct,
        innovation_window_s=cfg.innovation_window_s,
        count_z=cfg.count_consistency_z,
        consistency_bias=cfg.consistency_bias,
        rls_memory_s=cfg.rls_memory_s,
        rls_min_current_c=cfg.rls_min_current_c,
        r_factor_lo=cfg.resistance_factor_min,
        r_factor_hi=cfg.resistance_factor_max,
        rc_sigma_fraction=cfg.rc_sigma_fraction,
    )


def _r_temp_factor(chem: Chemistry) -> Callable[[float], float]:
    """``chem.r_temp_factor`` with its table split once (the same arithmetic)."""
    rows = chem.r_temp
    if len(rows) == 1:
        f0 = rows[0][1]
        return lambda _t: f0
    ts = tuple(t for t, _ in rows)
    fs = tuple(f for _, f in rows)

    def factor(temp_c: float) -> float:
        if temp_c <= ts[0]:
            return fs[0]
        if temp_c >= ts[-1]:
            return fs[-1]
        i = bisect.bisect_right(ts, temp_c)
        x0, y0 = ts[i - 1], fs[i - 1]
        return y0 + (fs[i] - y0) * (temp_c - x0) / (ts[i] - x0)

    return factor


def _check_extra(values: Sequence[float] | None, n: int) -> list[float] | None:
    """``cell_extra_current_a`` checked: ``None`` when absent or all zero."""
    if values is None:
        return None
    extra = [float(x) for x in values]
    if len(extra) != n:
        raise ValueError(f"cell_extra_current_a has {len(extra)} cells, estimator {n}")
    bad = [k for k, x in enumerate(extra) if not math.isfinite(x)]
    if bad:
        raise ValueError(f"cell_extra_current_a[{bad[0]}] (={extra[bad[0]]}) is not finite")
    return extra if any(extra) else None


def _vec(
    state: dict[str, Any], key: str, n: int, lo: float, hi: float, allow_nan: bool = False
) -> list[float]:
    """A list of ``n`` numbers within ``lo..hi`` from ``state[key]`` (``None`` = NaN if allowed)."""
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


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
