"""When a requested full charge is due, and the lift slope measured from the ones that waited.

``FullChargeTiming`` is the timing part of ``ChargePhases`` (``gateway.core.phases`` describes
it): a full charge waits until the afternoon's PV can just bring the pack to the top before the
daily charge usually ends (``ChargeWindow``), and each full charge that waited is measured (the
charge it took in from due to the top) so that the window learns the lift slope (A per hour
before the day's end). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gateway.core.charge_config import ChargeConfig
from gateway.core.charge_window import ChargeWindow
from gateway.core.model import ChargePhase, SocReport

__all__ = ["LIFT_GAP_S", "MAX_LIFT_S", "FullChargeTiming"]

LIFT_GAP_S = 300.0  # a longer step gap is not integrated into a lift's charge
# A lift not at the top and without a day's end seen this long after it began is dropped: the
# day's charge end was not seen (a grey day that never took the SoC down), so no afternoon can
# be measured; recorded at a later end it would average a day and a night into one "slope".
MAX_LIFT_S = 12 * 3600.0


@dataclass(slots=True)
class _Lift:
    """A full charge that waited for its time, measured from when it became due."""

    start_s: float
    ends: int  # the window's end count at the start (a change: the day's charge ended)
    last_s: float = 0.0
    ah: float = 0.0
    peak_ah: float = 0.0
    peak_s: float = 0.0
    top_s: float | None = None  # when it reached the top (absorption began)
    top_ah: float = 0.0  # the charge taken in until then

    def __post_init__(self) -> None:
        self.last_s = self.peak_s = self.start_s


class FullChargeTiming:
    """When the pending full charge is due, and the measurement of the lifts that waited.

    Args:
        config: the ``charge`` section.
        capacity_ah: nominal capacity (Ah).
        window: the daily charge window (learns the end of the day's charge and the lift slope).
    """

    def __init__(self, config: ChargeConfig, capacity_ah: float, window: ChargeWindow) -> None:
        self.config = config
        self.capacity_ah = capacity_ah
        self.window = window
        self._due_ends = -1  # the window's end count when the request became due (-1: not due)
        self._waited = False  # the pending request has waited for its time today
        self._lift: _Lift | None = None  # the full charge being measured

    def wait_s(
        self, request: str, at_once: bool, soc: SocReport | None, now_s: float
    ) -> float | None:
        """Seconds until the pending full charge is due (0: due now; ``None``: none pending).

        ``request``: the pending request's reason (``""``: none); ``at_once``: it is due at
        once (unfinished balancing).

        Due at once unless ``full_charge_lead_s`` is set, the grid may not be used, and the time
        of day at which the daily charge ends has been learned; then from ``lift_lead_s``
        before that time until the day's charge is seen to end (the SoC falls from its high),
        so a charge still short of the top at the expected end goes on while there is PV. An
        absorption that has begun runs to its end regardless. A request marked ``at_once`` is due
        at once (unfinished balancing while balancing may run only at rest or near the top: its
        absorption needs the day's hours; with balancing off the top too, it waits like the rest).
        """
        if not request:
            self._due_ends = -1
            self._waited = False
            return None
        lead = self.config.full_charge_lead_s
        if lead <= 0.0 or self.config.full_charge_from_grid or at_once:
            return 0.0
        ends = self.window.ends_seen
        if self._due_ends == ends:
            return 0.0
        to_end = self.window.seconds_to_end(now_s)
        start_s = self.lift_lead_s(soc)
        if to_end is None or to_end <= start_s:
            self._due_ends = ends
            return 0.0
        self._due_ends = -1
        self._waited = True
        return to_end - start_s

    def lift_lead_s(self, soc: SocReport | None) -> float:
        """How long before the expected end of the daily charge a full charge must begin.

        The time at which a lift of the charge from the float SoC (or the SoC, when higher) to
        the top, ``(100 - max(SoC, float_soc_pct)) / 100 x capacity`` (Ah), ends
        ``full_charge_end_margin_s`` before the end at the learned lift slope
        (``ChargeWindow.lift_lead_s``: the afternoon's charge current falls about in proportion
        to the time left). Below the float SoC the pack bulks at full current whether the full
        charge is due or not, so only the part above it is a lift (and is what the slope was
        measured on). Before a lift has been measured (or without an estimate):
        ``full_charge_lead_s``.
        """
        if soc is None or not math.isfinite(soc.soc_pct):
            return self.config.full_charge_lead_s
        from_pct = max(soc.soc_pct, self.config.float_soc)
        need_ah = max(0.0, 100.0 - from_pct) / 100.0 * self.capacity_ah
        lead = self.window.lift_lead_s(need_ah, self.config.full_charge_end_margin_s)
        return self.config.full_charge_lead_s if lead is None else lead

    def measure(
        self,
        before: ChargePhase,
        phase: ChargePhase,
        request: str,
        current_a: float,
        due: bool,
        soc: SocReport | None,
        now_s: float,
    ) -> None:
        """Measure a full charge that waited for its time: the charge it takes in (Ah, the
        current integrated) from when it is due with the pack at the float SoC or above (by the
        estimate; without one, from when it is due) until the top (absorption begins), or, when
        the day's charge ends short of the top, until its most charged moment; when the day's
        charge is seen to end, the window learns the slope from it (by how long before that
        end it began and stopped).
        Below the float SoC the pack would bulk anyway, and a charge that begins there measures
        the day (a grey afternoon that never reaches the float SoC is no lift of the last 10 %).
        Neither within ``MAX_LIFT_S``, or begun more than that before the expected end: not
        measured. ``before``/``phase``: the phase before and after this step's transition;
        ``request``: the pending request after it (``""``: none)."""
        lift = self._lift
        ends = self.window.ends_seen
        if lift is None:
            to_end = self.window.seconds_to_end(now_s)
            above = soc is None or not soc.soc_pct < self.config.float_soc
            if (
                due
                and self._waited
                and above
                and phase is ChargePhase.BULK
                and to_end is not None
                and to_end <= MAX_LIFT_S
            ):
                self._lift = _Lift(now_s, ends)
                self._waited = False
            return
        if lift.top_s is None:
            dt_s = now_s - lift.last_s
            if 0.0 < dt_s <= LIFT_GAP_S:
                lift.ah += current_a * dt_s / 3600.0
            lift.last_s = now_s
            if lift.ah > lift.peak_ah:
                lift.peak_ah, lift.peak_s = lift.ah, now_s
            if before is ChargePhase.BULK and phase is ChargePhase.ABSORPTION:
                lift.top_s, lift.top_ah = now_s, lift.ah  # recorded when the day's charge ends
        if ends != lift.ends:
            self._record(self.window.last_end_s)
        elif now_s - lift.start_s > MAX_LIFT_S:
            self._lift = None
        elif lift.top_s is None and (phase is not ChargePhase.BULK or not request):
            self._lift = None  # the request went away (restored, or served otherwise)

    def _record(self, end_s: float | None) -> None:
        """The day's charge ended at ``end_s`` (monotonic s): the lift being measured took in its
        charge until the top (or its most charged moment short of it); its slope, by how long
        before that end it began and stopped, goes to the window. The day's own end, not the
        expected one: a lift that begins shortly before the usual end on a day that charges
        longer would otherwise look like a steep one."""
        lift = self._lift
        assert lift is not None
        self._lift = None
        if end_s is None:
            return
        if lift.top_s is None:
            charge_ah, stop_s = lift.peak_ah, lift.peak_s
        else:
            charge_ah, stop_s = lift.top_ah, lift.top_s
        self.window.record_lift(charge_ah, end_s - lift.start_s, end_s - stop_s)
