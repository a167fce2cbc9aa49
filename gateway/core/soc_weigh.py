"""The SoC estimator's weighing of cell voltages: one group of cells per step. Pure.

``VoltageWeighing`` is the part of ``SocEstimator`` (``gateway.core.soc``) that advances the
cells of this step's group by the count (``predict``) and weighs their fresh voltages: each with
the pack current of its moment (``PackCount.paired_current``; a voltage that came before it
waits), starting a cell from its first voltage, then learning R0/R1 and recalibrating (after a
rest, at a tapered top: ``gateway.core.soc_top``) or correcting (under load).
"""

from __future__ import annotations

import math

from gateway.core.chemistry import Chemistry
from gateway.core.model import PackSnapshot
from gateway.core.soc_cell import CellState, StepInputs, Tuning, init_from_voltage
from gateway.core.soc_config import SocConfig
from gateway.core.soc_confirm import confirmed, rest_agrees
from gateway.core.soc_correct import FULL_VAR, correct
from gateway.core.soc_count import PackCount
from gateway.core.soc_knee import KneeEvidence, learn_step
from gateway.core.soc_learn import anchor, learn_resistance
from gateway.core.soc_offset import learn_offset
from gateway.core.soc_predict import predict, tidy
from gateway.core.soc_rest import accumulate_rest, end_rest, recalibrate_rest
from gateway.core.soc_sensors import CellSensors
from gateway.core.soc_slow import shift_pct
from gateway.core.soc_top import is_top, recalibrate_top, top_interval

__all__ = ["VoltageWeighing"]

_NAN = math.nan


