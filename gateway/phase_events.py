"""Charge-phase transitions as events: one ``charge_phase`` event per transition, bounded.

``state`` carries the charge phase and the reason of its *last* transition at the state rate, so
two transitions between two ``state`` messages would lose the first reason. The gateway hands
every control step to ``PhaseEvents.after_step``; a transition (the phase, or the time it was
entered, changed since the last step) becomes a ``charge_phase`` event on the gateway's event
sink: a log line, MQTT ``events`` (queued, bounded by ``mqtt.queue_size``) and the dashboard's
event list. The first step seen is no transition (``state`` has it).

Transitions are rare by design (each waits for a hold time or a SoC threshold), but a phase
machine that flapped (a bug) must not flood the broker or the log: at most ``per_window``
events pass per ``window_s`` of control time; the others are counted, and the next event that
passes carries the count (``suppressed``). No clock: times are the steps' ``t_s``.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.core.kinds import ChargePhase
from gateway.core.model import ControlOutput

__all__ = ["EVENT", "PER_WINDOW", "WINDOW_S", "PhaseEvents"]

EVENT = "charge_phase"
"""The event's name on MQTT ``events`` and the dashboard."""
WINDOW_S = 60.0
"""Length of a rate window, seconds of control time."""
PER_WINDOW = 6
"""Most ``charge_phase`` events per window."""

EventSink = Callable[..., None]
"""``event(name, **data)``: the gateway's event (log line, MQTT and web)."""


class PhaseEvents:
    """Turns the charge phase of each control step into ``charge_phase`` events.

    Args:
        event: called as ``event("charge_phase", phase=..., previous=..., reason=..., t_s=...,
            full_charge_requested=..., full_charge_reason=..., suppressed=...)``: ``phase`` and
            ``previous`` are ``ChargePhase`` values (``bulk``, ``absorption``, ``float``),
            ``t_s`` the control time of the transition (s, monotonic), ``suppressed`` how many
            transitions the rate bound held back since the last event.
        window_s: length of a rate window (s of control time, > 0).
        per_window: most events per window (>= 1).

    Raises:
        ValueError: ``window_s`` not positive or ``per_window`` below 1.
    """

    def __init__(
        self, event: EventSink, *, window_s: float = WINDOW_S, per_window: int = PER_WINDOW
    ) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s (={window_s}) must be positive")
        if per_window < 1:
            raise ValueError(f"per_window (={per_window}) must be at least 1")
        self._event = event
        self.window_s = window_s
        self.per_window = per_window
        self._last: tuple[ChargePhase, float] | None = None  # phase, since_s
        self._window_start_s = -float("inf")
        self._in_window = 0
        self.suppressed = 0
        """Transitions held back since the last event that passed."""
        self.suppressed_total = 0
        """Transitions held back since start."""

    def after_step(self, out: ControlOutput) -> None:
        """Report the transition of ``out`` (if any); a step without a charge state is skipped."""
        charge = out.charge
        if charge is None:
            return
        now = (charge.phase, charge.since_s)
        last, self._last = self._last, now
        if last is None or last == now:
            return
        if out.t_s - self._window_start_s >= self.window_s:
            self._window_start_s = out.t_s
            self._in_window = 0
        if self._in_window >= self.per_window:
            self.suppressed += 1
            self.suppressed_total += 1
            return
        self._in_window += 1
        self._event(
            EVENT,
            phase=charge.phase.value,
            previous=last[0].value,
            reason=charge.reason,
            t_s=round(charge.since_s, 3),
            full_charge_requested=charge.full_charge_requested,
            full_charge_reason=charge.full_charge_reason,
            suppressed=self.suppressed,
        )
        self.suppressed = 0
