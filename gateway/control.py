"""The control step: readings -> pack state -> SoC -> protection -> limits -> balancing.

``Controller`` is synchronous and clock-injected, so the daemon, replay, the simulator-driven demo
and the tests all run the very same step. The daemon calls ``step`` on a tick and on new data.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.core.model import (
    AlarmReport,
    BalancingMode,
    BalancingPlan,
    Command,
    CommandResult,
    ControlOutput,
    Limit,
    Limits,
    LimitTerm,
    Negotiation,
    Reading,
)
from gateway.core.pack import PackState
from gateway.settings import Settings

__all__ = ["Controller"]


class Controller:
    """Owns the pure core's state for one pack and runs one step at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pack = PackState(settings.pack)
        self._seq = 0
        self._negotiation: Negotiation | None = None
        self.frames = 0
        self.errors = 0

    def ingest(self, readings: Iterable[Reading]) -> None:
        """Store decoded readings (one frame's worth or more)."""
        apply = self.pack.apply
        for r in readings:
            apply(r)

    def count_frame(self, ok: bool) -> None:
        """Count one received frame as decoded (``ok``) or dropped."""
        if ok:
            self.frames += 1
        else:
            self.errors += 1

    def set_negotiation(self, negotiation: Negotiation | None) -> None:
        """What the inverter link negotiated last (used by the next step)."""
        self._negotiation = negotiation

    def command(self, cmd: Command, now_s: float) -> CommandResult:
        """Apply a command from MQTT or Modbus."""
        return CommandResult(False, f"{type(cmd).__name__} is not supported yet")

    def step(self, now_s: float) -> ControlOutput:
        """Run one control step at ``now_s`` and return everything it decided."""
        self._seq += 1
        snap = self.pack.snapshot(now_s, frames=self.frames, errors=self.errors)
        reason = "complete" if snap.complete else "incomplete"
        zero = Limit(0.0, reason, (LimitTerm(reason, 0.0),))
        limits = Limits(ccl_a=zero, dcl_a=zero, cvl_v=zero, dvl_v=zero)
        return ControlOutput(
            seq=self._seq,
            t_s=now_s,
            pack=snap,
            soc=None,
            alarms=AlarmReport(),
            limits=limits,
            balancing=BalancingPlan(BalancingMode.OFF, (False,) * snap.cell_count),
            negotiation=self._negotiation,
            mode="normal" if snap.complete else "starting",
        )
