"""The ramp every limit goes through, and how a limit picks its winning term. Pure.

Cuts apply in the same step; increases wait a hold after the last cut, then rise at a rate
(``Ramp``). CCL, DCL and CVL are the minimum of their terms (``pick_min``); DVL, a lower bound,
is the maximum (``pick_max``); the first term wins a tie.
"""

from __future__ import annotations

import math

from gateway.core.model import LimitTerm

__all__ = ["Ramp", "pick_max", "pick_min"]


class Ramp:
    """Cuts at once; increases wait ``hold_s`` after the last cut, then rise at ``rate_per_s``.

    A cut restarts the hold only for a drop of more than ``deadband`` below the current value,
    a fall of more than twice it below ``peak`` (the highest value since the hold last started:
    a slow slide counts too), or on ``rearm``. Noise smaller than that still cuts at once but no
    longer ratchets the limit down by restarting the hold on every dip.
    """

    __slots__ = ("deadband", "hold_s", "last_cut_s", "last_s", "peak", "rate_per_s", "value")

    def __init__(
        self, rate_per_s: float, hold_s: float, start: float | None, deadband: float = 0.0
    ) -> None:
        self.rate_per_s = rate_per_s
        self.hold_s = hold_s
        self.deadband = deadband
        self.value = start
        self.peak = -math.inf if start is None else start
        self.last_cut_s = -math.inf
        self.last_s = -math.inf

    def _restart_hold(self, now_s: float, value: float) -> None:
        self.last_cut_s = now_s
        self.peak = value

    def step(self, target: float, now_s: float, rearm: bool = False) -> float:
        """Advance to ``now_s``; ``rearm`` restarts the hold (a fault term holds the limit)."""
        dt = now_s - self.last_s if self.last_s != -math.inf else 0.0
        self.last_s = now_s
        value = self.value
        if value is None:
            # The very first step starts from the target (or from the start value, if given).
            self.value = target
            self._restart_hold(now_s, target)
            return target
        if rearm:
            self._restart_hold(now_s, min(target, value))
        if target <= value:
            band = self.deadband
            if value - target > band or self.peak - target > 2.0 * band:
                self._restart_hold(now_s, target)
            self.value = target
            return target
        if now_s - self.last_cut_s < self.hold_s or dt <= 0.0:
            return value
        value = min(target, value + self.rate_per_s * dt)
        self.value = value
        self.peak = max(self.peak, value)
        return value


def pick_min(terms: list[LimitTerm]) -> LimitTerm:
    """The term of the smallest value (the first of equals)."""
    best = terms[0]
    for t in terms[1:]:
        if t.value < best.value:
            best = t
    return best


def pick_max(terms: list[LimitTerm]) -> LimitTerm:
    """The term of the largest value (the first of equals)."""
    best = terms[0]
    for t in terms[1:]:
        if t.value > best.value:
            best = t
    return best
