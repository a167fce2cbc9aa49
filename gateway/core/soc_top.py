"""A trusted top: a tapered charge whose voltage pins the SoC on the steep top of the OCV. Pure.

A charger in constant voltage holds the cell voltage while the current tapers: the cell is then
close to equilibrium (the polarisation is the small tapered current's), and where the OCV curve is
steep (the top of every chemistry's curve) the voltage less that IR drop maps onto a narrow SoC
interval. That is a trusted point, as a rest on a steep part is (``gateway.core.soc_rest``): the
estimate is recalibrated to the SoC the OCV table gives (not to 100 %: the charge voltage, the
daemon's own CVL included, usually lies below the chemistry's end-of-charge voltage, and the IR
drop of the tapered current is still in the voltage), the count since the last trusted point
teaches the current offset and tests the load bias (``gateway.core.soc_offset``), and the point
anchors a capacity measurement (``gateway.core.soc_learn.anchor``). The rule holds for any
chemistry and any user OCV table, and for any charge voltage a tapered charge stops at; it
replaces "within ``full_voltage_margin_v`` of the chemistry's upper voltage is 100 %", which an
LFP pack charged to the default CVL (3.45 V against 3.65 V) never met. At the upper voltage the
table's top is 100 % (LFP: the OCV is 3.6 V at 100 %), so a true full is still 100 %.

The rule (``top_interval``, ``is_top``): the pack charges (above ``rest_current_c``: a rest is the
rest recalibration's) and the cell's current is at most ``full_current_c`` (tapered); the voltage
less the modelled IR drop (R0, the RC pairs' voltages) is the OCV to within a band (2 sigma) of the
voltage noise under load, the circuit's error allowance (``model_error_fraction`` of (R0 + R1) * I,
as ``correct`` weighs a voltage), the RC voltage's uncertainty and the identified R0's (its
recursive least squares variance times the current), plus the OCV hysteresis; the SoC interval that
band maps onto (``voltage_soc``: sigma a quarter of its width) must have a sigma of at most
``TOP_SIGMA_PCT`` and its SoC must be at least ``TOP_MIN_SOC_PCT``. On a plateau (the LFP float) the
interval spans points and the voltage is only a correction under load; at the steep bottom a small
charge follows a discharge whose relaxation is still in the voltage (PyBaMM's Prada2013 day: a 0.004
C current at 6.5 % read as 5.2 %), so it is not a top.
Source: the OCV read where the cell is near equilibrium and the curve steep, through the SoC
interval the voltage's band allows, as the rest recalibration does (Plett, *Battery Management
Systems* vol. 2, 2015, ch. 3); the end of a constant-voltage charge at a tapered current as that
near-equilibrium point (the CCCV termination criterion, e.g. C/20).
"""

from __future__ import annotations

import math

from gateway.core.chemistry import Chemistry
from gateway.core.soc_cell import CellState, Tuning, voltage_soc
from gateway.core.soc_correct import FULL_VAR, fuse_interval

__all__ = [
    "TOP_MIN_SOC_PCT",
    "TOP_SIGMA_PCT",
    "is_top",
    "recalibrate_top",
    "top_interval",
]

TOP_MIN_SOC_PCT = 50.0
"""A top is in the upper half of the table (the bottom is steep too: not a tapered charge's)."""

TOP_SIGMA_PCT = 2.0 * math.sqrt(FULL_VAR)
"""The widest SoC sigma (%) a tapered charge's voltage may map onto to be a trusted top: twice a
full charge's (``FULL_VAR``: 0.5 %), 1 %. With the default noise (12 mV) and hysteresis it
admits the LFP top above about 98 % and NMC above about 98 % at ``full_current_c``, and nothing
on a plateau or on NMC's middle (a low current there is not a tapered charge at the top)."""


def is_top(z: float, sz: float) -> bool:
    """Whether a tapered charge's SoC interval ``z +- sz`` (%, ``top_interval``) is a trusted
    top: narrow enough (``TOP_SIGMA_PCT``) and in the upper half (``TOP_MIN_SOC_PCT``)."""
    return sz <= TOP_SIGMA_PCT and z >= TOP_MIN_SOC_PCT


def top_interval(
    cell: CellState,
    chem: Chemistry,
    tune: Tuning,
    v: float,
    cur_k: float,
    temp_c: float,
    r_scale: float,
) -> tuple[float, float]:
    """The SoC interval (%, sigma %) a tapered charge's voltage maps onto (``voltage_soc``; the
    band: module docstring). ``v``: the cell voltage (V) at the cell's current ``cur_k`` (A,
    charge positive; the caller checks that it is tapered), ``r_scale``: the resistance factor
    at ``temp_c``. A trusted top (``is_top``) is recalibrated with a variance of at least
    ``FULL_VAR`` (the table's own error at the top: no more confident than a full)."""
    r0 = cell.r0_ohm_25c * r_scale
    r1 = cell.r1_ohm_25c * r_scale
    ocv_v = v - r0 * cur_k - cell.v1_v - cell.r2_ohm_25c * r_scale * cell.w2_a
    pol = tune.model_error_fraction * (r0 + r1) * cur_k
    # The identified resistances' uncertainty in the IR drop: var(R0 x0 + R1 x1), x the RLS
    # regressors (the current and the RC branch's current, scaled to the temperature).
    x0, x1 = r_scale * cur_k, r_scale * cell.rls_w_a
    p = cell.rls_p
    r_var = max(0.0, p[0] * x0 * x0 + 2.0 * p[1] * x0 * x1 + p[3] * x1 * x1)
    half = 2.0 * math.sqrt(tune.r_load_v2 + pol * pol + cell.p11 + r_var) + tune.hysteresis_v
    return voltage_soc(chem, ocv_v, half, temp_c)


def recalibrate_top(cell: CellState, tune: Tuning, z: float, var: float) -> None:
    """Recalibrate ``cell`` at a trusted top: the SoC ``z`` (%) to within ``var`` (%^2).

    Fused in the SoC domain (``fuse_interval``): an estimate far less certain lands on ``z``,
    one already as certain keeps its share. An estimate beyond ``k_sigma`` combined sigmas of
    ``z`` is replaced (contradicted: the count was what was wrong). The count restarts here.
    The caller learns the offset first (``learn_offset``) and anchors capacity after.
    """
    p_tot = cell.p00 + cell.sb * cell.sb
    contradicted = abs(z - cell.soc_pct) > tune.k_sigma * math.sqrt(p_tot + var)
    fuse_interval(cell, z, math.sqrt(var), contradicted=contradicted)
    cell.restart_count(cell.p00)
