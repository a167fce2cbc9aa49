"""Settings of the local web dashboard and Prometheus ``/metrics``."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from gateway.core.config import Section

__all__ = ["WebConfig"]


class WebConfig(Section):
    """Local web dashboard and Prometheus ``/metrics`` on one port (aiohttp).

    The dashboard shows the cells, the limits and why, alarms with their history, the links,
    the events and plots of the last hours, live over a WebSocket.
    """

    enabled: bool = False
    """Serve the dashboard and ``/metrics`` (on in ``bms-gateway demo``)."""
    host: str = Field(default="127.0.0.1", min_length=1)
    """Address to listen on; loopback by default (use a reverse proxy or 0.0.0.0 knowingly)."""
    port: int = Field(default=8080, ge=1, le=65535)
    """TCP port of the dashboard and ``/metrics``."""
    token: SecretStr | None = Field(default=None, examples=["change-me-to-a-long-secret"])
    """Shared secret for commands from the dashboard (as ``mqtt.command_token``); none means the
    dashboard is read-only."""
    push_interval_s: float = Field(default=1.0, ge=0.1, le=60)
    """Period of the live updates sent to open dashboards (WebSocket)."""
    history_hours: float = Field(default=6.0, gt=0, le=168)
    """How far back the plots of pack SoC, current and cell spread go."""
    history_interval_s: float = Field(default=10.0, ge=0.1, le=3600)
    """Sampling period of the plots (gateway clock); the ring buffer holds
    ``history_hours * 3600 / history_interval_s`` points."""
    max_clients: int = Field(default=16, ge=1, le=1000)
    """Open dashboards (WebSockets) served at once; more are refused with 503."""
    metrics: bool = True
    """Serve Prometheus ``/metrics``."""

    @model_validator(mode="after")
    def _check(self) -> WebConfig:
        if self.token is not None and len(self.token.get_secret_value()) < 8:
            raise ValueError("token must be at least 8 characters")
        if self.history_hours * 3600 / self.history_interval_s > 100_000:
            raise ValueError("history_hours / history_interval_s: more than 100000 points")
        return self
