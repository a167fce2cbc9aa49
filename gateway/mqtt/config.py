"""Settings of the MQTT publisher. (Placeholder: filled by the MQTT work.)"""

from __future__ import annotations

from gateway.core.config import Section

__all__ = ["MqttConfig"]


class MqttConfig(Section):
    """MQTT broker connection and topics."""

    enabled: bool = False
    """Publish diagnostics over MQTT."""
