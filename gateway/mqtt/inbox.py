"""What the publisher receives: commands under ``cmd/`` and Home Assistant's birth message.

A command is parsed and validated by ``gateway.mqtt.commands.parse_command`` (bounded, never
raises), applied through the gateway's ``on_command`` callback and always answered on
``cmd/result``: accepted, rejected (a retained command, a bad payload, a ``GatewayError``) or
failed (a bug behind the callback, logged with its traceback). No I/O here: ``handle`` returns
the reply for the publisher to send.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gateway.core.model import Command, CommandResult
from gateway.errors import GatewayError
from gateway.mqtt.commands import parse_command
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.outbox import Msg
from gateway.mqtt.payloads import command_result_payload
from gateway.mqtt.topics import RESULT, Topics

__all__ = ["Inbox"]

# The MQTT adapter logs under one name, whichever of its modules speaks.
log = logging.getLogger("gateway.mqtt.publisher")


class Inbox:
    """Handles incoming messages.

    Args:
        config: the ``[mqtt]`` settings (``commands``, ``command_token``).
        topics: the gateway's topics.
        gateway_id: for the replies.
        on_command: applies a valid, authorised command (called synchronously).
        on_ha_online: Home Assistant came online (discovery must be sent again).
    """

    def __init__(
        self,
        config: MqttConfig,
        topics: Topics,
        gateway_id: str,
        on_command: Callable[[Command], CommandResult],
        on_ha_online: Callable[[], None],
    ) -> None:
        self.config = config
        self.topics = topics
        self._gateway_id = gateway_id
        self._on_command = on_command
        self._on_ha_online = on_ha_online
        self._token = (
            config.command_token.get_secret_value() if config.command_token is not None else None
        )

    def handle(self, topic: str, payload: bytes, *, retained: bool) -> Msg | None:
        """One incoming message; the reply to send (``cmd/result``), or ``None``."""
        if topic == self.topics.ha_status:
            if payload.strip().lower() == b"online":
                log.info("Home Assistant came online: re-sending discovery")
                self._on_ha_online()
            return None
        name = self.topics.command_name(topic)
        if name is None or name == RESULT:
            return None  # our own replies match the subscription too
        return self.answer(name, payload, retained=retained)

    def answer(self, name: str, payload: bytes, *, retained: bool) -> Msg:
        """Apply command ``name`` (unless rejected) and build its reply."""
        cfg = self.config
        parsed = parse_command(name, payload, enabled=cfg.commands, token=self._token)
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
        return Msg(self.topics.command_result, reply.model_dump_json(), False, 1)
