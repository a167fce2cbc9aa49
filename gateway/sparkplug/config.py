"""Settings of the Sparkplug B edge node (off by default)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from gateway.core.config import Section

__all__ = ["SparkplugConfig"]

# A Sparkplug id is one topic level: no '/', '+', '#' (Sparkplug B 3.0, topic namespace).
_ID = r"^[A-Za-z0-9_.:-]{1,64}$"


class SparkplugConfig(Section):
    """Sparkplug B edge node for fleets: group = site, edge node = gateway, device = pack.

    NBIRTH/DBIRTH, report-by-exception DDATA, NDEATH as the MQTT will, rebirth on a host's
    ``Node Control/Rebirth``.
    """

    enabled: bool = False
    """Publish Sparkplug B (a session of its own, beside ``[mqtt]``)."""
    host: str = Field(default="127.0.0.1", min_length=1)
    """Broker host (a clustered broker: EMQX, HiveMQ, VerneMQ, or mosquitto)."""
    port: int = Field(default=1883, ge=1, le=65535)
    """Broker TCP port."""
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
    group_id: str = Field(default="site1", pattern=_ID)
    """Sparkplug group id: the site."""
    edge_node_id: str = Field(default="", pattern=r"^([A-Za-z0-9_.:-]{1,64})?$")
    """Sparkplug edge node id: this gateway; empty means ``control.gateway_id``."""
    device_id: str = Field(default="pack1", pattern=_ID)
    """Sparkplug device id: the pack."""
    keepalive_s: int = Field(default=15, ge=5, le=3600)
    """MQTT keepalive: the broker sends NDEATH this long (x1.5) after the gateway falls silent."""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    """How long one connect or QoS 1 publish may take before the link counts as dead."""
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)
    """Upper bound of the jittered reconnect backoff."""
    scan_interval_s: float = Field(default=1.0, ge=0.05, le=3600)
    """How often metrics are compared with what was sent; only changes go out (RBE)."""
    cells: bool = True
    """Per-cell metrics (voltage, SoC, balancing) and per-sensor temperatures in the device."""

    @model_validator(mode="after")
    def _check(self) -> SparkplugConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password is set but username is not")
        if self.tls_ca_file and not self.tls:
            raise ValueError("tls_ca_file needs tls = true")
        return self