class VoltageWeighing:
    """The voltage-weighing methods of ``SocEstimator`` (which sets the attributes below)."""

    config: SocConfig
    chemistry: Chemistry
    cells: list[CellState]
    _tune: Tuning
    _count: PackCount
    _sensors: CellSensors
    _voltage_age_s: float
    _q_nom_ah: float
    _r0_nom: float
    _r1_nom: float
    _knee: KneeEvidence

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
        sensor_t, sensor_r, of = self._sensors.read(snapshot)
        volts = snapshot.cell_voltage_v
        ages = snapshot.cell_voltage_age_s
        t_snap = snapshot.t_s
        v_lo = chem.min_v - 0.5
        v_hi = chem.max_v + 0.5
        stale_s = self._voltage_age_s
        cur = step.current_a
        i_known = step.current_known
        neg_inf = -math.inf
        count = self._count
        i_ts = count.i_ts
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
                    i_v = count.paired_current(rx_t, t_snap)
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
        i_v = self._count.paired_current(t_w, now_s)
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
        # The voltage reads the OCV of the surface SoC (``gateway.core.soc_slow``): a known
        # shift, so the identification and the correction run in that frame and the estimate
        # and its count are moved back after.
        ds = _surface_shift(cell)
        if ds != 0.0:
            _move(cell, ds)
        # R0 rises towards the low knee (``gateway.core.soc_knee``): learned at current steps,
        # its rise is taken off the loaded voltage, which is then weighed with the identified R0.
        knee = self._knee
        learn_step(knee, cell, chem, v, cur_k, r_scale, tune.r_rest_v2, self._q_nom_ah)
        if not inputs.resting and knee.k > 0.0:
            v -= knee.factor(cell.soc_pct) * cell.r0_ohm_25c * r_scale * cur_k
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
        agrees = False
        if inputs.resting:
            agrees = _rested(cell, tune, v, cur_k, r_scale, inputs.accumulated_ah + cell.cell_ah)
        elif cell.rest_n or not math.isnan(cell.rest_prev_v):
            end_rest(cell)
        rest_id = inputs.rest_id
        if rest_id >= 0 and cell.rest_used != rest_id and agrees:
            # One recalibration per rest_s of rest (repeating it every sample would count
            # correlated errors as independent).
            cell.rest_used = rest_id
            recalibrate_rest(cell, chem, tune, v, cur_k, temp_c, r_scale)
            # A confident SoC at a rest where the OCV is steep is a capacity anchor.
            var = cell.p00 + cell.sb * cell.sb
            steep = chem.ocv.slope(cell.soc_pct) >= tune.min_slope_v_per_pct
            if steep and var <= tune.confident_var:
                anchor(cell, tune, inputs, cell.soc_pct - ds, cell.p00)
        elif (
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
            and inputs.resting
        ):
            # The estimate was refined (start window) or replaced (a contradiction) during the
            # rest: its rest starts over.
            end_rest(cell)
        if ds != 0.0:
            _move(cell, -ds)
        self._top(cell, inputs, v, cur_k, temp_c, r_scale)

    def _top(
        self,
        cell: CellState,
        inputs: StepInputs,
        v: float,
        cur_k: float,
        temp_c: float,
        r_scale: float,
    ) -> None:
        """A trusted top (``gateway.core.soc_top``): the pack charges (not resting), the cell's
        current ``cur_k`` (A) is tapered (at most ``full_current_c``) and its voltage ``v`` pins
        the SoC on the OCV table: learn the offset and test the load bias, recalibrate, anchor
        capacity; once per top (``full_latched``, re-armed by a discharge), at a sample the
        previous one confirms (``gateway.core.soc_confirm.confirmed``)."""
        # One sample pins the SoC here: acted on when the previous tapered sample's interval
        # agrees (``gateway.core.soc_confirm``; a top or not, so a noisy sigma near the limit
        # does not hold it off).
        prev, cell.pending.top = cell.pending.top, None
        cur = inputs.current_a
        if cur < 0.0:
            cell.full_latched = False
            return
        if cell.full_latched or cur <= 0.0 or inputs.resting:
            return
        if cur_k > self.config.full_current_c * self._q_nom_ah:
            return
        tune = self._tune
        zs = top_interval(cell, self.chemistry, tune, v, cur_k, temp_c, r_scale)
        cell.pending.top = zs
        if not is_top(*zs):
            return
        act = confirmed(prev, zs[0], zs[1], cell.soc_pct, tune.k_sigma)
        if act is None:
            return
        z, var = act[0], max(act[1] * act[1], FULL_VAR)
        learn_offset(cell, tune, z, var)
        recalibrate_top(cell, tune, z, var)
        cell.full_latched = True
        anchor(cell, tune, inputs, cell.soc_pct, cell.p00)


def _rested(
    cell: CellState, tune: Tuning, v: float, cur_k: float, r_scale: float, counted_ah: float
) -> bool:
    """Add a rested voltage to ``cell``'s rest block (``accumulate_rest``; arguments as its);
    return whether it agrees with the rested sample before it (``rest_agrees``): a rest
    recalibration weighs its sample alone at the rest sigma, so only such a one."""
    ocv_v = accumulate_rest(cell, v, cur_k, r_scale, counted_ah)
    agrees = rest_agrees(cell.pending, ocv_v, tune.r_rest_v2, tune.k_sigma)
    cell.pending.rest_ocv_v = ocv_v
    return agrees


def _surface_shift(cell: CellState) -> float:
    """The surface SoC less ``cell``'s (%; ``shift_pct``), under load and in a rest alike
    until the slow current has decayed (a rest's first voltages read the surface too: weighed at
    the cell's SoC they pulled it by the shift, 7 points at 40 %/C after 0.3 C), and held so
    that the surface lies within the OCV table's 0..100 %, as the correction holds it (a shift
    beyond, clamped there and moved back, moved the estimate itself: up in a discharge past the
    low knee)."""
    ds = shift_pct(cell.slow, cell.w2_a, cell.capacity_ah)
    return min(max(ds, -cell.soc_pct), 100.0 - cell.soc_pct)


def _move(cell: CellState, ds: float) -> None:
    """Move ``cell``'s estimate and its count by ``ds`` (%), a known shift."""
    cell.soc_pct += ds
    cell.count_soc_pct += ds
