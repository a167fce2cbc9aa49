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

from gateway.core.chemistry import Chemistry
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import CellEstimate, PackSnapshot, SocReport
from gateway.core.pack import PackConfig, cell_temps
from gateway.core.soc_cell import (
    CellState,
    StepInputs,
    init_from_voltage,
    predict,
    tidy,
)
from gateway.core.soc_config import SocConfig, tuning_of
from gateway.core.soc_correct import correct, recalibrate_full, recalibrate_rest
from gateway.core.soc_learn import anchor, forget_anchor, learn_resistance, rls_start
from gateway.core.soc_state import STATE_VERSION, export_cells, read_state
from gateway.core.soc_window import StepWindow

__all__ = ["STATE_VERSION", "SocConfig", "SocEstimator", "pack_soc_pct"]

_NAN = math.nan
_REF_TEMP_C = 25.0
_NO_ESTIMATE = CellEstimate(_NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN, _NAN)
_DEFAULT_TIMEOUTS = TimeoutsConfig()
_tuning = tuning_of  # the settings in the per-cell functions' units (tests use this name)
_I_HISTORY = 256  # pack current readings kept for pairing with the cell voltages


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
        self._tune = tuning_of(config, chemistry)
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
        # The pack current's recent readings (receive time, value), oldest first: a cell voltage
        # is weighed with the reading nearest to it in time (``_paired_current``).
        self._i_ts: list[float] = []
        self._i_vs: list[float] = []
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
        make the uncertainty grow; a gap in time is counted as unknown current. Each cell voltage
        is weighed once, with the pack current reading nearest to it in time (receive times from
        the snapshot's ages; a voltage that came before the current of its moment waits for it,
        ``_paired_current``), and the averages over samples advance by the time between them,
        however often ``step`` is called.

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
        neg_inf = -math.inf
        i_ts = self._i_ts
        t_i = i_ts[-1] if i_ts else neg_inf
        isfinite = math.isfinite
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
            own_k = extra[k] if extra is not None else 0.0
            j = of[k]
            r_scale = sensor_r[j]
            was_init = cell.initialised
            if was_init:
                predict(
                    cell, inputs, tune, x_count[k - lo] if x_count is not None else 0.0, r_scale
                )
            if cell.wait_t != neg_inf:
                self._take_waiting(cell, inputs, t_snap, i_known, own_k, sensor_t[j], r_scale)
            if fresh and v is not None:
                cell.last_v_t = rx_t
                i_v: float | None = cur
                if i_known and rx_t != t_i:
                    # Not the latest current's moment: the reading nearest the voltage's, or
                    # wait for the next one (None) when that is due and nearer.
                    i_v = self._paired_current(rx_t, t_snap)
                if i_v is None:
                    cell.wait_v = v
                    cell.wait_t = rx_t
                else:
                    self._take(cell, inputs, v, i_v + own_k, own_k, i_known, sensor_t[j], r_scale)
            if was_init:
                tidy(cell)

    def _take(
        self,
        cell: CellState,
        inputs: StepInputs,
        v: float,
        cur_k: float,
        own_k: float,
        i_known: bool,
        temp_c: float,
        r_scale: float,
    ) -> None:
        """Take the voltage ``v`` of ``cell`` with the current of its moment ``cur_k`` (A, the
        cell's: the pack's plus ``own_k``, its own balancing current): start the cell from it,
        or weigh it when the current is known."""
        if not cell.initialised:
            i_k = cur_k if i_known else 0.0
            init_from_voltage(
                cell, self.chemistry, self._tune, v, i_k, temp_c, i_known, self._q_nom_ah
            )
        elif i_known:
            self._weigh_voltage(cell, inputs, v, cur_k, own_k, temp_c, r_scale)
        cell.last_v = v
        cell.last_v_i = cur_k if i_known else _NAN
        cell.since_v_s = 0.0

    def _take_waiting(
        self,
        cell: CellState,
        inputs: StepInputs,
        now_s: float,
        i_known: bool,
        own_k: float,
        temp_c: float,
        r_scale: float,
    ) -> None:
        """Take the voltage ``cell`` holds for the current of its moment once that has come (or
        is late); drop it when it got too old or the current is no longer known."""
        t_w = cell.wait_t
        if not i_known or now_s - t_w > self._voltage_age_s:
            cell.wait_t = -math.inf
            return
        i_v = self._paired_current(t_w, now_s)
        if i_v is None:
            return
        cell.wait_t = -math.inf
        self._take(cell, inputs, cell.wait_v, i_v + own_k, own_k, True, temp_c, r_scale)

    def _weigh_voltage(
        self,
        cell: CellState,
        inputs: StepInputs,
        v: float,
        cur_k: float,
        own_k: float,
        temp_c: float,
        r_scale: float,
    ) -> None:
        """Learn from and correct ``cell`` with a fresh voltage ``v`` at a known current.

        ``cur_k``: the cell's current at the voltage's moment (the pack current paired with it
        plus ``own_k``, the cell's own balancing current).
        """
        chem = self.chemistry
        tune = self._tune
        dt_v = cell.since_v_s
        learn_resistance(
            cell,
            chem,
            tune,
            inputs,
            v,
            cur_k,
            temp_c,
            r_scale,
            self._r0_nom,
            self._r1_nom,
            sample_dt_s=dt_v,
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
            correct(
                cell,
                chem,
                tune,
                inputs,
                v,
                cur_k,
                temp_c,
                r_scale,
                sample_dt_s=dt_v,
                own_current_a=own_k,
            )
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

    def _keep_current(self, t_s: float, i_a: float, now_s: float) -> None:
        """Keep the pack current reading ``i_a`` received at ``t_s`` (once per reading), and
        those of the last cell-voltage age limit (at most ``_I_HISTORY`` readings)."""
        ts, vs = self._i_ts, self._i_vs
        if ts and t_s <= ts[-1]:
            return  # seen (or out of order: the latest reading stays the latest)
        ts.append(t_s)
        vs.append(i_a)
        horizon = now_s - self._voltage_age_s - 1.0
        if len(ts) > _I_HISTORY or ts[0] < horizon:
            j = max(len(ts) - _I_HISTORY, bisect.bisect_left(ts, horizon))
            j = min(j, len(ts) - 1)
            del ts[:j]
            del vs[:j]

    def _paired_current(self, rx_t: float, now_s: float) -> float | None:
        """The pack current to weigh a voltage received at ``rx_t`` with: the reading nearest
        to it in time, or ``None`` (wait) while a newer reading is due and would be nearer.

        A voltage and the current it was measured with may arrive in either order, in
        different frames, some time apart; the latest current at the step that first sees the
        voltage can be the previous sample's (a second off, at a 1 Hz BMS: across a load step
        that is the whole IR drop of the step, taken as a SoC error). A voltage newer than the
        latest current by more than half the current's interval (its last two readings) waits
        for the next reading until that is 50 % late, then takes the latest.
        """
        ts, vs = self._i_ts, self._i_vs
        t_last = ts[-1]
        if rx_t >= t_last:
            d = t_last - ts[-2] if len(ts) > 1 else 0.0
            if 2.0 * (rx_t - t_last) > d and now_s - t_last < 1.5 * d:
                return None
            return vs[-1]
        j = bisect.bisect_left(ts, rx_t)
        if j == 0:
            return vs[0]
        return vs[j] if ts[j] - rx_t <= rx_t - ts[j - 1] else vs[j - 1]

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
        if i_known:
            self._keep_current(now_s - (i_age if i_age is not None else 0.0), cur, now_s)
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
        """Everything needed to resume after a restart, as JSON-friendly plain values.

        Each cell as of its group's last turn (``cells_per_step``): the steps since then, a
        fraction of a second of charge, are not in it.
        """
        return export_cells(self.cells, self.chemistry.name, self._q_nom_ah, self.cycles)

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
        saved = read_state(
            state,
            chemistry=self.chemistry.name,
            cells=self._n,
            nominal_capacity_ah=self._q_nom_ah,
            r1_default_ohm=self._r1_nom,
            r2_default_ohm=self._r2_nom,
        )
        n = self._n
        soc, soc_var, soc_var_common = saved.soc_pct, saved.soc_var, saved.soc_var_common
        p11, cap, cap_var = saved.v1_var, saved.capacity_ah, saved.capacity_var
        r0, r1, r2, init_raw = (
            saved.r0_ohm_25c,
            saved.r1_ohm_25c,
            saved.r2_ohm_25c,
            saved.initialised,
        )
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
        self._cycles0 = saved.cycles
        self._discharged_ah = 0.0
        self._report = self.report()


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
