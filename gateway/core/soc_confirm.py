"""A voltage acted on beyond its weight must be confirmed by the cell's next sample. Pure.

Most of what one voltage sample does to the SoC is weighed: the correction under load and a
rest block's mean move the estimate by a gain that the sample's noise bounds, so one wrong
sample moves it by little. Three steps act on a single sample beyond that weight:

* a contradiction (``gateway.core.soc_correct``: an interval beyond ``k_sigma`` sigmas of the
  estimate) replaces the estimate, whatever its variance;
* a trusted top (``gateway.core.soc_top``) recalibrates the estimate once per charge;
* a rest's first recalibration (``gateway.core.soc_rest``) weighs the voltage of its moment alone
  at the rest sigma (a few mV).

A single sample far off (a conversion or bus error of tens of mV that the plausibility range
admits) then moved the SoC by its whole error: 50 mV low in a rest on NMC, 5 points (main
778973e, docs/PERFORMANCE.md, branch s10-rest). A real contradiction lasts; a glitch does not.
So each of these steps acts only on a sample whose previous sample said the same (a persistence
rule, as protection debounces a threshold: one sample more of delay): for the contradiction and
the top, the previous sample's SoC interval agrees with this one's within ``k_sigma`` combined
sigmas, and the one nearer the estimate is acted on (two samples support at least the smaller
move); for the rest, the previous rested sample's OCV agrees with this one's within ``k_sigma``
sigmas of their difference (``rest_agrees``). A disagreeing sample is not used for the step and
the next sample tries again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Pending", "confirmed", "rest_agrees"]

_NAN = math.nan


@dataclass(slots=True)
class Pending:
    """The previous sample's verdicts (mutable; one per cell, not saved).

    Attributes:
        contradiction: the SoC interval (%, its sigma %) of the previous sample that
            contradicted the estimate, or ``None`` (it did not, or it was acted on).
        top: the SoC interval of the previous tapered sample (``soc_top.top_interval``,
            whether a top or not), or ``None``.
        rest_ocv_v: the previous rested sample's OCV (V; NaN: none in this rest).
    """

    contradiction: tuple[float, float] | None = None
    top: tuple[float, float] | None = None
    rest_ocv_v: float = _NAN


def confirmed(
    prev: tuple[float, float] | None,
    z: float,
    sz: float,
    soc_pct: float,
    k_sigma: float,
) -> tuple[float, float] | None:
    """The SoC interval (%, sigma %) to act on, or ``None`` when unconfirmed.

    ``prev``: the previous sample's interval for the same step (``Pending``), ``z +- sz`` this
    sample's, ``soc_pct`` the estimate. Confirmed when the two agree within ``k_sigma``
    combined sigmas; then the one nearer the estimate.
    """
    if prev is None:
        return None
    pz, psz = prev
    if abs(z - pz) > k_sigma * math.sqrt(sz * sz + psz * psz):
        return None
    return prev if abs(pz - soc_pct) < abs(z - soc_pct) else (z, sz)


def rest_agrees(pending: Pending, ocv_v: float, sample_var_v2: float, k_sigma: float) -> bool:
    """Whether a rested sample's OCV ``ocv_v`` (V) agrees with the previous rested sample's
    within ``k_sigma`` sigmas of their difference (``sample_var_v2``: one sample's variance,
    V^2); a rest's first sample has nothing to agree with and does not."""
    prev = pending.rest_ocv_v
    return abs(ocv_v - prev) <= k_sigma * math.sqrt(2.0 * sample_var_v2)
