"""Placeholder until this module is built."""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError


def _missing(*_args: Any, **_kwargs: Any) -> int:
    raise GatewayError("not built yet")


run = _missing
