"""What the simulated inverters follow: a PV and load profile, bounded by the battery's limits.

``PvLoadProfile`` is PV production and house load against time; ``LimitFollower`` turns it into
the pack current an inverter draws within the limits it currently obeys. The Modbus inverters
(``gateway.sim.inverter``) and the battery-CAN inverter (``gateway.sim.can_inverter``) build on
it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LimitFollower", "PvLoadProfile"]

_DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class PvLoadProfile:
    """PV production and house load (W) against time; a pure function of ``t_s``.

    PV is a half sine between sunrise and sunset; the load is a base plus an evening block.
    ``day_s`` compresses the day (the demo runs a day in minutes).
    """

    pv_peak_w: float = 4000.0
    base_load_w: float = 400.0
    evening_load_w: float = 1200.0
    day_s: float = _DAY_S
    start_hour: float = 6.0
    sunrise_hour: float = 7.0
    sunset_hour: float = 19.0

    def hour(self, t_s: float) -> float:
        """Hour of the (compressed) day at ``t_s``."""
        return (self.start_hour + 24.0 * t_s / self.day_s) % 24.0

    def pv_w(self, t_s: float) -> float:
        """PV power at ``t_s``."""
        h = self.hour(t_s)
        if not self.sunrise_hour <= h < self.sunset_hour:
            return 0.0
        span = self.sunset_hour - self.sunrise_hour
        return self.pv_peak_w * math.sin(math.pi * (h - self.sunrise_hour) / span)

    def load_w(self, t_s: float) -> float:
        """House load at ``t_s``."""
        h = self.hour(t_s)
        return self.base_load_w + (self.evening_load_w if 17.0 <= h < 22.0 else 0.0)

    def surplus_w(self, t_s: float) -> float:
        """PV minus load: positive = power available to charge, negative = needed from the pack."""
        return self.pv_w(t_s) - self.load_w(t_s)


class LimitFollower:
    """Pack current from a profile, bounded by the limits the inverter currently obeys."""

    def __init__(
        self,
        profile: PvLoadProfile | None,
        nominal_voltage_v: float,
        demand_a: Callable[[float], float] | None,
    ) -> None:
        self.profile = profile or PvLoadProfile()
        self.nominal_voltage_v = nominal_voltage_v
        self._demand_a = demand_a
        self.voltage_v: float | None = None  # last known pack voltage (from the BMS or the sim)
        self.charge_limit_a: float | None = None
        self.discharge_limit_a: float | None = None

    def wanted_a(self, t_s: float) -> float:
        """The current PV and load ask for at ``t_s``, before any limit."""
        if self._demand_a is not None:
            return self._demand_a(t_s)
        v = self.voltage_v if self.voltage_v and self.voltage_v > 0 else self.nominal_voltage_v
        return self.profile.surplus_w(t_s) / v

    def current_a(self, t_s: float) -> float:
        """Pack current (positive = charging) at ``t_s``, within the limits obeyed now."""
        ccl, dcl = self.charge_limit_a, self.discharge_limit_a
        if ccl is None or dcl is None:
            return 0.0
        return max(-dcl, min(ccl, self.wanted_a(t_s)))
