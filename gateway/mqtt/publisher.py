"""The MQTT adapter: publishes diagnostics and receives commands over aiomqtt.

This is the only module that imports aiomqtt. The control loop hands each ``ControlOutput`` to
``MqttPublisher.publish_output`` (never blocks, never awaits the broker); ``run()`` owns the
connection: it connects, publishes at the configured rates, answers commands and reconnects with
capped, jittered backoff. aiomqtt errors are translated into ``MqttLinkError`` here and never
leave this module.

While the broker is away only the latest output is kept (``state``, ``cells``), plus a bounded
queue of alarm changes, balancing changes and events: when it is full the oldest entry is
dropped and counted, and the count is reported in the ``mqtt_link_recovered`` event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from pydantic import BaseModel

from gateway.backoff import Jitter
from gateway.backoff import backoff_s as _backoff_s
from gateway.cancel import raise_if_cancelling
from gateway.core.health import HealthReport
from gateway.core.model import AlarmReport, BalancingPlan, Command, CommandResult, ControlOutput
from gateway.errors import ConfigError, GatewayError, MqttLinkError
from gateway.logflood import install_flood_filter
from gateway.mqtt.commands import parse_command
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.discovery import discovery_messages, removal_messages
from gateway.mqtt.health import health_payload
from gateway.mqtt.payloads import (
    alarms_key,
    alarms_payload,
    alarms_payload_of,
    balancing_key,
    balancing_payload,
    balancing_payload_of,
    cells_payload,
    command_result_payload,
    event_payload,
    state_payload,
)
from gateway.mqtt.topics import RESULT, Topics

__all__ = ["MqttPublisher", "MqttStatus", "backoff_s", "probe_broker"]

log = logging.getLogger(__name__)

_GOODBYE_S = 1.0  # at shutdown, time allowed to flush queued events and say "offline"
_DISCOVERY_BATCH = 200  # QoS 1 discovery configs in flight at once (1500+ for a 512-cell pack)
# Incoming messages (commands, Home Assistant's birth) waiting to be handled; beyond it aiomqtt
# discards them, so a publisher flooding cmd/ costs bounded memory (its warnings are rate-limited).
_MAX_INCOMING = 64


def backoff_s(attempt: int, cap_s: float) -> float:
    """Reconnect delay before ``attempt`` (1-based): full jitter, exponential, capped."""
    return _backoff_s(attempt, cap_s, jitter=Jitter.FULL_CLIPPED)


async def probe_broker(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether an MQTT broker accepts an anonymous connection at ``host:port``."""
    try:
        async with asyncio.timeout(timeout_s):
            client = aiomqtt.Client(host, port, timeout=timeout_s, keepalive=5)
            async with client:
                return True
    except (aiomqtt.MqttError, TimeoutError):
        return False


def _json(build: Callable[..., BaseModel], *args: Any) -> str:
    """``build(*args)`` as JSON (deferred by ``partial`` until the message is sent)."""
    return build(*args).model_dump_json()


def _describe(e: BaseException) -> str:
    """One line for a link error, with its cause (aiomqtt wraps the reason of a disconnect)."""
    text = str(e) or type(e).__name__
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text


# CONNACK codes of a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135).
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})


def _login_refused(e: BaseException) -> bool:
    """Whether ``e`` is the broker refusing our credentials (a configuration problem)."""
    if not isinstance(e, MqttConnectError):
        return False
    rc = e.rc
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _LOGIN_REFUSED


async def _first_to_end(*tasks: asyncio.Task[None]) -> None:
    """Wait until one of ``tasks`` ends, cancel the others, and raise what the first raised.

    Not a TaskGroup: on Python 3.11 a TaskGroup whose child fails cancels its parent task and,
    when the body had already finished, never takes that back (``cancelling()`` stays 1; fixed
    in 3.12). The reconnect loop reads ``cancelling()`` to tell a stop from a link failure, so a
    leftover count would end the publisher for good at the first broker outage.
    """
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        # Bounded: the children only await the client, which is closing with them.
        await asyncio.wait(tasks, timeout=_GOODBYE_S)
    for t in tasks:
        if t in done and not t.cancelled() and t.exception() is not None:
            raise cast(BaseException, t.exception())


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


