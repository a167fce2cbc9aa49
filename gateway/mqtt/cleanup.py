"""Remove what a gateway left retained on a broker: for the demo, which must leave nothing behind.

A gateway retains ``availability``, ``alarms``, ``balancing`` and its Home Assistant discovery
configs (docs/MQTT.md); left on a shared broker they show a phantom device in Home Assistant.
``clear_retained`` subscribes to everything under ``<prefix>/<gateway_id>/`` and to the discovery
configs of the gateway's node id, collects the retained messages the broker hands over on
subscribe, and publishes an empty retained payload to each, which deletes it (MQTT 3.1.1,
section 3.3.1.3). It finds whatever was retained, so topics added later are cleared as well.

``live_gateway_ids`` reads the retained ``availability`` of every gateway under a prefix: the
demo picks an id no live gateway holds, so two demos on one broker do not overwrite each other.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiomqtt

from gateway.errors import MqttLinkError
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.topics import Topics

__all__ = ["clear_retained", "live_gateway_ids"]

_MAX_TOPICS = 100_000  # a bound on the work, far above a 512-cell pack's 1,820 entities


async def clear_retained(
    config: MqttConfig,
    topics: Topics,
    *,
    client_id: str,
    settle_s: float = 0.5,
    timeout_s: float = 10.0,
) -> list[str]:
    """Delete the retained messages of ``topics``' gateway; the topics cleared, sorted.

    Args:
        config: broker address and login (``[mqtt]``).
        topics: the gateway whose retained messages go (its base and its discovery node id).
        client_id: MQTT client id for this short session (never the gateway's own).
        settle_s: the broker has sent every retained message once it is quiet this long.
        timeout_s: upper bound of the whole clean-up.

    Raises:
        MqttLinkError: the broker could not be reached or the clean-up took over ``timeout_s``.
    """
    filters = [f"{topics.base}/#", f"{topics.discovery_prefix}/+/{topics.node_id}/+/config"]
    async with _session(config, client_id, timeout_s, "clearing retained topics") as client:
        found = await _retained(client, filters, settle_s)
        for topic in sorted(found):
            await client.publish(topic, b"", qos=1, retain=True)
    return sorted(found)


async def live_gateway_ids(
    config: MqttConfig,
    prefix: str,
    *,
    client_id: str,
    settle_s: float = 0.5,
    timeout_s: float = 10.0,
) -> set[str]:
    """The ids of the gateways under ``prefix`` whose retained ``availability`` is ``online``.

    A gateway that stops cleanly, or whose link dies (its last will), leaves ``offline``
    retained (docs/MQTT.md), so ``online`` means running now or within 1.5 keepalives.

    Raises:
        MqttLinkError: the broker could not be reached or the read took over ``timeout_s``.
    """
    async with _session(config, client_id, timeout_s, "reading gateway availability") as client:
        found = await _retained(client, [f"{prefix}/+/availability"], settle_s)
    return {topic.split("/")[-2] for topic, payload in found.items() if payload == b"online"}


@contextlib.asynccontextmanager
async def _session(
    config: MqttConfig, client_id: str, timeout_s: float, what: str
) -> AsyncIterator[aiomqtt.Client]:
    """A short session with the broker of ``config`` (its login), as ``client_id``, bounded by
    ``timeout_s``; a broker error or the timeout raises ``MqttLinkError`` naming ``what``."""
    where = f"{what} on {config.host}:{config.port}"
    client = aiomqtt.Client(
        config.host,
        config.port,
        username=config.username,
        password=config.password.get_secret_value() if config.password else None,
        identifier=client_id,
        timeout=config.timeout_s,
    )
    try:
        async with asyncio.timeout(timeout_s), client:
            yield client
    except aiomqtt.MqttError as e:
        raise MqttLinkError(f"{where}: {e}") from e
    except TimeoutError:
        raise MqttLinkError(f"{where}: took over {timeout_s:g} s") from None


async def _retained(
    client: aiomqtt.Client, filters: list[str], settle_s: float
) -> dict[str, bytes]:
    """The retained, non-empty messages the broker hands over on subscribing to ``filters``
    (topic -> payload): it has sent them all once it is quiet for ``settle_s``; at most
    ``_MAX_TOPICS`` are read."""
    found: dict[str, bytes] = {}
    await client.subscribe([(f, 1) for f in filters])
    while len(found) < _MAX_TOPICS:
        try:
            async with asyncio.timeout(settle_s):
                msg = await anext(client.messages)
        except TimeoutError:
            break
        if msg.retain and isinstance(msg.payload, bytes | bytearray) and msg.payload:
            found[str(msg.topic)] = bytes(msg.payload)
    await client.unsubscribe(filters)
    return found
