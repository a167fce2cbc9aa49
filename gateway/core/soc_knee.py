"""The rise of the cell's instantaneous resistance towards the low knee, learned at current steps.

The charge-transfer resistance of a Li-ion electrode goes as ``1 / sqrt(c_s * (1 - c_s))``
(Butler-Volmer's exchange current density, Newman and Thomas-Alyea, *Electrochemical Systems*,
3rd ed., sec. 8.3): it rises where a surface runs out of lithium, at the low knee of a
discharge. The identified R0 (``gateway.core.soc_learn``) is one value, learned where the OCV
is flat enough (it is gated off on the steep parts, where a SoC error and a resistance error
look alike under a steady current), so near the knee the loaded voltage reads lower than the
model says and the difference is taken as a SoC error (docs/PERFORMANCE.md, s9-slow: held-out
Marquis2019's step is 0.32 V/A at the knee against 0.20 V/A at 28 % SoC).

A current step separates the two: across one voltage sample the SoC hardly moves, so::

    r_step = (v - v_prev - dv1 - slope * dsoc) / (i - i_prev)

(``dv1`` the RC voltage's modelled change over the sample, ``dsoc`` the count's) measures the
instantaneous resistance wherever the step happens, the steep parts included. Its ratio to the
identified R0 at the cell's temperature, ``m = r_step / R0``, is learned as::

    m(soc) = m_mid + k * g(soc),   g(soc) = SOC_REF_PCT / max(soc, SOC_MIN_PCT) - 1  below
                                   SOC_REF_PCT, 0 above

``m_mid`` the mean ratio of the steps between ``SOC_REF_PCT`` and ``MID_HI_PCT`` (the step
sees a little less than the identified R0, which takes up part of the fast polarisation),
``k`` the weighted least squares of the steps below ``SOC_REF_PCT`` with a prior of
0 +- ``PRIOR_SIGMA``, clamped to ``0..K_MAX``, and used only once it is ``K_Z`` of its sigmas
above 0 (a cell whose R0 does not rise keeps the identified R0 alone). The shape is empirical:
the tuning cells' steps (PyBaMM Chen2020 and Prada2013, truth days at 1 s) are 1.03..1.13
times their mid value at 20..30 % SoC, 1.15..1.45 at 10 % and 1.5..1.9 at 6.5 %; Prada2013's
rise starts at 20 %, which a ``(30/soc)^2`` shape missed. Under load the voltage is then
modelled with ``R0 * (1 + k * g(soc))``: the estimator takes ``k * g(soc) * R0 * i`` off the
voltage before it identifies and corrects (``gateway.core.soc_weigh``). The evidence is the
pack's, shared by its cells (one model, as the load bias and the slow term), and capped
(``INFO_MAX``) so that it can move as cells age. It is saved with the estimator's state
(``KneeEvidence.sums``, ``KneeEvidence.restore``; an older state starts at ``k = 0``, the
estimator without the term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.chemistry import Chemistry
from gateway.core.soc_cell import CellState

__all__ = [
    "INFO_MAX",
    "K_MAX",
    "K_Z",
    "MID_HI_PCT",
    "MID_PRIOR_W",
    "MIN_STEP_C",
    "PRIOR_SIGMA",
    "RATIO_MAX",
    "SOC_MIN_PCT",
    "SOC_REF_PCT",
    "KneeEvidence",
    "check_sums",
    "knee_g",
    "learn_step",
    "step_ratio",
]

SOC_REF_PCT = 30.0
"""Below this SoC (%) the resistance may rise; above it a step teaches the mid ratio."""
MID_HI_PCT = 80.0
"""Steps above this SoC (%) are not taken (the top has a rise of its own, not modelled)."""
SOC_MIN_PCT = 4.0
"""``g`` is held at its value here below it (%): the factor stays bounded at an empty cell."""
PRIOR_SIGMA = 0.1
"""The prior's sigma of ``k`` (ratio per unit of ``g``; at 6.5 % SoC ``g`` is 3.6)."""
K_MAX = 0.5
"""The largest ``k`` taken (2.8 times R0 at 6.5 % SoC)."""
K_Z = 1.0
"""``k`` is used once it is this many of its sigmas above 0."""
MIN_STEP_C = 0.05
"""The smallest current step (C) taken: 2 mV of noise is then under 15 % of an R0 step."""
FLOOR = 0.05
"""Error of one step's ratio beyond the voltage noise (the current's nonlinearity, the RC
model's error over the sample)."""
INFO_MAX = 4.0e4
"""The cap on each sum's information (1/ratio^2; 100 steps at the floor)."""
MID_PRIOR_W = 1.0 / 0.1**2
"""The mid ratio's prior information (1/ratio^2): the step sees R0, ratio 1 +- 0.1."""
RATIO_MAX = 10.0
"""The largest step ratio the sums may imply, as the mid ratio or as the rise's raw slope
(real cells' steps are 0.5..3 times R0): a wild step cannot push a sum beyond where steps of
the other sign bring it back, and a saved state beyond it is refused."""


