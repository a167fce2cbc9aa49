"""The CAN link: python-can receive and transmit on the event loop, with reconnect.

Frames are received on the event loop: an interface with a file descriptor (SocketCAN) is watched
with ``loop.add_reader``; others (``virtual``, USB adapters) are read by one helper thread that
hands batches to the loop (``canbus.reader``). Each frame is decoded at once and passed to
``on_frame`` with its receive time: the interface's timestamp mapped onto the monotonic clock and
clamped to now (``canbus.rxtime``); with an injected clock (tests, the accelerated demo) the
clock's time at dequeue. A frame whose timestamp cannot be real is counted (``time``) and not
decoded. The link never reads or writes the pack state itself.

python-can's ``Notifier`` is not used because, in its event-loop mode, a failing file-descriptor
reader never reaches the listeners' ``on_error`` and a failing reader thread re-raises after
reporting; the link needs every interface failure as one event it can reconnect on.

``heartbeat_signals`` (``canbus.heartbeat``) is re-exported here, where its callers import it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import can

from gateway.backoff import Jitter, backoff_s
from gateway.canbus.config import CanConfig
from gateway.canbus.decode import Decoder, FrameDecodeError, OutFrame, load_decoder
from gateway.canbus.heartbeat import heartbeat_signals
from gateway.canbus.reader import start_reader
from gateway.canbus.rxtime import RxClock
from gateway.core.model import Reading
from gateway.errors import CanLinkError, ConfigError

__all__ = ["BusFactory", "CanLink", "FrameCallback", "LinkStats", "heartbeat_signals"]

log = logging.getLogger(__name__)

#: ``on_frame(readings, t_s)``: the readings of one decoded frame, or ``None`` when it was dropped.
FrameCallback = Callable[[list[Reading] | None, float], None]

#: Opens a bus from the settings (tests pass one that keeps the buses it made).
BusFactory = Callable[[CanConfig], can.BusABC]

_CAN_ERR_BUSOFF = 0x40  # linux/can/error.h: the controller went bus-off
_MAX_PENDING = 20_000  # frames waiting for the loop; beyond this the loop is stalled: drop


@dataclass(slots=True)
class LinkStats:
    """Counters of the link (the decoder keeps its own in ``decoder.counters``)."""

    connected: bool = False
    """Whether the interface is open now."""
    reconnects: int = 0
    """Recoveries after a lost or unopenable interface."""
    rx_frames: int = 0
    """Frames received (every id, error frames included)."""
    error_frames: int = 0
    """Error frames reported by the controller (SocketCAN); bus-off ones trigger a reconnect."""
    overflow: int = 0
    """Frames dropped because the event loop fell more than 20,000 frames behind."""
    tx_frames: int = 0
    """Frames sent."""
    tx_errors: int = 0
    """Frames not sent: link down or transmit queue full."""
    last_rx_s: float | None = None
    """Clock time of the last received frame (staleness of the whole bus)."""
    down_since_s: float | None = None
    """Clock time the link went down; None while up."""
    last_error: str = ""
    """The last interface error, for diagnostics."""


def open_bus(config: CanConfig) -> can.BusABC:
    """Open the configured python-can bus (the default ``BusFactory``)."""
    kwargs: dict[str, Any] = {"interface": config.interface, "channel": config.channel}
    if config.bitrate is not None:
        kwargs["bitrate"] = config.bitrate
    if config.receive_filters:
        kwargs["can_filters"] = [
            {"can_id": f.can_id, "can_mask": f.mask, "extended": f.extended}
            for f in config.receive_filters
        ]
    return can.Bus(**kwargs)


class CanLink:
    """Receives, decodes and transmits CAN frames; reconnects on interface errors.

    Args:
        config: the ``[can]`` settings.
        on_frame: called on the event loop for every frame of a mapped message:
            ``on_frame(readings, t_s)``, ``readings`` is ``None`` when the frame was dropped
            (the reason is counted in ``decoder.counters.errors``). Unmapped ids are counted in
            ``decoder.counters.ignored`` and not passed on.
        clock: monotonic seconds. With the default (``time.monotonic``) a reading is stamped
            with the interface's receive time mapped onto it; with any other clock, with the
            clock's time when the frame is dequeued.
        decoder: a compiled decoder; by default loaded from ``config`` (ConfigError on a bad
            profile or DBC, raised here, at start).
        bus_factory: opens the bus; by default ``can.Bus`` with the configured interface.
    """

    def __init__(
        self,
        config: CanConfig,
        on_frame: FrameCallback,
        *,
        clock: Callable[[], float] = time.monotonic,
        decoder: Decoder | None = None,
        bus_factory: BusFactory = open_bus,
    ) -> None:
        self.config = config
        self.decoder = decoder if decoder is not None else load_decoder(config)
        self.stats = LinkStats()
        self._on_frame = on_frame
        self._clock = clock
        self._rx_clock = RxClock() if clock is time.monotonic else None
        self._bus_factory = bus_factory
        self._bus: can.BusABC | None = None
        self._pending: deque[can.Message] = deque()
        self._wake: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._connected_once = asyncio.Event()
        self._logged: set[str] = set()  # keys of messages logged once (first drop per reason)

    @property
    def name(self) -> str:
        """``interface:channel`` for log lines."""
        return f"{self.config.interface}:{self.config.channel}"

    @property
    def connected(self) -> bool:
        """Whether the interface is open now."""
        return self._bus is not None

    async def wait_connected(self) -> None:
        """Wait until the interface has been opened once (tests and start-up ordering)."""
        await self._connected_once.wait()

    # --- transmit ------------------------------------------------------------------------------

    def send(self, message_name: str, signals: Mapping[str, float]) -> bool:
        """Encode ``message_name`` with the DBC and send it; False when the link is down.

        Raises:
            FrameError: the message is not in the DBC, or a signal is missing or out of range.
        """
        frame = self.decoder.encode(message_name, dict(signals))
        return self._transmit([frame]) == 1

    def send_balancing(self, bleed: Sequence[bool]) -> int:
        """Send the balancing command for ``bleed`` (one flag per cell); the frames sent.

        Uses the profile's ``balancing_command`` mapping; a profile without one sends nothing.
        """
        return self._transmit(self.decoder.encode_balancing(bleed))

    def _transmit(self, frames: Sequence[OutFrame]) -> int:
        bus = self._bus
        if bus is None:
            self.stats.tx_errors += len(frames)
            return 0
        sent = 0
        for f in frames:
            msg = can.Message(
                arbitration_id=f.arbitration_id, is_extended_id=f.extended, data=f.data
            )
            try:
                # Never block the event loop: a full transmit queue is a dropped frame.
                bus.send(msg, timeout=0.0)
            except (can.CanError, OSError) as e:
                self.stats.tx_errors += 1
                self._once("tx", logging.WARNING, "CAN %s: send failed: %s", self.name, e)
                continue
            sent += 1
        self.stats.tx_frames += sent
        return sent

    # --- receive -------------------------------------------------------------------------------

    def _handle(self, msg: can.Message) -> None:
        now_s = self._clock()
        stats = self.stats
        stats.rx_frames += 1
        stats.last_rx_s = now_s
        rx = self._rx_clock
        t = now_s if rx is None else rx.stamp(msg.timestamp, now_s)
        if t is None:
            if self.decoder.handles(msg.arbitration_id, msg.is_extended_id):
                self.decoder.count_bad_time()
                self._once(
                    "drop:time",
                    logging.WARNING,
                    "CAN %s: dropped a frame stamped %r (not a real time); further drops for "
                    "this reason are only counted",
                    self.name,
                    msg.timestamp,
                )
                self._on_frame(None, now_s)
            return
        t_s = t
        if msg.is_error_frame:
            stats.error_frames += 1
            if msg.arbitration_id & _CAN_ERR_BUSOFF:
                self._failure = CanLinkError("controller is bus-off")
            return
        decoder = self.decoder
        if not decoder.handles(msg.arbitration_id, msg.is_extended_id):
            decoder.counters.ignored += 1
            return
        if msg.is_remote_frame:
            decoder.count_remote()
            self._on_frame(None, t_s)
            return
        try:
            readings = decoder.decode(msg.arbitration_id, bytes(msg.data), t_s, msg.is_extended_id)
        except FrameDecodeError as e:
            self._once(
                f"drop:{e.reason}",
                logging.WARNING,
                "CAN %s: dropped a frame (%s); further drops for this reason are only counted",
                self.name,
                e,
            )
            self._on_frame(None, t_s)
            return
        self._on_frame(readings, t_s)

    def _deliver(self, batch: list[can.Message]) -> None:
        """On the loop: queue received frames and wake the receive task."""
        room = _MAX_PENDING - len(self._pending)
        if len(batch) > room:
            self.stats.overflow += len(batch) - max(room, 0)
            batch = batch[: max(room, 0)]
        self._pending.extend(batch)
        if self._wake is not None:
            self._wake.set()

    def _fail(self, exc: BaseException) -> None:
        """On the loop: the interface failed; the receive task reconnects."""
        if self._failure is None:
            self._failure = exc
        if self._wake is not None:
            self._wake.set()

    async def _receive(self, bus: can.BusABC) -> None:
        """Process frames until the interface fails; then raise CanLinkError."""
        loop = asyncio.get_running_loop()
        wake = self._wake = asyncio.Event()
        self._failure = None
        self._pending.clear()
        stop_reader = start_reader(bus, loop, self._deliver, self._fail, self.name)
        try:
            while True:
                await wake.wait()
                wake.clear()
                pending = self._pending
                while pending:
                    self._handle(pending.popleft())
                    if self._failure is not None:
                        break
                if self._failure is not None:
                    raise CanLinkError(str(self._failure) or type(self._failure).__name__)
        finally:
            stop_reader()
            self._wake = None

    def _open(self) -> can.BusABC:
        try:
            return self._bus_factory(self.config)
        except can.CanInterfaceNotImplementedError as e:
            raise ConfigError(f"can.interface (={self.config.interface!r}): {e}") from None
        except (can.CanError, OSError, ValueError) as e:
            raise CanLinkError(f"cannot open {self.name}: {e}") from None

    def _backoff_s(self, attempt: int) -> float:
        cfg = self.config
        # Jitter so many gateways do not retry in step.
        return backoff_s(
            attempt,
            cfg.reconnect_max_s,
            base_s=cfg.reconnect_min_s,
            max_exponent=30,
            jitter=Jitter.HALF,
        )

    def _once(self, key: str, level: int, fmt: str, *args: object) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.log(level, fmt, *args)

    async def run(self) -> None:
        """Receive until cancelled; reopen the interface with capped, jittered backoff.

        Raises:
            ConfigError: the interface name is unknown to python-can (not retried).
        """
        attempt = 0
        lost = False
        try:
            while True:
                try:
                    bus = self._open()
                except CanLinkError as e:
                    self.stats.last_error = str(e)
                    if not lost:
                        lost = True
                        self.stats.down_since_s = self._clock()
                        log.warning("CAN %s: %s; retrying with backoff", self.name, e)
                    attempt += 1
                    await asyncio.sleep(self._backoff_s(attempt))
                    continue
                if lost:
                    down = self._clock() - (self.stats.down_since_s or self._clock())
                    log.info("CAN %s: link recovered after %.1f s", self.name, down)
                    self.stats.reconnects += 1
                    lost = False
                else:
                    log.info("CAN %s: open", self.name)
                self.stats.down_since_s = None
                self._bus = bus
                self.stats.connected = True
                self._connected_once.set()
                try:
                    await self._receive(bus)
                except CanLinkError as e:
                    lost = True
                    attempt = 1
                    self.stats.last_error = str(e)
                    self.stats.down_since_s = self._clock()
                    log.warning("CAN %s: link lost (%s); reconnecting", self.name, e)
                finally:
                    self._bus = None
                    self.stats.connected = False
                    self._close(bus)
                await asyncio.sleep(self._backoff_s(attempt))
        finally:
            self.stats.connected = False

    def _close(self, bus: can.BusABC) -> None:
        try:
            bus.shutdown()
        except (can.CanError, OSError) as e:
            log.debug("CAN %s: shutdown: %s", self.name, e)
