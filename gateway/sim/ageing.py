"""Ageing of a simulated pack: capacity fade and resistance growth, linear in time, per cell.

Every cell fades and grows at the pack's rates (``PackSimConfig.capacity_fade_pct_per_day``,
``resistance_growth_pct_per_day``) unless a ``CellFault`` sets its own. The values are taken
from the drawn ones (``CellParams``) at the simulated time, once an hour: ageing is slow.
``gateway.sim.pack.PackSim`` applies them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gateway.sim.cells import CellParams, PackSimConfig

__all__ = ["AGEING_STEP_S", "Ageing"]

AGEING_STEP_S = 3600.0
"""Capacity and resistance move this often (simulated seconds)."""
_DAY_S = 86400.0


class Ageing:
    """The ageing rates of each cell and when they are next applied.

    Args:
        config: Pack parameters (the pack's rates and the faulty cells).
        params: The drawn cells (the values at t = 0).
    """

    def __init__(self, config: PackSimConfig, params: Sequence[CellParams]) -> None:
        n = config.cells
        self.params = tuple(params)
        self.fade_per_day = [config.capacity_fade_pct_per_day / 100.0] * n
        self.growth_per_day = [config.resistance_growth_pct_per_day / 100.0] * n
        for f in config.faults:
            if f.capacity_fade_pct_per_day is not None:
                self.fade_per_day[f.cell] = f.capacity_fade_pct_per_day / 100.0
            if f.resistance_growth_pct_per_day is not None:
                self.growth_per_day[f.cell] = f.resistance_growth_pct_per_day / 100.0
        self.active = any(self.fade_per_day) or any(self.growth_per_day)
        """Whether any cell ages at all."""
        self.next_s = AGEING_STEP_S if self.active else math.inf
        """Simulated time of the next update (``inf``: no cell ages)."""

    def at(self, t_s: float) -> tuple[list[float], list[float], list[float]]:
        """Capacity (Ah), R0 and R1 (ohm, at 25 degC) of every cell at ``t_s``; the next update
        is then due at the following whole ``AGEING_STEP_S``. A capacity never falls below 5 %
        of its initial value."""
        self.next_s = (math.floor(t_s / AGEING_STEP_S) + 1) * AGEING_STEP_S
        days = t_s / _DAY_S
        params = self.params
        cap = [
            p.capacity_ah * max(0.05, 1.0 - f * days)
            for p, f in zip(params, self.fade_per_day, strict=True)
        ]
        grow = [1.0 + g * days for g in self.growth_per_day]
        r0 = [p.r0_ohm * x for p, x in zip(params, grow, strict=True)]
        r1 = [p.r1_ohm * x for p, x in zip(params, grow, strict=True)]
        return cap, r0, r1
