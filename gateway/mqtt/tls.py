"""The MQTT TLS context from the ``[mqtt]`` settings (blocking file reads: call it in a thread)."""

from __future__ import annotations

import ssl

from gateway.errors import ConfigError
from gateway.mqtt.config import MqttConfig

__all__ = ["tls_context"]


def tls_context(cfg: MqttConfig) -> ssl.SSLContext | None:
    """The TLS context for ``cfg``, or ``None`` when ``mqtt.tls`` is off.

    ``tls_ca_file`` (default: the system's CAs), an optional client certificate and key, and
    ``tls_insecure`` to skip the host name check.

    Raises:
        ConfigError: a file named by the settings cannot be read or is not a certificate or key.
    """
    if not cfg.tls:
        return None
    try:
        ctx = ssl.create_default_context(cafile=cfg.tls_ca_file)
        if cfg.tls_cert_file is not None:
            ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"mqtt TLS files: {e}") from None
    if cfg.tls_insecure:
        ctx.check_hostname = False
    return ctx
