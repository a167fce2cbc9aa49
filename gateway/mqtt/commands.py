"""Parsing and validation of MQTT commands (pure, pydantic). No I/O, never raises on bad input.

A command arrives on ``<prefix>/<gateway_id>/cmd/<name>`` with a JSON object payload:

- ``reset_alarms``: ``{}`` (an empty payload is accepted too)
- ``balancing_mode``: ``{"mode": "off" | "passive" | "active"}``
- ``current_cap``: ``{"charge_a": 50.0, "discharge_a": null}`` (``null`` or absent = no cap in
  that direction; finite, 0..``MAX_CAP_A``)
- ``health``: ``{}``: analyse the health history now and publish the ``health`` topic

Every payload may carry ``"id"`` (echoed in the reply) and must carry ``"token"`` when
``mqtt.command_token`` is set. When ``mqtt.commands`` is false every command is rejected as
unauthorised without its payload being decoded. Before decoding, a payload is bounded in size
(``MAX_PAYLOAD_BYTES``) and in nesting depth (``MAX_JSON_DEPTH``, by a linear scan), so no
message can make the decoder recurse or work without bound. ``parse_command`` turns anything
else into a rejection with a reason.
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
    "MAX_JSON_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "BalancingModeRequest",
    "CommandRequest",
    "CurrentCapRequest",
    "HealthRequest",
    "ParsedCommand",
    "ResetAlarmsRequest",
    "json_depth",
    "parse_command",
]

MAX_CAP_A = 10_000.0
"""Largest user current cap accepted (A); anything above is surely a typo."""

MAX_PAYLOAD_BYTES = 4096
"""Largest command payload read; longer ones are rejected unread."""

MAX_JSON_DEPTH = 4
"""Deepest nesting of arrays and objects decoded; deeper payloads are rejected undecoded.

A command is one flat object, so 4 leaves room and no more: Python's JSON decoder recurses once
per level and raises ``RecursionError`` (not ``JSONDecodeError``) near 1,000 levels, which a
2 KB payload of brackets reaches.
"""

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


def json_depth(payload: bytes, limit: int) -> int:
    """The deepest nesting of arrays and objects in ``payload``, counted up to ``limit + 1``.

    A linear scan over the raw bytes that skips string contents (with their escapes), so it
    bounds the work before any decoder runs; it stops as soon as the depth exceeds ``limit``.
    It does not validate JSON: the decoder does that afterwards.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in payload:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest


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
    if not enabled:
        # Not even decoded: with commands off, nothing a publisher sends costs more than this.
        return ParsedCommand(name, None, None, "unauthorised: commands are disabled")
    if len(payload) > MAX_PAYLOAD_BYTES:
        # Not its length: the dashboard stops reading a body at the bound, so it is not known.
        return ParsedCommand(name, None, None, f"payload too long (over {MAX_PAYLOAD_BYTES} bytes)")
    if json_depth(payload, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        return ParsedCommand(
            name, None, None, f"malformed payload: nested deeper than {MAX_JSON_DEPTH} levels"
        )
    data: Any
    try:
        data = json.loads(payload) if payload.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        return ParsedCommand(name, None, None, f"malformed payload: not JSON ({e})")
    rid = _request_id(data)
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
