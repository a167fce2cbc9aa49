"""One MQTT connection and the bookkeeping across reconnects (aiomqtt).

``new_client`` builds the aiomqtt client of a session (last will ``offline``, bounded incoming
queue, TLS); ``link_error`` and ``group_link_error`` turn what aiomqtt raises into one
``MqttLinkError`` line; ``first_to_end`` runs the sender and receiver of a session; ``LinkWatch``
says a loss once, a recovery once (with the outage and the drop count) and a refused login once.
``probe_broker`` asks whether a broker is there at all (the demo).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import cast

import aiomqtt
from aiomqtt.exceptions import MqttConnectError

from gateway.errors import MqttLinkError
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.discovery import DISCOVERY_BATCH
from gateway.mqtt.topics import Topics

__all__ = [
    "GOODBYE_S",
    "MAX_INCOMING",
    "LinkWatch",
    "Outage",
    "first_to_end",
    "group_link_error",
    "link_error",
    "new_client",
    "probe_broker",
]

# The MQTT adapter logs under one name, whichever of its modules speaks.
log = logging.getLogger("gateway.mqtt.publisher")

GOODBYE_S = 1.0
"""At shutdown, time allowed to flush queued events and say ``offline``."""
MAX_INCOMING = 64
"""Incoming messages (commands, Home Assistant's birth) waiting to be handled; beyond it aiomqtt
discards them, so a publisher flooding cmd/ costs bounded memory (its warnings are
rate-limited)."""

# CONNACK codes of a refused login: MQTT 3.1.1 (4, 5) and MQTT 5 (134, 135).
_LOGIN_REFUSED = frozenset({4, 5, 134, 135})


def new_client(
    cfg: MqttConfig, topics: Topics, gateway_id: str, tls: ssl.SSLContext | None
) -> aiomqtt.Client:
    """The client of one session: clean session, last will ``offline`` (retained, QoS 1)."""
    client = aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password is not None else None,
        identifier=cfg.client_id or f"bms-gateway-{gateway_id}",
        will=aiomqtt.Will(topics.availability, "offline", qos=1, retain=True),
        clean_session=True,
        keepalive=cfg.keepalive_s,
        timeout=cfg.timeout_s,
        tls_context=tls,
        max_queued_incoming_messages=MAX_INCOMING,
    )
    # Discovery of a 512-cell pack puts hundreds of QoS 1 publishes in flight at once.
    client.pending_calls_threshold = 4 * DISCOVERY_BATCH
    return client


async def probe_broker(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether an MQTT broker accepts an anonymous connection at ``host:port``."""
    try:
        async with asyncio.timeout(timeout_s):
            client = aiomqtt.Client(host, port, timeout=timeout_s, keepalive=5)
            async with client:
                return True
    except (aiomqtt.MqttError, TimeoutError):
        return False


def describe(e: BaseException) -> str:
    """One line for a link error, with its cause (aiomqtt wraps the reason of a disconnect)."""
    text = str(e) or type(e).__name__
    cause = e.__cause__
    if cause is not None and str(cause) and str(cause) not in text:
        text += f" ({cause})"
    return text


def login_refused(e: BaseException) -> bool:
    """Whether ``e`` is the broker refusing our credentials (a configuration problem)."""
    if not isinstance(e, MqttConnectError):
        return False
    rc = e.rc
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in _LOGIN_REFUSED


def link_error(e: aiomqtt.MqttError) -> MqttLinkError:
    """``e`` as the one error the publisher's reconnect loop handles."""
    if login_refused(e):
        return MqttLinkError(
            f"{describe(e)}: the broker refused the login; check mqtt.username, "
            "mqtt.password and the client certificate (a configuration problem)"
        )
    return MqttLinkError(describe(e))


def group_link_error(eg: BaseExceptionGroup[BaseException]) -> MqttLinkError | None:
    """The link error of a group that holds only aiomqtt errors; ``None`` for any other group."""
    link, rest = eg.split(aiomqtt.MqttError)
    if rest is not None or link is None:
        return None
    first: BaseException = link
    while isinstance(first, BaseExceptionGroup):  # nested TaskGroups (discovery)
        first = first.exceptions[0]
    return MqttLinkError(describe(first))


async def first_to_end(*tasks: asyncio.Task[None]) -> None:
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
        await asyncio.wait(tasks, timeout=GOODBYE_S)
    for t in tasks:
        if t in done and not t.cancelled() and t.exception() is not None:
            raise cast(BaseException, t.exception())


@dataclass(frozen=True, slots=True)
class Outage:
    """A link loss that has ended: when it began (Unix s), why, and how long it lasted (s)."""

    lost_time_s: float
    reason: str
    down_s: float


class LinkWatch:
    """Reconnect bookkeeping: what to log on a failed session and on a new connection.

    A loss is logged once at WARNING (then each failed retry at DEBUG), a refused login once at
    ERROR as a configuration problem, a recovery once with how long the link was down.

    Args:
        broker: ``host:port`` for the log lines.
    """

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self._was_up = False  # connected at least once
        self._down_since: float | None = None  # monotonic time the link was lost
        self._connected_once_this_try = False
        self._lost: tuple[float, str] = (0.0, "")  # wall time and reason of the last link loss
        self._login_refused_logged = False  # a refused login is logged once until connected

    def failed(self, e: MqttLinkError) -> None:
        """A session ended with ``e``: log the loss (once) or the failed retry."""
        refused = "refused the login" in str(e)
        if refused and not self._login_refused_logged:
            # Retrying will not help until someone fixes the settings or the broker's
            # password file: say so once, at ERROR, as a configuration problem.
            self._login_refused_logged = True
            log.error("MQTT configuration problem at %s: %s", self.broker, e)
        if self._down_since is None:
            self._down_since = time.monotonic()
            if refused:
                self._lost = (time.time(), str(e))
            elif self._was_up:
                log.warning("MQTT link to %s lost: %s; reconnecting", self.broker, e)
                self._lost = (time.time(), str(e))
            else:
                log.warning("MQTT broker %s unreachable: %s; retrying", self.broker, e)
        else:
            log.debug("MQTT reconnect to %s failed: %s", self.broker, e)

    def next_attempt(self, attempt: int) -> int:
        """The backoff attempt after ``attempt``: from 1 again once this try had connected."""
        if self._connected_once_this_try:
            attempt = 0
        self._connected_once_this_try = False
        return attempt + 1

    def up(self, dropped: int) -> Outage | None:
        """Connected: the outage that ended (logged with ``dropped``), or ``None`` for none."""
        self._connected_once_this_try = True
        self._login_refused_logged = False
        outage = None
        if self._down_since is not None and self._was_up:
            down_s = time.monotonic() - self._down_since
            log.info(
                "MQTT link to %s recovered after %.1f s (%d queued messages dropped)",
                self.broker,
                down_s,
                dropped,
            )
            lost_time_s, reason = self._lost
            outage = Outage(lost_time_s, reason, down_s)
        elif not self._was_up:
            log.info("MQTT connected to %s", self.broker)
        self._was_up = True
        self._down_since = None
        return outage