def knee_g(soc_pct: float) -> float:
    """The knee's shape ``g(soc)`` (dimensionless, 0 at and above ``SOC_REF_PCT``)."""
    if soc_pct >= SOC_REF_PCT:
        return 0.0
    s = soc_pct if soc_pct > SOC_MIN_PCT else SOC_MIN_PCT
    return SOC_REF_PCT / s - 1.0


@dataclass(slots=True)
class KneeEvidence:
    """The pack's evidence of the knee (shared by its cells): the information-weighted sums of
    the step ratios above ``SOC_REF_PCT`` (``mid_w``, ``mid_wy``) and below it (``lo_wxx``,
    ``lo_wxy``, against ``g``). ``k`` is what ``factor`` uses."""

    mid_w: float = MID_PRIOR_W  # prior: the step sees R0 (ratio 1 +- 0.1)
    mid_wy: float = MID_PRIOR_W
    lo_wxx: float = 0.0
    lo_wxy: float = 0.0
    k: float = 0.0

    @property
    def mid(self) -> float:
        """The mean step ratio above ``SOC_REF_PCT`` (dimensionless)."""
        return self.mid_wy / self.mid_w

    def factor(self, soc_pct: float) -> float:
        """R0's extra at ``soc_pct`` over the identified value (a fraction; 0 above the knee)."""
        k = self.k
        return k * knee_g(soc_pct) if k > 0.0 else 0.0

    def add(self, soc_pct: float, ratio: float, var: float) -> None:
        """Take one step's ratio ``r_step / R0`` (variance ``var``) at ``soc_pct`` (%)."""
        if soc_pct > MID_HI_PCT:
            return
        w = 1.0 / var
        g = knee_g(soc_pct)
        if g <= 0.0:
            self.mid_w += w
            self.mid_wy += w * ratio
            if self.mid_w > INFO_MAX:
                s = INFO_MAX / self.mid_w
                self.mid_w *= s
                self.mid_wy *= s
        else:
            self.lo_wxx += w * g * g
            self.lo_wxy += w * g * (ratio - self.mid)
            if self.lo_wxx > INFO_MAX:
                s = INFO_MAX / self.lo_wxx
                self.lo_wxx *= s
                self.lo_wxy *= s
        lim = RATIO_MAX * self.mid_w
        self.mid_wy = min(max(self.mid_wy, -lim), lim)
        lim = RATIO_MAX * (self.lo_wxx + 1.0 / PRIOR_SIGMA**2)
        self.lo_wxy = min(max(self.lo_wxy, -lim), lim)
        self._update_k()

    def _update_k(self) -> None:
        info = self.lo_wxx + 1.0 / PRIOR_SIGMA**2
        k = self.lo_wxy / info
        # Used once it is significant (``K_Z`` of its sigmas above 0): a cell whose R0 does not
        # rise keeps the identified R0 (the pack simulator's cells learned 0.016 +- 0.032).
        self.k = min(k, K_MAX) if k * k * info > K_Z * K_Z and k > 0.0 else 0.0

    def sums(self) -> tuple[float, float, float, float]:
        """The evidence as saved: ``(mid_w, mid_wy, lo_wxx, lo_wxy)``."""
        return self.mid_w, self.mid_wy, self.lo_wxx, self.lo_wxy

    def restore(self, mid_w: float, mid_wy: float, lo_wxx: float, lo_wxy: float) -> None:
        """Set the evidence from ``sums`` output (checked by ``check_sums``) and ``k`` from it."""
        self.mid_w, self.mid_wy, self.lo_wxx, self.lo_wxy = mid_w, mid_wy, lo_wxx, lo_wxy
        self._update_k()


