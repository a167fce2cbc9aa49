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

import math
from collections.abc import Sequence
from typing import Any

from gateway.core.chemistry import Chemistry
from gateway.core.freshness import TimeoutsConfig
from gateway.core.model import PackSnapshot, SocReport
from gateway.core.pack import PackConfig
from gateway.core.soc_bias import LoadBiasEvidence
from gateway.core.soc_cell import CellState, StepInputs
from gateway.core.soc_config import SocConfig, tuning_of
from gateway.core.soc_count import PackCount, check_extra
from gateway.core.soc_knee import KneeEvidence
from gateway.core.soc_learn import rls_start
from gateway.core.soc_report import ReportFigures, pack_soc_pct, relative_sigma
from gateway.core.soc_sensors import CellSensors
from gateway.core.soc_slow import SlowEvidence, SlowShift, restore_slow
from gateway.core.soc_state import STATE_VERSION, SavedState, export_cells, read_state
from gateway.core.soc_weigh import VoltageWeighing
from gateway.core.soc_window import StepWindow

__all__ = ["STATE_VERSION", "SocConfig", "SocEstimator", "pack_soc_pct"]

_DEFAULT_TIMEOUTS = TimeoutsConfig()
_tuning = tuning_of  # the settings in the per-cell functions' units (tests use this name)


