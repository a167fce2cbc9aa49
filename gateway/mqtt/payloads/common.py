"""What every MQTT payload shares: the schema version, the envelope and rounding. Pure."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["SCHEMA_VERSION", "Payload", "rounded"]

SCHEMA_VERSION: Literal[1] = 1
"""Version of every payload schema in ``gateway.mqtt.payloads``."""


def rounded(x: float | None, ndigits: int) -> float | None:
    """Round for the wire; unknown or non-finite values become ``None`` (JSON ``null``)."""
    if x is None or not math.isfinite(x):
        return None
    return round(x, ndigits)


class Payload(BaseModel):
    """The envelope of a topic's payload: the schema version and the gateway."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = SCHEMA_VERSION
    gateway_id: str
