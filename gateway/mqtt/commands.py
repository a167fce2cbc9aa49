"""Parsing and validation of MQTT commands (pure, pydantic). No I/O, never raises on bad input.

A command arrives on ``<prefix>/<gateway_id>/cmd/<name>`` with a JSON object payload:

- ``reset_alarms``: ``{}`` (an empty payload is accepted too)
- ``balancing_mode``: ``{"mode": "off" | "passive" | "active"}``
- ``current_cap``: ``{"charge_a": 50.0, "discharge_a": null}`` (``null`` or absent = no cap in
  that direction; finite, 0..``MAX_CAP_A``)
- ``health``: ``{}``: analyse the health history now and publish the ``health`` topic

Every payload may carry ``"id"`` (echoed in the reply) and must carry ``"token"`` when
``mqtt.command_token`` is set. When ``mqtt.commands`` is false every command is rejected as
unauthorised. ``parse_command`` turns anything else into a rejection with a reason.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.core.model import (
    BalancingMode,
    Command,
    RequestHealthReport,
    ResetAlarms,
    SetBalancingMode,
    SetUserCurrentCap,
)

__all__ = [
    "MAX_CAP_A",
    "MAX_PAYLOAD_BYTES",
    "BalancingModeRequest",
    "CommandRequest",
    "CurrentCapRequest",
    "HealthRequest",
    "ParsedCommand",
    "ResetAlarmsRequest",
    "parse_command",
]

MAX_CAP_A = 10_000.0
"""Largest user current cap accepted (A); anything above is surely a typo."""

MAX_PAYLOAD_BYTES = 4096
"""Largest command payload read; longer ones are rejected unread."""

_Amps = Annotated[float, Field(ge=0.0, le=MAX_CAP_A, allow_inf_nan=False, strict=True)]


class CommandRequest(BaseModel):
    """Fields every command may carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = Field(default=None, max_length=64)
    """Caller's request id, echoed in the reply."""
    token: str | None = Field(default=None, max_length=256)
    """Shared secret (``mqtt.command_token``)."""


class ResetAlarmsRequest(CommandRequest):
    """``cmd/reset_alarms``: clear latched alarms whose cause has gone."""


class BalancingModeRequest(CommandRequest):
    """``cmd/balancing_mode``: switch the balancing mode."""

    mode: BalancingMode


class CurrentCapRequest(CommandRequest):
    """``cmd/current_cap``: user caps on charge and discharge current (they only lower limits)."""

    charge_a: _Amps | None = None
    discharge_a: _Amps | None = None


class HealthRequest(CommandRequest):
    """``cmd/health``: analyse the health history now and publish the report."""


_REQUESTS: dict[str, type[CommandRequest]] = {
    "reset_alarms": ResetAlarmsRequest,
    "balancing_mode": BalancingModeRequest,
    "current_cap": CurrentCapRequest,
    "health": HealthRequest,
}


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    """A parsed command: ``command`` is ``None`` when rejected, and ``error`` says why."""

    name: str
    request_id: str | None
    command: Command | None
    error: str = ""


def _request_id(data: Any) -> str | None:
    """The ``id`` of a payload that failed validation, when it is a short string."""
    if isinstance(data, dict):
        rid = data.get("id")
        if isinstance(rid, str) and len(rid) <= 64:
            return rid
    return None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "payload"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown field"
    return f"{key}: {err['msg']}"


def parse_command(
    name: str,
    payload: bytes,
    *,
    enabled: bool,
    token: str | None,
) -> ParsedCommand:
    """Parse and validate command ``name`` with its raw ``payload``; never raises on bad input.

    Args:
        name: the last topic level (``cmd/<name>``).
        payload: the raw MQTT payload.
        enabled: ``mqtt.commands``; when false the command is rejected as unauthorised.
        token: ``mqtt.command_token``; when set the payload must carry it as ``"token"``.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        return ParsedCommand(name, None, None, f"payload too long ({len(payload)} bytes)")
    data: Any
    try:
        data = json.loads(payload) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return ParsedCommand(name, None, None, f"malformed payload: not JSON ({e})")
    rid = _request_id(data)
    if not enabled:
        return ParsedCommand(name, rid, None, "unauthorised: commands are disabled")
    if token is not None:
        given = data.get("token") if isinstance(data, dict) else None
        if not isinstance(given, str) or not hmac.compare_digest(
            given.encode("utf-8"), token.encode("utf-8")
        ):
            return ParsedCommand(name, rid, None, "unauthorised: missing or wrong token")
    model = _REQUESTS.get(name)
    if model is None:
        known = ", ".join(_REQUESTS)
        return ParsedCommand(name, rid, None, f"unknown command {name!r} (known: {known})")
    if not isinstance(data, dict):
        return ParsedCommand(name, rid, None, "malformed payload: expected a JSON object")
    try:
        req = model.model_validate(data)
    except ValidationError as e:
        return ParsedCommand(name, rid, None, f"invalid: {_first_error(e)}")
    source = f"mqtt:{req.id}" if req.id else "mqtt"
    cmd: Command
    if isinstance(req, BalancingModeRequest):
        cmd = SetBalancingMode(mode=req.mode, source=source)
    elif isinstance(req, CurrentCapRequest):
        cmd = SetUserCurrentCap(charge_a=req.charge_a, discharge_a=req.discharge_a, source=source)
    elif isinstance(req, HealthRequest):
        cmd = RequestHealthReport(source=source)
    else:
        cmd = ResetAlarms(source=source)
    return ParsedCommand(name, req.id, cmd, "")