class SocEstimator(VoltageWeighing):
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
        self._voltage_age_s, current_age_s = timeouts.soc_ages_s(config.stale_s)
        self._sensors = CellSensors(pack, chemistry)
        self.chemistry = chemistry
        n = pack.cells
        self._n = n
        self._q_nom_ah = pack.capacity_ah
        self._tune = tuning_of(config, chemistry)
        self._r0_nom = chemistry.r0_ohm(pack.capacity_ah)
        self._r1_nom = chemistry.r1_ohm(pack.capacity_ah)
        self._r2_nom = chemistry.r2_ohm(pack.capacity_ah)
        # The load bias comes from the model every cell shares: one pool of evidence for the
        # pack (``gateway.core.soc_bias``), shared by the cells, faded once per step.
        self._bias = LoadBiasEvidence()
        self._slow = SlowEvidence()  # the slow polarisation's, shared too (soc_slow)
        self._knee = KneeEvidence()  # R0's rise at the low knee, shared too (soc_knee)
        self.cells: list[CellState] = [self._new_cell() for _ in range(n)]
        # Pack-level state: one current flows through every series cell.
        self._count = PackCount(config, self._q_nom_ah, self._voltage_age_s, current_age_s)
        self._cycles0 = 0.0  # cycles restored from a previous run
        self._report: SocReport | None = None
        # Sliced estimation: groups of cells_per_step cells, one group weighed per step.
        per = min(n, config.cells_per_step) if n else 1
        self._per_step = per
        self._windows = [StepWindow() for _ in range(max(1, -(-n // per)))]
        self._turn = 0
        self._x_as = [0.0] * n  # balancing charge (A s) per cell since its group was weighed
        # The report's figures per cell, refreshed for the cells weighed.
        self._figures = ReportFigures(n, self._q_nom_ah)

    def _new_cell(self) -> CellState:
        cap = self._q_nom_ah
        chem = self.chemistry
        cell = CellState(
            capacity_ah=cap,
            capacity_var=(0.1 * cap) ** 2,
            tau1_s=chem.tau1_s,
            tau2_s=chem.tau2_s,
            bias=self._bias,
            slow=SlowShift(evidence=self._slow),
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
        return self._cycles0 + self._count.discharged_ah / self._q_nom_ah

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
        ``PackCount.paired_current``), and the averages over samples advance by the time between
        them, however often ``step`` is called.

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
        extra = check_extra(cell_extra_current_a, n)
        cfg = self.config
        count = self._count
        last_s = count.last_now_s
        if last_s is not None and 0.0 <= now_s - last_s < cfg.min_interval_s:
            return self._report
        step = count.step_inputs(snapshot, now_s, self.cells)
        tune = self._tune
        self._bias.fade(step.dt_s, tune.bias_memory_s, tune.bias_prior_weight)
        lo, hi, inputs, x_count = self._turn_window(step, extra)
        self._weigh(snapshot, step, inputs, lo, hi, extra, x_count)
        self._report = self._figures.refresh(self.cells, lo, hi)
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

    def report(self) -> SocReport | None:
        """The current estimate, or ``None`` while some cell has not had a valid voltage."""
        return self._figures.refresh(self.cells, 0, self._n)

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
        return tuple(relative_sigma(self.cells))

    def _restore_pack_evidence(self, saved: SavedState) -> None:
        """The evidence the pack's cells share, from ``saved``: the load bias, the slow
        polarisation and R0's rise at the knee (each from nothing where the state has none)."""
        bias = LoadBiasEvidence()
        if saved.load_bias_w is not None and saved.load_bias_wq is not None:
            bias.add(saved.load_bias_w, saved.load_bias_wq, self._tune.bias_prior_weight)
        self._bias = bias
        self._slow = SlowEvidence()
        if saved.slow_info is not None and saved.slow_xy is not None:
            restore_slow(self._slow, saved.slow_info, saved.slow_xy)
        self._knee = KneeEvidence()
        if saved.knee is not None:
            self._knee.restore(*saved.knee)

    def _offset_limit(self, saved: Sequence[float] | None) -> tuple[float, list[str]]:
        """The largest offset (C) a restore may bring, and a note when ``saved`` exceeds it.

        The learner's own limit, 3 prior sigmas (0 when learning is off): a state written
        under other settings, or edited, never brings an offset the estimator could not have
        learned. Resistances are held to ``resistance_factor_min..max`` likewise."""
        lim = 3.0 * math.sqrt(self._tune.offset_var_c2)
        if saved is None or all(abs(b) <= lim for b in saved):
            return lim, []
        return lim, [
            f"saved current offset beyond what the estimator learns (|offset| <= {lim:.4g} C,"
            " 3 x soc.current_offset_sigma_c): limited to it"
        ]

    def export_state(self) -> dict[str, Any]:
        """Everything needed to resume after a restart, as JSON-friendly plain values.

        Each cell as of its group's last turn (``cells_per_step``): the steps since then, a
        fraction of a second of charge, are not in it.
        """
        return export_cells(
            self.cells,
            self.chemistry.name,
            self._q_nom_ah,
            self.cycles,
            self._bias,
            self._knee,
            self._slow,
        )

    def restore(self, state: dict[str, Any]) -> list[str]:
        """Resume from ``export_state`` output (a previous run of the same pack); returns a line
        for each value it had to limit (for the log).

        The SoC variance grows by ``restore_sigma_pct`` because the pack may have moved while we
        were down; the RC voltage restarts at zero. A restored SoC is not a trusted point: a
        rested voltage that contradicts it (``recalibrate_rest``) replaces it. States written
        before R1 was identified (no ``r1_ohm_25c``) start R1 from the chemistry; states
        written before the load-bias evidence was saved start it from the claim (nothing
        learned: those states never held it, per cell or pooled).

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
        r_lo, r_hi = self._tune.r_factor_lo, self._tune.r_factor_hi
        off_lim, notes = self._offset_limit(saved.current_offset_c)
        self._restore_pack_evidence(saved)  # before ``_new_cell``: the restored cells share it
        cells = []
        for j in range(n):
            cell = self._new_cell()
            rls_start(
                cell,
                min(max(r0[j], r_lo * self._r0_nom), r_hi * self._r0_nom),
                min(max(r1[j], r_lo * self._r1_nom), r_hi * self._r1_nom),
                min(r2[j], r_hi * 2.0 * self._r0_nom),
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
            if saved.current_offset_c is not None and saved.current_offset_var is not None:
                cell.off_c = min(off_lim, max(-off_lim, saved.current_offset_c[j]))
                ov = saved.current_offset_var[j]
                cell.off_var = ov if math.isfinite(ov) and off_lim > 0.0 else math.inf
            cell.restart_count(cell.p00)
            cells.append(cell)
        self.cells = cells
        # The cells are as of now: no step is pending for any of them.
        for w in self._windows:
            w.clear()
        self._x_as = [0.0] * n
        self._figures.clear()
        self._count.last_i = None
        self._cycles0 = saved.cycles
        self._count.discharged_ah = 0.0
        self._report = self.report()
        return notes
