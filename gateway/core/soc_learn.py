"""Learning one cell's model: R0, R1 (and R2) by recursive least squares; capacity anchors.

Part of the per-cell estimator (``gateway.core.soc_cell`` holds the state and the count).

The identification (``learn_resistance``): regression, linear in the parameters for a known
tau1 (the chemistry's)::

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

from __future__ import annotations

import math

from gateway.core.chemistry import Chemistry
from gateway.core.soc_cell import _NAN, _RLS_OFFSET_SIGMA_V, CellState, StepInputs, Tuning

__all__ = ["anchor", "forget_anchor", "learn_resistance", "rls_start"]

RLS_GROSS_Z = 5.0
"""An equation error beyond this many of its sigmas counts as gross (``learn_resistance``)."""


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
    *,
    sample_dt_s: float | None = None,
) -> None:
    """Identify R0 and R1 (at 25 degC) by recursive least squares with forgetting.

    The regression, when it updates and its sources: the module docstring. ``w`` is the cell's
    ``rls_w_a``, advanced by ``predict`` every step; the forgetting is over ``sample_dt_s``, the
    time since the cell's previous voltage sample (``None``: the step's ``dt_s``, a voltage
    every step), so the memory is in seconds whatever the step rate. R0 and R1 are held within
    ``r_factor_lo..r_factor_hi`` times the chemistry's (``r0_nom_ohm``, ``r1_nom_ohm``).
    """
    w = cell.rls_w_a
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
    dt = step.dt_s if sample_dt_s is None else sample_dt_s
    lam = math.exp(-dt / tune.rls_memory_s)
    r0_old = cell.r0_ohm_25c
    r1_old = cell.r1_ohm_25c
    offset = cell.rls_offset_v
    e = u - (r0_old * x0 + r1_old * x1 + offset)
    # The covariance is in the parameters' units: the equation error's variance weighs it. A
    # gross error (beyond ``RLS_GROSS_Z`` of its sigma: a current glitch on one sample, which a
    # least-squares step weighs by its square) is weighed as if its noise were that large, so
    # it moves the parameters by a bounded amount (a Huber-type update); a lasting change still
    # comes through, sample by sample.
    den = max(lam * r_load_v2 + x0 * g0 + x1 * g1 + g2, e * e / RLS_GROSS_Z**2)
    k0, k1, k2 = g0 / den, g1 / den, g2 / den
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
