"""Settings of the MQTT publisher: broker connection, topics, rates, discovery and commands."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from gateway.core.config import Section

__all__ = ["MqttConfig"]

# A topic level we build topics from: no wildcards, no separators, no empty level.
_LEVEL = r"^[A-Za-z0-9_.-]{1,64}$"


class MqttConfig(Section):
    """MQTT broker connection and topics."""

    enabled: bool = False
    """Publish diagnostics over MQTT."""
    host: str = Field(default="127.0.0.1", min_length=1)
    """Broker host name or address."""
    port: int = Field(default=1883, ge=1, le=65535)
    """Broker TCP port (8883 is usual with TLS)."""
    username: str | None = Field(default=None, examples=["bms-gateway"])
    """User name for the broker; none means anonymous."""
    password: SecretStr | None = Field(default=None, examples=["change-me"])
    """Password for the broker (only with ``username``); none: no password."""
    tls: bool = False
    """Connect with TLS (system CA store unless ``tls_ca_file`` is set)."""
    tls_ca_file: str | None = Field(
        default=None,
        examples=["/etc/bms-gateway/ca.pem"],
        json_schema_extra={"example_needs": "tls = true"},
    )
    """CA certificate file (PEM) that signed the broker's certificate (needs ``tls``); none:
    the system CA store."""
    tls_cert_file: str | None = Field(
        default=None,
        examples=["/etc/bms-gateway/client.pem"],
        json_schema_extra={"example_needs": "tls = true"},
    )
    """Client certificate file (PEM) for mutual TLS (with ``tls_key_file``); none: no client
    certificate."""
    tls_key_file: str | None = Field(
        default=None,
        examples=["/etc/bms-gateway/client.key"],
        json_schema_extra={"example_needs": "tls = true"},
    )
    """Client key file (PEM) for mutual TLS (with ``tls_cert_file``); none: no client key."""
    tls_insecure: bool = False
    """Skip the broker host name check (test setups only)."""
    client_id: str = Field(default="", max_length=128)
    """MQTT client id; empty means ``bms-gateway-<gateway_id>``."""
    keepalive_s: int = Field(default=15, ge=5, le=3600)
    """MQTT keepalive: the broker sends our last will this long (x1.5) after we fall silent."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    """How long one connect, subscribe or QoS 1 publish may take before the link counts as dead."""
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)
    """Upper bound of the jittered reconnect backoff."""
    prefix: str = Field(default="bms", pattern=_LEVEL)
    """First topic level: topics are ``<prefix>/<gateway_id>/...``."""
    state_interval_s: float = Field(default=1.0, ge=0.05, le=3600)
    """Period of the ``state`` topic (it is re-sent even when nothing changed)."""
    cells_interval_s: float = Field(default=5.0, ge=0.1, le=3600)
    """Period of the ``cells`` topic."""
    heartbeat_s: float = Field(default=30.0, ge=1, le=3600)
    """Period of an acknowledged ``availability`` = online (a missing ack drops the link)."""
    queue_size: int = Field(default=256, ge=1, le=100_000)
    """Alarm changes and events kept while the broker is away (oldest dropped first, counted)."""
    discovery: bool = True
    """Publish Home Assistant discovery configs; when false, remove ours (empty retained)."""
    discovery_prefix: str = Field(default="homeassistant", pattern=_LEVEL)
    """Home Assistant discovery prefix (HA's birth message is ``<discovery_prefix>/status``)."""
    discovery_cells: bool = True
    """Per-cell sensors (voltage, SoC, balancing) in discovery, besides the pack sensors."""
    commands: bool = False
    """Accept commands under ``<prefix>/<gateway_id>/cmd/...``; when false every command is
    rejected as unauthorised."""
    command_token: SecretStr | None = Field(default=None, examples=["change-me-to-a-long-secret"])
    """Shared secret every command payload must carry as ``"token"``; none means no token."""

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file must be set together")
        if not self.tls and (self.tls_ca_file or self.tls_cert_file or self.tls_insecure):
            raise ValueError("tls_ca_file, tls_cert_file and tls_insecure need tls = true")
        if self.command_token is not None and len(self.command_token.get_secret_value()) < 8:
            raise ValueError("command_token must be at least 8 characters")
        return self
