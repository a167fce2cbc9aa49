"""The ``events`` topic and the replies on ``cmd/result``."""

from __future__ import annotations

from typing import Any

from gateway.core.model import CommandResult
from gateway.mqtt.payloads.common import Payload, rounded

__all__ = ["CommandResultPayload", "EventPayload", "command_result_payload", "event_payload"]


class EventPayload(Payload):
    """Topic ``events``: something happened (``start``, ``stop``, ``mqtt_link_lost``, ...)."""

    event: str
    time: float | None
    data: dict[str, Any]


def event_payload(
    name: str, gateway_id: str, time_s: float | None, data: dict[str, Any]
) -> EventPayload:
    """An event with free-form, JSON-serialisable ``data``."""
    return EventPayload(gateway_id=gateway_id, event=name, time=rounded(time_s, 3), data=data)


class CommandResultPayload(Payload):
    """Topic ``cmd/result``: the answer to one command, accepted or rejected."""

    command: str
    id: str | None
    accepted: bool
    message: str
    time: float | None


def command_result_payload(
    command: str,
    request_id: str | None,
    result: CommandResult,
    gateway_id: str,
    time_s: float | None,
) -> CommandResultPayload:
    """The reply to command ``command`` (``id`` echoes the request's ``id``)."""
    return CommandResultPayload(
        gateway_id=gateway_id,
        command=command,
        id=request_id,
        accepted=result.accepted,
        message=result.message,
        time=rounded(time_s, 3),
    )
