"""When the pack's daily charge ends, learned from its SoC. Pure and clock-injected.

A PV-charged pack gains charge while the sun shines and starts to give it back when the loads
outgrow the PV, at about the same time of day every day. A full charge that reaches the top just
before then spends the least time at high SoC: the loads take the pack down at once instead of
it waiting at the top for hours (the peers' "delayed charging", which asks the installer for a
clock time; here the time comes from the data, so it follows the seasons and needs no setting).

``ChargeWindow.step`` folds the pack SoC into daily cycles: a cycle rises at least
``RISE_PCT`` from its low, holds its high while the SoC stays within ``HOLD_BAND_PCT`` of the
highest value, and ends when the SoC falls ``DROP_PCT`` below it; the last moment at the high is
that day's *charge end*. A second end within ``SAME_DAY_S`` of the first replaces it (a load
pulse at noon followed by more PV: the later end is the day's). The expected charge end is the
circular median of the time of day of the last ``KEEP`` ends (robust to a cloudy day).

The time of day is the injected monotonic time modulo 24 h: its zero is arbitrary but the same
for every step of a process, and what survives a restart is "the next end is due in N s", so no
wall clock is needed. A pack that never swings by ``DROP_PCT`` in a day (it barely cycles) never
learns an end: callers then act at once.

``ChargeWindow.record_lift`` learns how fast the afternoon's PV lifts the pack: the charge (Ah) a
late charge to the top took in, and how long before that day's charge end it began and stopped
(the charge current integrated from when it began until the top or the day's end). The sun's
tail, and so the charge it leaves for the pack, falls towards the day's end about in proportion
to the time left (``sin x ~ x``): a lift is summed up as a *lift slope* ``k`` (A per hour before
the end), the current ``k x tau`` at ``tau`` hours before the end, so that a lift from ``tau0`` to
``tau1`` hours before it takes in ``k (tau0^2 - tau1^2) / 2`` Ah. The slope in force is the lower
quartile (``LIFT_QUANTILE``) of the last ``KEEP`` lifts' slopes: a cloudy afternoon gives a low
slope and makes the next lift start earlier; a lift that reached the top long before the day's
end gives a high one and lets the next start later. Not the median: timed by the median, half the
lifts fall short of the top on the afternoons' clouds, and a lift that falls short holds the pack
above 95 % for an hour or more without the anchor and is asked for again the next day (in
``bench/charge_phases.py`` such lifts were a third of the household's hours above 95 %). It is
measured where it is used (late in the PV day), so it needs no model of the sun beyond that
shape. (One charge current for the whole lift, as before, let a lift timed at the afternoon's
mean current start too early: a lift from 14:00 sees about 18 A, one from 16:00 about 6 A on the
household profile, docs/PERFORMANCE.md "Charge phases".)
"""

from __future__ import annotations

import math
from collections import deque

__all__ = ["DAY_S", "ChargeWindow"]

DAY_S = 86400.0
RISE_PCT = 5.0  # a daily charge lifts the SoC at least this far off its low
DROP_PCT = 5.0  # and the loads take it at least this far below its high
HOLD_BAND_PCT = 0.5  # within this of the high the pack is still at it (float, CV, noise)
SAME_DAY_S = 12 * 3600.0
KEEP = 7
LIFT_QUANTILE = 0.25  # the lift slope in force: this quantile of the recent lifts' slopes