def check_sums(mid_w: float, mid_wy: float, lo_wxx: float, lo_wxy: float) -> str | None:
    """Why saved sums cannot be the evidence ``KneeEvidence.add`` builds (``None``: they can):
    ``mid_w`` within ``MID_PRIOR_W..INFO_MAX``, ``lo_wxx`` within ``0..INFO_MAX``, and the
    ratios they imply within ``RATIO_MAX`` (the 1e-9: the sums' rounding)."""
    tol = 1.0 + 1e-9
    if not MID_PRIOR_W / tol <= mid_w <= INFO_MAX * tol:
        return f"knee_mid_w (={mid_w}) is outside {MID_PRIOR_W:g}..{INFO_MAX:g}"
    if not abs(mid_wy) <= RATIO_MAX * mid_w * tol:
        return f"knee_mid_wy (={mid_wy}) is beyond {RATIO_MAX:g} x knee_mid_w"
    if not 0.0 <= lo_wxx <= INFO_MAX * tol:
        return f"knee_lo_wxx (={lo_wxx}) is outside 0..{INFO_MAX:g}"
    if not abs(lo_wxy) <= RATIO_MAX * (lo_wxx + 1.0 / PRIOR_SIGMA**2) * tol:
        return f"knee_lo_wxy (={lo_wxy}) is beyond {RATIO_MAX:g} x (knee_lo_wxx + prior)"
    return None


def step_ratio(
    dv_v: float,
    di_a: float,
    r0_ohm: float,
    voltage_var_v2: float,
    q_nom_ah: float,
) -> tuple[float, float] | None:
    """One step's ratio to R0 and its variance, or ``None`` when it is too small to weigh.

    Args:
        dv_v: the voltage's change over the sample less the modelled RC and OCV changes (V).
        di_a: the current's change over the sample (A, charge positive).
        r0_ohm: the identified R0 at the cell's temperature (ohm).
        voltage_var_v2: one voltage sample's noise variance (V^2).
        q_nom_ah: nominal capacity (Ah): the step must be ``MIN_STEP_C`` of it.
    """
    if abs(di_a) < MIN_STEP_C * q_nom_ah or r0_ohm <= 0.0:
        return None
    ratio = dv_v / (di_a * r0_ohm)
    if not math.isfinite(ratio):
        return None
    var = 2.0 * voltage_var_v2 / (di_a * r0_ohm) ** 2 + FLOOR * FLOOR
    return ratio, var


def learn_step(
    knee: KneeEvidence,
    cell: CellState,
    chem: Chemistry,
    v: float,
    cur_k: float,
    r_scale: float,
    voltage_var_v2: float,
    q_nom_ah: float,
) -> None:
    """Take ``cell``'s fresh voltage ``v`` at ``cur_k`` (A) as a step against its previous one.

    Called after ``predict`` and before the correction: ``cell.soc_pct`` is the surface SoC
    (the slow shift applied, ``gateway.core.soc_weigh``), ``cell.v1_v`` the RC voltage at
    ``v``'s moment, ``cell.last_v`` and ``cell.last_v_i`` the previous sample's voltage and
    current, ``cell.since_v_s`` the time between them. Only samples within a quarter of
    ``tau1`` of each other are taken (the RC voltage's change is then a small correction).
    The slow branch's change (``R2``, 0 for the built-in chemistries) is not taken off.
    """
    dt = cell.since_v_s
    i0 = cell.last_v_i
    if not (0.0 < dt <= 0.25 * cell.tau1_s) or math.isnan(i0):
        return
    di = cur_k - i0
    if abs(di) < MIN_STEP_C * q_nom_ah:
        return
    a = math.exp(-dt / cell.tau1_s)
    i_mid = 0.5 * (cur_k + i0)
    v1 = cell.v1_v
    dv1 = v1 - (v1 - cell.r1_ohm_25c * r_scale * (1.0 - a) * i_mid) / a
    soc = cell.soc_pct
    dsoc = 100.0 * i_mid * dt / 3600.0 / cell.capacity_ah
    dv = v - cell.last_v - dv1 - chem.ocv.slope(soc) * dsoc
    got = step_ratio(dv, di, cell.r0_ohm_25c * r_scale, voltage_var_v2, q_nom_ah)
    if got is not None:
        knee.add(soc, got[0], got[1])
