"""Battery-CAN frames from a control step: which frames go out when, and what they say.

``InverterOutput`` decides which frames are due at a step: the whole profile every ``period_s``,
and the limit frames (0x351 + 0x35C, or HV 0x4220 + 0x4280) at once when a limit is cut or an
enable flag drops; Pylontech HV answers the inverter's 0x4200 polls. ``FrameEncoder`` (in
``gateway.inverter_can.encoder``, re-exported here with the profiles) turns a step into the
signal values of each message and encodes them with the generated DBCs. Pure apart from the
one-time DBC load: the daemon's link and ``replay --tx-out`` share it.
"""

from __future__ import annotations

from gateway.canbus.decode import OutFrame
from gateway.core.model import BatteryRequests, ControlOutput
from gateway.core.requests import RequestPlanner
from gateway.inverter_can.config import InverterCanConfig
from gateway.inverter_can.encoder import (
    HV_SYSTEM_INFO,
    LIMIT_MESSAGES,
    PROFILES,
    BatteryIdentity,
    FrameEncoder,
    load_inverter_dbc,
)

__all__ = [
    "HV_SYSTEM_INFO",
    "LIMIT_MESSAGES",
    "PROFILES",
    "BatteryIdentity",
    "FrameEncoder",
    "InverterOutput",
    "load_inverter_dbc",
]


class InverterOutput:
    """Which frames go out at each control step (shared by the daemon and replay).

    Every ``period_s`` of step time the whole profile; between periods, the limit frames at once
    when CCL, DCL, CVL or an enable flag went down since the last frames, so the inverter hears
    a cut within the step that made it. Pylontech HV answers polls (``answer``); it broadcasts
    its profile on the period only while no poll arrived for two periods.
    """

    def __init__(self, config: InverterCanConfig, identity: BatteryIdentity) -> None:
        self.config = config
        self.encoder = FrameEncoder(config.protocol, identity)
        self.planner = RequestPlanner(config.thresholds())
        self.requests: BatteryRequests | None = None
        self.latest: ControlOutput | None = None
        self._next_period_s: float | None = None
        self._sent: _Heard | None = None
        self.last_poll_s: float | None = None
        self.cuts = 0

    def step(self, out: ControlOutput) -> list[OutFrame]:
        """The frames due at the step ``out`` (its ``requests``; planned here when absent)."""
        req = self.requests = out.requests if out.requests is not None else self.planner.step(out)
        self.latest = out
        state = _heard(out, req)
        now = out.t_s
        period = self.config.period_s
        due = self._next_period_s is None or now >= self._next_period_s
        if due:
            nxt = (self._next_period_s or now) + period
            # After a stall, restart the period from now rather than sending bursts to catch up.
            self._next_period_s = nxt if nxt > now else now + period
        polled = (
            self.encoder.high_voltage
            and self.last_poll_s is not None
            and now - self.last_poll_s <= 2 * period
        )
        if due and not polled:
            self._sent = state
            return self.encoder.frames(out, req)
        if self._sent is not None and _cut(self._sent, state):
            self._sent = state
            self.cuts += 1
            return self.encoder.frames(out, req, LIMIT_MESSAGES[self.encoder.high_voltage])
        # A rise waits for the next period: ``_sent`` stays what the inverter last heard.
        return []

    def answer(self, command: int = 0) -> list[OutFrame]:
        """The HV answer to an inverter poll 0x4200: ``command`` 0 (ensemble information, from
        the latest step) or 2 (system equipment information); other commands get no answer.

        The poll is dated with the latest step's time, so periods and polls share one clock (the
        step clock, which a demo may accelerate).
        """
        if command == 2:
            return self.encoder.system_info() if self.encoder.high_voltage else []
        if command != 0 or self.latest is None or self.requests is None:
            return []  # nothing to say yet: the first step broadcasts instead
        self.last_poll_s = self.latest.t_s
        self._sent = _heard(self.latest, self.requests)
        return self.encoder.frames(self.latest, self.requests)


# What the inverter heard last, each entry oriented so that a decrease is a cut: CCL, DCL, CVL,
# minus DVL (a higher DVL restricts discharge), and the two enable flags.
_Heard = tuple[float, float, float, float, bool, bool]


def _heard(out: ControlOutput, req: BatteryRequests) -> _Heard:
    lim = out.limits
    return (
        lim.ccl_a.value,
        lim.dcl_a.value,
        lim.cvl_v.value,
        -lim.dvl_v.value,
        req.charge_enable,
        req.discharge_enable,
    )


def _cut(sent: _Heard, now: _Heard) -> bool:
    return any(n < s - 1e-9 for s, n in zip(sent, now, strict=True))