class ChargeWindow:
    """Learns the time of day at which the pack's daily charge ends; one ``step`` per update."""

    def __init__(self) -> None:
        self._rising = False
        self._low = math.inf
        self._high = -math.inf
        self._high_t = 0.0
        self._ends: deque[float] = deque(maxlen=KEEP)  # monotonic times of recent charge ends
        self._phase_s: float | None = None  # expected end, seconds into the monotonic "day"
        self.ends_seen = 0
        """How many daily charge ends have been seen (a change: the day's charge is over)."""
        self.last_end_s: float | None = None
        """The monotonic time of the last daily charge end seen (``None``: none yet)."""
        self._lifts: deque[float] = deque(maxlen=KEEP)  # A/h: slopes of recent lifts

    def record_lift(self, charge_ah: float, from_end_s: float, to_end_s: float) -> None:
        """A late charge towards the top took in ``charge_ah`` (Ah) from ``from_end_s`` to
        ``to_end_s`` seconds before that day's charge end (ended at the top, or by the day's end
        short of it; a negative ``to_end_s``, after the end, counts as 0). Its slope
        ``2 x charge / (tau0^2 - tau1^2)`` (A per hour before the end, ``tau`` in hours) joins the
        recent ones. Ignored unless the charge is positive, both times finite and ``from_end_s``
        above ``to_end_s`` and 0."""
        if not (
            math.isfinite(charge_ah)
            and math.isfinite(from_end_s)
            and math.isfinite(to_end_s)
            and charge_ah > 0.0
            and from_end_s > max(0.0, to_end_s)
        ):
            return
        tau0 = from_end_s / 3600.0
        tau1 = max(0.0, to_end_s) / 3600.0
        self._lifts.append(2.0 * charge_ah / (tau0 * tau0 - tau1 * tau1))

    def lift_slope_a_per_h(self) -> float | None:
        """The lift slope in force (A per hour before the day's end: the afternoon's charge
        current ``tau`` hours before the end is about this times ``tau``): the ``LIFT_QUANTILE``
        quantile of the recent lifts' slopes, interpolated; ``None`` before the first."""
        if not self._lifts:
            return None
        ordered = sorted(self._lifts)
        x = LIFT_QUANTILE * (len(ordered) - 1)
        i = int(x)
        j = min(i + 1, len(ordered) - 1)
        return ordered[i] + (x - i) * (ordered[j] - ordered[i])

    def lift_lead_s(self, charge_ah: float, margin_s: float) -> float | None:
        """How long before the day's expected end a lift of ``charge_ah`` (Ah) must begin to end
        ``margin_s`` before it at the learned slope: ``sqrt(2 x charge / k + margin^2)`` (hours,
        from ``k (tau0^2 - margin^2) / 2 = charge``). ``None`` before a lift was measured."""
        k = self.lift_slope_a_per_h()
        if k is None:
            return None
        m_h = max(0.0, margin_s) / 3600.0
        return math.sqrt(2.0 * max(0.0, charge_ah) / k + m_h * m_h) * 3600.0

    def step(self, soc_pct: float, now_s: float) -> None:
        """Fold the pack SoC at ``now_s`` (monotonic seconds) into the daily cycles.

        A non-finite SoC is ignored.
        """
        if not math.isfinite(soc_pct):
            return
        if not self._rising:
            self._low = min(self._low, soc_pct)
            if soc_pct >= self._low + RISE_PCT:
                self._rising = True
                self._high, self._high_t = soc_pct, now_s
            return
        if soc_pct > self._high:
            self._high, self._high_t = soc_pct, now_s
        elif soc_pct >= self._high - HOLD_BAND_PCT:
            self._high_t = now_s
        elif soc_pct <= self._high - DROP_PCT:
            self._record(self._high_t)
            self._rising = False
            self._low = soc_pct

    def _record(self, end_s: float) -> None:
        self.ends_seen += 1
        self.last_end_s = end_s
        if self._ends and end_s - self._ends[-1] < SAME_DAY_S:
            self._ends[-1] = end_s
        else:
            self._ends.append(end_s)
        self._phase_s = _circular_median([t % DAY_S for t in self._ends])

    def seconds_to_end(self, now_s: float) -> float | None:
        """Seconds from ``now_s`` to the next expected charge end (0 <= s < 24 h); ``None``
        while no end has been seen."""
        if self._phase_s is None:
            return None
        return (self._phase_s - now_s) % DAY_S

    def export_state(self, now_s: float) -> float | None:
        """What survives a restart: seconds to the next expected end (``None``: not known)."""
        return self.seconds_to_end(now_s)

    def restore_lift_slope(self, slope: float) -> None:
        """Load the slope ``lift_slope_a_per_h`` gave before a restart (A/h, positive and finite:
        ``gateway.core.phases_state.restored_lift_slope`` checks and limits a saved one)."""
        self._lifts.clear()
        self._lifts.append(slope)

    def restore(self, seconds_to_end: float, now_s: float, off_s: float = 0.0) -> None:
        """Load what ``export_state`` wrote (finite: ``gateway.core.phases_state.finite_number``
        checks a saved one); ``off_s`` (s) has passed since: the end keeps its time of day."""
        end_s = now_s + (seconds_to_end - max(0.0, off_s)) % DAY_S
        self._ends.clear()
        self._ends.append(end_s)
        self._phase_s = end_s % DAY_S


def _circular_median(phases: list[float]) -> float:
    """The phase (seconds in a day) with the least summed circular distance to the others."""

    def dist(a: float, b: float) -> float:
        d = abs(a - b) % DAY_S
        return min(d, DAY_S - d)

    return min(phases, key=lambda p: (sum(dist(p, q) for q in phases), p))
