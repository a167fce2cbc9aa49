"""The battery-CAN link to the inverter: python-can transmit, keep-alive tracking, HV poll answers.

``update`` is called by the control loop with every step: the frames ``InverterOutput`` says are
due go out at once (non-blocking sends), so a limit cut reaches the bus within the step that made
it. ``run`` owns the bus: it opens it (reopening with capped, jittered backoff after an interface
error, so a broken inverter bus never ends the gateway), receives the inverter's keep-alive
(LV 0x305/0x307) and polls (HV 0x4200, answered at once: 0x4210-0x4290 for command 0,
0x7310-0x7340 for command 2), and never raises except for a
configuration error (an interface python-can does not know).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import can

from gateway.backoff import Jitter, backoff_s
from gateway.canbus.decode import OutFrame
from gateway.core.model import ControlOutput, InverterLink, Negotiation
from gateway.errors import ConfigError, FrameError
from gateway.inverter_can.config import InverterCanConfig
from gateway.inverter_can.frames import BatteryIdentity, InverterOutput

__all__ = ["BusOpener", "InverterCanLink", "InverterLinkStats", "open_inverter_bus"]

log = logging.getLogger(__name__)

#: Opens the inverter-side bus from the settings (tests may pass their own).
BusOpener = Callable[[InverterCanConfig], can.BusABC]

KEEPALIVE_IDS = frozenset({0x305, 0x307})  # LV: inverter keep-alive / identification
HV_POLL_ID = 0x4200
_HV_ENSEMBLE = 0  # 0x4200 byte 0: 0 ensemble information, 2 system equipment information
_RECV_S = 0.1
_BACKOFF_MIN_S = 0.5
_BACKOFF_MAX_S = 30.0


def open_inverter_bus(config: InverterCanConfig) -> can.BusABC:
    """Open the configured python-can bus (the default ``BusOpener``)."""
    return can.Bus(interface=config.interface, channel=config.channel, bitrate=config.bitrate)


@dataclass(slots=True)
class InverterLinkStats:
    """Counters of the inverter link."""

    tx_frames: int = 0
    tx_errors: int = 0
    encode_errors: int = 0
    keepalives: int = 0
    polls: int = 0
    reopens: int = 0
    last_error: str = ""


class InverterCanLink:
    """Speaks the configured battery-CAN protocol to the inverter.

    Args:
        config: the ``[inverter_can]`` settings (``protocol`` must not be ``off``).
        identity: capacity, manufacturer name, module count.
        clock: monotonic seconds for the keep-alive timeout (wall time: the inverter's promise).
        bus_opener: opens the bus; default ``can.Bus`` with the configured interface.
    """

    def __init__(
        self,
        config: InverterCanConfig,
        identity: BatteryIdentity,
        *,
        clock: Callable[[], float] = time.monotonic,
        bus_opener: BusOpener = open_inverter_bus,
    ) -> None:
        self.config = config
        self.output = InverterOutput(config, identity)
        self.stats = InverterLinkStats()
        self._clock = clock
        self._opener = bus_opener
        self._bus: can.BusABC | None = None
        self._last_keepalive_s: float | None = None
        self.opened = asyncio.Event()

    @property
    def name(self) -> str:
        """``protocol on interface:channel`` for log lines."""
        c = self.config
        return f"{c.protocol.value} on {c.interface}:{c.channel}"

    @property
    def connected(self) -> bool:
        """Whether the bus is open (the gateway is broadcasting)."""
        return self._bus is not None

    def keepalive_alive(self) -> bool | None:
        """Whether the inverter's keep-alive/poll was heard within the timeout; None: never."""
        if self._last_keepalive_s is None:
            return None
        return self._clock() - self._last_keepalive_s <= self.config.keepalive_timeout_s

    # --- the control side ----------------------------------------------------------------------

    def update(self, out: ControlOutput) -> None:
        """Hand one control step to the link; due frames are sent now (never raises)."""
        try:
            frames = self.output.step(out)
        except FrameError as e:
            self._encode_failed(e)
            return
        self._transmit(frames)

    def _encode_failed(self, e: FrameError) -> None:
        # A value the DBC cannot carry is a bug to report, never a reason to stop the step.
        self.stats.encode_errors += 1
        if self.stats.encode_errors == 1:
            log.error("inverter CAN %s: frames not sent: %s", self.name, e)

    def negotiation(self) -> Negotiation:
        """The battery-CAN negotiation: what is broadcast is what is in force.

        The protocols have no acceptance: ``accepted`` = requested. ``connected`` is the bus
        being open, so the disobedience check keeps running while the inverter is silent;
        ``keepalive`` says whether it is heard.
        """
        out = self.output.latest
        ccl = out.limits.ccl_a.value if out is not None else 0.0
        dcl = out.limits.dcl_a.value if out is not None else 0.0
        return Negotiation(
            link=InverterLink(f"can:{self.config.protocol.value}"),
            connected=self.connected,
            requested_ccl_a=ccl,
            requested_dcl_a=dcl,
            accepted_ccl_a=ccl,
            accepted_dcl_a=dcl,
            keepalive=self.keepalive_alive(),
        )

    def _transmit(self, frames: Sequence[OutFrame]) -> None:
        bus = self._bus
        if not frames:
            return
        if bus is None:
            self.stats.tx_errors += len(frames)
            return
        for f in frames:
            msg = can.Message(
                arbitration_id=f.arbitration_id, is_extended_id=f.extended, data=f.data
            )
            try:
                bus.send(msg, timeout=0.0)  # never block the control step
            except (can.CanError, OSError) as e:
                self.stats.tx_errors += 1
                self.stats.last_error = str(e)
                continue
            self.stats.tx_frames += 1

    # --- the bus side --------------------------------------------------------------------------

    def _handle(self, msg: can.Message) -> None:
        if msg.is_error_frame or msg.is_remote_frame:
            return
        hv = self.config.protocol.high_voltage
        if not hv and not msg.is_extended_id and msg.arbitration_id in KEEPALIVE_IDS:
            self.stats.keepalives += 1
            self._seen()
        elif hv and msg.is_extended_id and msg.arbitration_id == HV_POLL_ID:
            self.stats.polls += 1
            self._seen()
            command = msg.data[0] if msg.data else _HV_ENSEMBLE
            try:
                frames = self.output.answer(command)
            except FrameError as e:
                self._encode_failed(e)
                return
            self._transmit(frames)

    def _seen(self) -> None:
        if self._last_keepalive_s is None:
            log.info("inverter CAN %s: inverter heard", self.name)
        self._last_keepalive_s = self._clock()

    def _open(self) -> can.BusABC:
        try:
            return self._opener(self.config)
        except can.CanInterfaceNotImplementedError as e:
            raise ConfigError(f"inverter_can.interface (={self.config.interface!r}): {e}") from None

    async def run(self) -> None:
        """Own the bus until cancelled; reopen it with backoff after errors.

        Raises:
            ConfigError: the interface is unknown to python-can (not retried).
        """
        attempt = 0
        while True:
            try:
                bus = self._open()
            except (can.CanError, OSError, ValueError) as e:
                attempt += 1
                self._failed(f"cannot open: {e}", attempt)
                await asyncio.sleep(self._backoff_s(attempt))
                continue
            if attempt:
                self.stats.reopens += 1
                log.info("inverter CAN %s: open again", self.name)
            else:
                log.info("inverter CAN %s: open", self.name)
            self._bus = bus
            self.opened.set()
            try:
                while True:
                    msg = await asyncio.to_thread(bus.recv, _RECV_S)
                    if msg is not None:
                        self._handle(msg)
            except (can.CanError, OSError, ValueError) as e:
                attempt = max(attempt, 0) + 1
                self._failed(f"link lost: {e}", attempt)
            finally:
                self._bus = None
                self.opened.clear()
                try:
                    bus.shutdown()
                except (can.CanError, OSError) as e:
                    log.debug("inverter CAN %s: shutdown: %s", self.name, e)
            await asyncio.sleep(self._backoff_s(attempt))

    def _failed(self, what: str, attempt: int) -> None:
        self.stats.last_error = what
        level = logging.WARNING if attempt == 1 else logging.DEBUG
        log.log(level, "inverter CAN %s: %s; retrying with backoff", self.name, what)

    @staticmethod
    def _backoff_s(attempt: int) -> float:
        return backoff_s(
            attempt, _BACKOFF_MAX_S, base_s=_BACKOFF_MIN_S, max_exponent=30, jitter=Jitter.HALF
        )
