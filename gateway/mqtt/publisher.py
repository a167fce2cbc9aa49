"""The MQTT adapter: publishes diagnostics and receives commands over aiomqtt.

The control loop hands each ``ControlOutput`` to ``MqttPublisher.publish_output`` (never blocks,
never awaits the broker); ``run()`` owns the connection: it connects, publishes at the configured
rates, answers commands and reconnects with capped, jittered backoff. aiomqtt errors are
translated into ``MqttLinkError`` and never leave the adapter.

The parts, one module each: ``outbox`` (the bounded queue of alarm changes, balancing changes
and events kept while the broker is away; the oldest is dropped and counted, and the count is
reported in the ``mqtt_link_recovered`` event), ``session`` (one aiomqtt connection, error
translation, what is logged across reconnects), ``scheduler`` (when ``state``, ``cells`` and the
heartbeat are due), ``discovery`` (Home Assistant configs and what the broker has of them),
``inbox`` (commands and their replies) and ``tls``. Only this module and ``session`` import
aiomqtt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiomqtt

from gateway.backoff import Jitter
from gateway.backoff import backoff_s as _backoff_s
from gateway.cancel import raise_if_cancelling
from gateway.core.health import HealthReport
from gateway.core.model import AlarmReport, BalancingPlan, Command, CommandResult, ControlOutput
from gateway.errors import MqttLinkError
from gateway.logflood import install_flood_filter
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.discovery import HaDiscovery
from gateway.mqtt.health import health_payload
from gateway.mqtt.inbox import Inbox
from gateway.mqtt.outbox import Msg, Outbox, deferred_json
from gateway.mqtt.payloads import (
    alarms_key,
    alarms_payload,
    alarms_payload_of,
    balancing_key,
    balancing_payload,
    balancing_payload_of,
    cells_payload,
    event_payload,
    state_payload,
)
from gateway.mqtt.scheduler import Schedule
from gateway.mqtt.session import (
    GOODBYE_S,
    LinkWatch,
    first_to_end,
    group_link_error,
    link_error,
    new_client,
    probe_broker,
)
from gateway.mqtt.tls import tls_context
from gateway.mqtt.topics import Topics

__all__ = ["MqttPublisher", "MqttStatus", "backoff_s", "probe_broker"]

log = logging.getLogger(__name__)


def backoff_s(attempt: int, cap_s: float) -> float:
    """Reconnect delay before ``attempt`` (1-based): full jitter, exponential, capped."""
    return _backoff_s(attempt, cap_s, jitter=Jitter.FULL_CLIPPED)


@dataclass(frozen=True, slots=True)
class MqttStatus:
    """What the publisher is doing, for the demo view and logs."""

    broker: str
    connected: bool
    messages_sent: int
    events_dropped: int
    reconnects: int
    last_error: str
    queued: int = 0  # alarm changes, balancing changes and events waiting for the broker


class MqttPublisher:
    """Publishes gateway diagnostics to an MQTT broker and passes commands to ``on_command``.

    Args:
        config: the ``[mqtt]`` settings.
        gateway_id: the second topic level (``control.gateway_id``).
        on_command: called (in the event loop, synchronously) with each valid, authorised
            command; its ``CommandResult`` is published on ``<prefix>/<gateway_id>/cmd/result``.
        health: the health history runs: publish Home Assistant sensors for the ``health`` topic.
        clock: monotonic seconds for the rates of ``state``, ``cells`` and the heartbeat (tests
            inject one they move; the publisher then looks at it whenever it is woken).
    """

    def __init__(
        self,
        config: MqttConfig,
        gateway_id: str,
        on_command: Callable[[Command], CommandResult],
        *,
        health: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._clock = clock
        self.topics = Topics(config.prefix, gateway_id, config.discovery_prefix)
        self._gateway_id = gateway_id
        self._latest: ControlOutput | None = None
        self._alarm_key: Any = None
        self._balancing_key: Any = None
        self._last_alarms: AlarmReport | None = None
        self._last_plan: BalancingPlan | None = None
        self._outbox = Outbox(config.queue_size)
        self._wake = asyncio.Event()
        self._sent = 0
        self._reconnects = 0
        self._connected = False
        self._last_error = ""
        # Per connection: what the broker has from us (it may have restarted without retained).
        self._sent_alarm_key: Any = None
        self._sent_balancing_key: Any = None
        self._discovery = HaDiscovery(
            self.topics, enabled=config.discovery, per_cell=config.discovery_cells, health=health
        )
        self._inbox = Inbox(config, self.topics, gateway_id, on_command, self._ha_online)
        self._link = LinkWatch(f"{config.host}:{config.port}")
        self._tls: ssl.SSLContext | None = None

    # --- called by the control loop (never blocks) --------------------------------------------

    def publish_output(self, out: ControlOutput) -> None:
        """Hand over the latest control step; returns at once (call it from the event loop).

        Alarm and balancing changes are queued at once; their JSON is built by the publisher
        task, from the (frozen) report or plan of this step, not here.
        """
        self._latest = out
        gid = self._gateway_id
        # Same object as last step: unchanged, and no key to compute.
        if out.alarms is not self._last_alarms:
            self._last_alarms = out.alarms
            akey = alarms_key(out.alarms)
            if akey != self._alarm_key:
                self._alarm_key = akey
                build = partial(
                    deferred_json, alarms_payload_of, out.alarms, out.seq, out.t_s, gid, time.time()
                )
                self._push(Msg(self.topics.alarms, build, True, 1, "alarms", akey))
        if out.balancing is not self._last_plan:
            self._last_plan = out.balancing
            bkey = balancing_key(out.balancing)
            if bkey != self._balancing_key:
                self._balancing_key = bkey
                build = partial(
                    deferred_json,
                    balancing_payload_of,
                    out.balancing,
                    out.seq,
                    out.t_s,
                    gid,
                    time.time(),
                )
                self._push(Msg(self.topics.balancing, build, True, 1, "balancing", bkey))

    def publish_health(self, report: HealthReport) -> None:
        """Queue the ``health`` report (retained); its JSON is built when it is sent."""
        build = partial(deferred_json, health_payload, report, self._gateway_id, time.time())
        self._push(Msg(self.topics.health, build, True, 1, "health"))

    def event(self, name: str, **data: Any) -> None:
        """Queue an event (``start``, ``stop``, ``config_loaded``, ``can_link_lost``, ...).

        ``data`` should be JSON-serialisable; anything else is sent as its ``str()``.
        """
        payload = event_payload(name, self._gateway_id, time.time(), data)
        self._push(
            Msg(self.topics.events, payload.model_dump_json(fallback=str), False, 1, "event")
        )

    @property
    def status(self) -> MqttStatus:
        """Connection state and counters."""
        return MqttStatus(
            broker=self._link.broker,
            connected=self._connected,
            messages_sent=self._sent,
            events_dropped=self._outbox.dropped_total,
            reconnects=self._reconnects,
            last_error=self._last_error,
            queued=len(self._outbox),
        )

    def _push(self, msg: Msg) -> None:
        self._outbox.push(msg)
        self._wake.set()

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish and reconnect until cancelled. Never raises a link error.

        Raises:
            ConfigError: a TLS file named by the settings cannot be used.
        """
        self._tls = await asyncio.to_thread(tls_context, self.config)
        install_flood_filter("mqtt", "aiomqtt")  # "Message queue is full" once a minute at most
        attempt = 0
        while True:
            try:
                await self._session(self._on_up)
            except MqttLinkError as e:
                self._last_error = str(e)
                self._link.failed(e)
            # A stop that arrived in the same turn as the link failure was absorbed by the
            # session's TaskGroup (it raised the link error, not the cancellation): honour it
            # here, or the loop would reconnect for ever and the shutdown would hang.
            raise_if_cancelling()
            attempt = self._link.next_attempt(attempt)
            self._reconnects += 1
            await asyncio.sleep(backoff_s(attempt, self.config.reconnect_max_s))

    def _on_up(self) -> None:
        """Connected: report the outage once (with the drop count)."""
        outage = self._link.up(self._outbox.dropped)
        if outage is None:
            return
        gid = self._gateway_id
        lost = event_payload("mqtt_link_lost", gid, outage.lost_time_s, {"reason": outage.reason})
        recovered = event_payload(
            "mqtt_link_recovered",
            gid,
            time.time(),
            {"down_s": round(outage.down_s, 3), "dropped": self._outbox.dropped},
        )
        # First out (lost, then recovered), and beyond the queue bound: reporting the drops
        # must not drop more.
        for ev in (recovered, lost):
            self._outbox.push_front(
                Msg(self.topics.events, ev.model_dump_json(), False, 1, "event")
            )
        self._outbox.dropped = 0

    def _ha_online(self) -> None:
        """Home Assistant came online: send discovery again."""
        self._discovery.forget()
        self._wake.set()

    async def _session(self, on_up: Callable[[], None]) -> None:
        """One connection: calls ``on_up`` once connected; raises ``MqttLinkError`` when it ends."""
        topics = self.topics
        client = new_client(self.config, topics, self._gateway_id, self._tls)
        try:
            async with client:
                self._connected = True
                self._sent_alarm_key = None
                self._sent_balancing_key = None
                self._discovery.forget()
                try:
                    await self._send(client, Msg(topics.availability, "online", True, 1))
                    await client.subscribe([(topics.command_filter, 1), (topics.ha_status, 1)])
                    on_up()
                    await first_to_end(
                        asyncio.create_task(self._sender(client), name="gateway.mqtt.send"),
                        asyncio.create_task(self._receiver(client), name="gateway.mqtt.recv"),
                    )
                except asyncio.CancelledError:
                    await self._goodbye(client)
                    raise
                finally:
                    self._connected = False
        except aiomqtt.MqttError as e:
            raise link_error(e) from None
        except BaseExceptionGroup as eg:
            err = group_link_error(eg)
            if err is None:
                raise
            raise err from None
        raise MqttLinkError("the broker closed the connection")

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """At shutdown: flush queued events (``stop``) and say ``offline`` within a second."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(GOODBYE_S):
                await self._drain(client)
                await self._send(client, Msg(self.topics.availability, "offline", True, 1))

    async def _send(self, client: aiomqtt.Client, msg: Msg) -> None:
        await client.publish(msg.topic, msg.text(), qos=msg.qos, retain=msg.retain)
        self._sent += 1

    async def _drain(self, client: aiomqtt.Client) -> None:
        # A message leaves the queue once the broker has it: a publish that failed with the link
        # is sent again on the next connection (at least once, as QoS 1 promises). A publish
        # interrupted by cancellation is already in the client's socket buffer: it counts as sent,
        # so the shutdown flush does not send it twice.
        while (msg := self._outbox.head()) is not None:
            try:
                await self._send(client, msg)
            except asyncio.CancelledError:
                self._outbox.forget(msg)
                raise
            self._outbox.forget(msg)
            if msg.kind == "alarms":
                self._sent_alarm_key = msg.key
            elif msg.kind == "balancing":
                self._sent_balancing_key = msg.key

    async def _send_discovery(self, client: aiomqtt.Client, out: ControlOutput) -> None:
        def publish(topic: str, payload: str) -> Coroutine[Any, Any, None]:
            return self._send(client, Msg(topic, payload, True, 1))

        sent = await self._discovery.send(publish, out.pack.cell_count, len(out.pack.cell_temp_c))
        if sent is not None:
            log.info(
                "MQTT discovery: %s %d Home Assistant entities",
                "published" if self.config.discovery else "removed",
                sent,
            )

    async def _send_latest(
        self, client: aiomqtt.Client, out: ControlOutput, sched: Schedule, now: float
    ) -> None:
        """Resend the retained alarms or balancing the broker lacks; state and cells when due."""
        topics = self.topics
        gid = self._gateway_id
        # The broker may have lost retained messages (a restart): resend the current ones.
        if self._sent_alarm_key != self._alarm_key:
            payload = alarms_payload(out, gid, time.time()).model_dump_json()
            await self._send(client, Msg(topics.alarms, payload, True, 1))
            self._sent_alarm_key = self._alarm_key
        if self._sent_balancing_key != self._balancing_key:
            payload = balancing_payload(out, gid, time.time()).model_dump_json()
            await self._send(client, Msg(topics.balancing, payload, True, 1))
            self._sent_balancing_key = self._balancing_key
        if sched.state_due(now):
            payload = state_payload(out, gid, time.time()).model_dump_json()
            await self._send(client, Msg(topics.state, payload, False, 0))
            sched.state_sent(now)
        if sched.cells_due(now):
            payload = cells_payload(out, gid, time.time()).model_dump_json()
            await self._send(client, Msg(topics.cells, payload, False, 0))
            # With the cells: the charge each action has moved so far.
            payload = balancing_payload(out, gid, time.time()).model_dump_json()
            await self._send(client, Msg(topics.balancing, payload, True, 0))
            sched.cells_sent(now)
        # After the first state: discovery of a big pack is thousands of messages.
        await self._send_discovery(client, out)

    async def _sender(self, client: aiomqtt.Client) -> None:
        """Publish queued messages at once, state and cells at their rates, a heartbeat."""
        cfg = self.config
        sched = Schedule(self._clock(), cfg.state_interval_s, cfg.cells_interval_s, cfg.heartbeat_s)
        while True:
            raise_if_cancelling()
            self._wake.clear()
            await self._drain(client)
            out = self._latest
            now = self._clock()
            if out is not None:
                await self._send_latest(client, out, sched, now)
            if sched.beat_due(now):
                # QoS 1 with a timeout: a broker that stopped answering fails here, not silently.
                await self._send(client, Msg(self.topics.availability, "online", True, 1))
                sched.beat_sent(now)
            wait_s = sched.next_due_s(out is not None) - self._clock()
            if wait_s <= 0:
                # QoS 0 publishes do not suspend: yield so a busy publisher never starves the
                # control loop.
                await asyncio.sleep(0)
            else:
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation that
                # races with the event being set, and the TaskGroup would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
            raise_if_cancelling()

    async def _receiver(self, client: aiomqtt.Client) -> None:
        """Commands (each answered on ``cmd/result``) and Home Assistant's birth message."""
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            reply = self._inbox.handle(message.topic.value, payload, retained=message.retain)
            if reply is not None:
                await self._send(client, reply)
                raise_if_cancelling()