@dataclass(frozen=True, slots=True)
class _Msg:
    topic: str
    payload: str | Callable[[], str]  # a callable is built when sent, not in the control step
    retain: bool
    qos: int
    kind: str = ""  # "alarms" | "balancing" | "event"
    key: Any = None  # alarms_key / balancing_key of an alarms or balancing message


class MqttPublisher:
    """Publishes gateway diagnostics to an MQTT broker and passes commands to ``on_command``.

    Args:
        config: the ``[mqtt]`` settings.
        gateway_id: the second topic level (``control.gateway_id``).
        on_command: called (in the event loop, synchronously) with each valid, authorised
            command; its ``CommandResult`` is published on ``<prefix>/<gateway_id>/cmd/result``.
        health: the health history runs: publish Home Assistant sensors for the ``health`` topic.
    """

    def __init__(
        self,
        config: MqttConfig,
        gateway_id: str,
        on_command: Callable[[Command], CommandResult],
        *,
        health: bool = False,
    ) -> None:
        self.config = config
        self._health = health
        self.topics = Topics(config.prefix, gateway_id, config.discovery_prefix)
        self._on_command = on_command
        self._gateway_id = gateway_id
        self._token = (
            config.command_token.get_secret_value() if config.command_token is not None else None
        )
        self._latest: ControlOutput | None = None
        self._alarm_key: Any = None
        self._balancing_key: Any = None
        self._last_alarms: AlarmReport | None = None
        self._last_plan: BalancingPlan | None = None
        self._queue: deque[_Msg] = deque()
        self._wake = asyncio.Event()
        self._dropped = 0  # since the last report
        self._dropped_total = 0
        self._sent = 0
        self._reconnects = 0
        self._connected = False
        self._last_error = ""
        # Per connection: what the broker has from us (it may have restarted without retained).
        self._sent_alarm_key: Any = None
        self._sent_balancing_key: Any = None
        self._discovery_sent: tuple[int, int] | None = None
        self._tls: ssl.SSLContext | None = None
        self._was_up = False  # connected at least once
        self._down_since: float | None = None  # monotonic time the link was lost
        self._connected_once_this_try = False
        self._lost: tuple[float, str] = (0.0, "")  # wall time and reason of the last link loss
        self._login_refused_logged = False  # a refused login is logged once until connected

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
                    _json, alarms_payload_of, out.alarms, out.seq, out.t_s, gid, time.time()
                )
                self._push(_Msg(self.topics.alarms, build, True, 1, "alarms", akey))
        if out.balancing is not self._last_plan:
            self._last_plan = out.balancing
            bkey = balancing_key(out.balancing)
            if bkey != self._balancing_key:
                self._balancing_key = bkey
                build = partial(
                    _json, balancing_payload_of, out.balancing, out.seq, out.t_s, gid, time.time()
                )
                self._push(_Msg(self.topics.balancing, build, True, 1, "balancing", bkey))

    def publish_health(self, report: HealthReport) -> None:
        """Queue the ``health`` report (retained); its JSON is built when it is sent."""
        build = partial(_json, health_payload, report, self._gateway_id, time.time())
        self._push(_Msg(self.topics.health, build, True, 1, "health"))

    def event(self, name: str, **data: Any) -> None:
        """Queue an event (``start``, ``stop``, ``config_loaded``, ``can_link_lost``, ...).

        ``data`` should be JSON-serialisable; anything else is sent as its ``str()``.
        """
        payload = event_payload(name, self._gateway_id, time.time(), data)
        self._push(
            _Msg(self.topics.events, payload.model_dump_json(fallback=str), False, 1, "event")
        )

    @property
    def status(self) -> MqttStatus:
        """Connection state and counters."""
        return MqttStatus(
            broker=f"{self.config.host}:{self.config.port}",
            connected=self._connected,
            messages_sent=self._sent,
            events_dropped=self._dropped_total,
            reconnects=self._reconnects,
            last_error=self._last_error,
            queued=len(self._queue),
        )

    def _push(self, msg: _Msg) -> None:
        if len(self._queue) >= self.config.queue_size:
            self._queue.popleft()
            self._dropped += 1
            self._dropped_total += 1
        self._queue.append(msg)
        self._wake.set()

    # --- the connection -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, publish and reconnect until cancelled. Never raises a link error.

        Raises:
            ConfigError: a TLS file named by the settings cannot be used.
        """
        self._tls = await asyncio.to_thread(self._tls_context)
        install_flood_filter("mqtt", "aiomqtt")  # "Message queue is full" once a minute at most
        attempt = 0
        while True:
            try:
                await self._session(self._on_up)
            except MqttLinkError as e:
                self._last_error = str(e)
                refused = "refused the login" in str(e)
                if refused and not self._login_refused_logged:
                    # Retrying will not help until someone fixes the settings or the broker's
                    # password file: say so once, at ERROR, as a configuration problem.
                    self._login_refused_logged = True
                    log.error("MQTT configuration problem at %s: %s", self.status.broker, e)
                if self._down_since is None:
                    self._down_since = time.monotonic()
                    if refused:
                        self._lost = (time.time(), str(e))
                    elif self._was_up:
                        log.warning("MQTT link to %s lost: %s; reconnecting", self.status.broker, e)
                        self._lost = (time.time(), str(e))
                    else:
                        log.warning(
                            "MQTT broker %s unreachable: %s; retrying", self.status.broker, e
                        )
                else:
                    log.debug("MQTT reconnect to %s failed: %s", self.status.broker, e)
            # A stop that arrived in the same turn as the link failure was absorbed by the
            # session's TaskGroup (it raised the link error, not the cancellation): honour it
            # here, or the loop would reconnect for ever and the shutdown would hang.
            raise_if_cancelling()
            if self._connected_once_this_try:
                attempt = 0
            self._connected_once_this_try = False
            attempt += 1
            self._reconnects += 1
            await asyncio.sleep(backoff_s(attempt, self.config.reconnect_max_s))

    def _on_up(self) -> None:
        """Connected: report the outage once (with the drop count)."""
        self._connected_once_this_try = True
        self._login_refused_logged = False
        if self._down_since is not None and self._was_up:
            down_s = time.monotonic() - self._down_since
            log.info(
                "MQTT link to %s recovered after %.1f s (%d queued messages dropped)",
                self.status.broker,
                down_s,
                self._dropped,
            )
            lost_time_s, reason = self._lost
            lost = event_payload(
                "mqtt_link_lost", self._gateway_id, lost_time_s, {"reason": reason}
            )
            recovered = event_payload(
                "mqtt_link_recovered",
                self._gateway_id,
                time.time(),
                {"down_s": round(down_s, 3), "dropped": self._dropped},
            )
            # First out (lost, then recovered), and beyond the queue bound: reporting the drops
            # must not drop more.
            for ev in (recovered, lost):
                self._queue.appendleft(
                    _Msg(self.topics.events, ev.model_dump_json(), False, 1, "event")
                )
            self._dropped = 0
        elif not self._was_up:
            log.info("MQTT connected to %s", self.status.broker)
        self._was_up = True
        self._down_since = None

    async def _session(self, on_up: Callable[[], None]) -> None:
        """One connection: calls ``on_up`` once connected; raises ``MqttLinkError`` when it ends."""
        cfg = self.config
        topics = self.topics
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password is not None else None,
            identifier=cfg.client_id or f"bms-gateway-{self._gateway_id}",
            will=aiomqtt.Will(topics.availability, "offline", qos=1, retain=True),
            clean_session=True,
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            tls_context=self._tls,
            max_queued_incoming_messages=_MAX_INCOMING,
        )
        # Discovery of a 512-cell pack puts hundreds of QoS 1 publishes in flight at once.
        client.pending_calls_threshold = 4 * _DISCOVERY_BATCH
        try:
            async with client:
                self._connected = True
                self._sent_alarm_key = None
                self._sent_balancing_key = None
                self._discovery_sent = None
                try:
                    await self._send(client, _Msg(topics.availability, "online", True, 1))
                    await client.subscribe([(topics.command_filter, 1), (topics.ha_status, 1)])
                    on_up()
                    await _first_to_end(
                        asyncio.create_task(self._sender(client), name="gateway.mqtt.send"),
                        asyncio.create_task(self._receiver(client), name="gateway.mqtt.recv"),
                    )
                except asyncio.CancelledError:
                    await self._goodbye(client)
                    raise
                finally:
                    self._connected = False
        except aiomqtt.MqttError as e:
            if _login_refused(e):
                raise MqttLinkError(
                    f"{_describe(e)}: the broker refused the login; check mqtt.username, "
                    "mqtt.password and the client certificate (a configuration problem)"
                ) from None
            raise MqttLinkError(_describe(e)) from None
        except BaseExceptionGroup as eg:
            link, rest = eg.split(aiomqtt.MqttError)
            if rest is not None or link is None:
                raise
            first: BaseException = link
            while isinstance(first, BaseExceptionGroup):  # nested TaskGroups (discovery)
                first = first.exceptions[0]
            raise MqttLinkError(_describe(first)) from None
        raise MqttLinkError("the broker closed the connection")

    async def _goodbye(self, client: aiomqtt.Client) -> None:
        """At shutdown: flush queued events (``stop``) and say ``offline`` within a second."""
        with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
            async with asyncio.timeout(_GOODBYE_S):
                await self._drain(client)
                await self._send(client, _Msg(self.topics.availability, "offline", True, 1))

    async def _send(self, client: aiomqtt.Client, msg: _Msg) -> None:
        payload = msg.payload() if callable(msg.payload) else msg.payload
        await client.publish(msg.topic, payload, qos=msg.qos, retain=msg.retain)
        self._sent += 1

    async def _drain(self, client: aiomqtt.Client) -> None:
        # A message leaves the queue once the broker has it: a publish that failed with the link
        # is sent again on the next connection (at least once, as QoS 1 promises). A publish
        # interrupted by cancellation is already in the client's socket buffer: it counts as sent,
        # so the shutdown flush does not send it twice.
        while self._queue:
            msg = self._queue[0]
            try:
                await self._send(client, msg)
            except asyncio.CancelledError:
                self._forget(msg)
                raise
            self._forget(msg)
            if msg.kind == "alarms":
                self._sent_alarm_key = msg.key
            elif msg.kind == "balancing":
                self._sent_balancing_key = msg.key

    def _forget(self, msg: _Msg) -> None:
        """Take ``msg`` off the queue (unless the bound already dropped it)."""
        if self._queue and self._queue[0] is msg:
            self._queue.popleft()

    async def _discovery(self, client: aiomqtt.Client, out: ControlOutput) -> None:
        counts = (out.pack.cell_count, len(out.pack.cell_temp_c))
        if self._discovery_sent == counts:
            return
        cfg = self.config
        build = discovery_messages if cfg.discovery else removal_messages
        msgs = build(self.topics, *counts, per_cell=cfg.discovery_cells, health=self._health)
        for i in range(0, len(msgs), _DISCOVERY_BATCH):
            async with asyncio.TaskGroup() as tg:
                for m in msgs[i : i + _DISCOVERY_BATCH]:
                    tg.create_task(self._send(client, _Msg(m.topic, m.payload, True, 1)))
        self._discovery_sent = counts
        log.info(
            "MQTT discovery: %s %d Home Assistant entities",
            "published" if cfg.discovery else "removed",
            len(msgs),
        )

    async def _sender(self, client: aiomqtt.Client) -> None:
        """Publish queued messages at once, state and cells at their rates, a heartbeat."""
        cfg = self.config
        topics = self.topics
        gid = self._gateway_id
        now = time.monotonic()
        next_state = next_cells = now
        next_beat = now + cfg.heartbeat_s
        while True:
            raise_if_cancelling()
            self._wake.clear()
            await self._drain(client)
            out = self._latest
            now = time.monotonic()
            if out is not None:
                # The broker may have lost retained messages (a restart): resend the current ones.
                if self._sent_alarm_key != self._alarm_key:
                    payload = alarms_payload(out, gid, time.time()).model_dump_json()
                    await self._send(client, _Msg(topics.alarms, payload, True, 1))
                    self._sent_alarm_key = self._alarm_key
                if self._sent_balancing_key != self._balancing_key:
                    payload = balancing_payload(out, gid, time.time()).model_dump_json()
                    await self._send(client, _Msg(topics.balancing, payload, True, 1))
                    self._sent_balancing_key = self._balancing_key
                if now >= next_state:
                    payload = state_payload(out, gid, time.time()).model_dump_json()
                    await self._send(client, _Msg(topics.state, payload, False, 0))
                    next_state = max(next_state + cfg.state_interval_s, now)
                if now >= next_cells:
                    payload = cells_payload(out, gid, time.time()).model_dump_json()
                    await self._send(client, _Msg(topics.cells, payload, False, 0))
                    # With the cells: the charge each action has moved so far.
                    payload = balancing_payload(out, gid, time.time()).model_dump_json()
                    await self._send(client, _Msg(topics.balancing, payload, True, 0))
                    next_cells = max(next_cells + cfg.cells_interval_s, now)
                # After the first state: discovery of a big pack is thousands of messages.
                await self._discovery(client, out)
            if now >= next_beat:
                # QoS 1 with a timeout: a broker that stopped answering fails here, not silently.
                await self._send(client, _Msg(topics.availability, "online", True, 1))
                next_beat = now + cfg.heartbeat_s
            # Nothing to publish before the first output: only the heartbeat is due.
            due = min(next_state, next_cells, next_beat) if out is not None else next_beat
            wait_s = due - time.monotonic()
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
        """Commands and Home Assistant's birth message."""
        topics = self.topics
        async for message in client.messages:
            topic = message.topic.value
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if topic == topics.ha_status:
                if payload.strip().lower() == b"online":
                    log.info("Home Assistant came online: re-sending discovery")
                    self._discovery_sent = None
                    self._wake.set()
                continue
            name = topics.command_name(topic)
            if name is None or name == RESULT:
                continue  # our own replies match the subscription too
            await self._command(client, name, payload, retained=message.retain)
            raise_if_cancelling()

    async def _command(
        self, client: aiomqtt.Client, name: str, payload: bytes, *, retained: bool
    ) -> None:
        parsed = parse_command(name, payload, enabled=self.config.commands, token=self._token)
        if retained:
            # A retained command would be replayed on every reconnect: never act on one.
            result = CommandResult(False, "rejected: retained commands are ignored")
        elif parsed.command is None:
            result = CommandResult(False, f"rejected: {parsed.error}")
        else:
            try:
                result = self._on_command(parsed.command)
            except GatewayError as e:
                result = CommandResult(False, f"rejected: {e}")
            except Exception as e:
                # A bug behind on_command must not let a remote message stop the gateway; it is
                # logged with its traceback and answered, and nothing is retried.
                log.exception("MQTT command %s failed", name)
                result = CommandResult(False, f"failed: internal error ({type(e).__name__})")
        if result.accepted:
            log.info("MQTT command %s accepted: %s", name, result.message)
        else:
            log.warning("MQTT command %s (id %s) %s", name, parsed.request_id, result.message)
        reply = command_result_payload(
            name, parsed.request_id, result, self._gateway_id, time.time()
        )
        await self._send(
            client, _Msg(self.topics.command_result, reply.model_dump_json(), False, 1)
        )

    def _tls_context(self) -> ssl.SSLContext | None:
        """The TLS context from the settings (blocking file reads: call in a thread)."""
        cfg = self.config
        if not cfg.tls:
            return None
        try:
            ctx = ssl.create_default_context(cafile=cfg.tls_ca_file)
            if cfg.tls_cert_file is not None:
                ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
        except (OSError, ssl.SSLError) as e:
            raise ConfigError(f"mqtt TLS files: {e}") from None
        if cfg.tls_insecure:
            ctx.check_hostname = False
        return ctx
