"""MQTT topic names of one gateway. Pure: no I/O.

Everything lives under ``<prefix>/<gateway_id>/``; Home Assistant discovery lives under
``<discovery_prefix>/``. See docs/MQTT.md for the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["COMMAND_NAMES", "RESULT", "Topics"]

RESULT = "result"
"""Last level of the command result topic (``<prefix>/<gateway_id>/cmd/result``)."""

COMMAND_NAMES = ("reset_alarms", "balancing_mode", "current_cap", "health")
"""Command names: the last level of ``<prefix>/<gateway_id>/cmd/<name>``."""


@dataclass(frozen=True, slots=True)
class Topics:
    """Topic names for ``<prefix>/<gateway_id>/``."""

    prefix: str
    gateway_id: str
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        for name, level in (
            ("prefix", self.prefix),
            ("gateway_id", self.gateway_id),
            ("discovery_prefix", self.discovery_prefix),
        ):
            if not level or any(c in level for c in "/+#\0"):
                raise ValueError(f"{name} (={level!r}) must be one non-empty topic level")

    @property
    def base(self) -> str:
        """``<prefix>/<gateway_id>``."""
        return f"{self.prefix}/{self.gateway_id}"

    @property
    def availability(self) -> str:
        """Retained ``online``/``offline``; the last will says ``offline``."""
        return f"{self.base}/availability"

    @property
    def state(self) -> str:
        """Pack state, limits and negotiation (periodic)."""
        return f"{self.base}/state"

    @property
    def cells(self) -> str:
        """Per-cell values (periodic)."""
        return f"{self.base}/cells"

    @property
    def alarms(self) -> str:
        """Active alarms (retained, on change)."""
        return f"{self.base}/alarms"

    @property
    def balancing(self) -> str:
        """Balancing plan and actions (retained, on change and periodic)."""
        return f"{self.base}/balancing"

    @property
    def health(self) -> str:
        """Cell health trends and forecasts (retained; daily and on ``cmd/health``)."""
        return f"{self.base}/health"

    @property
    def events(self) -> str:
        """Events: start, stop, link lost/recovered, config loaded, ..."""
        return f"{self.base}/events"

    @property
    def command_filter(self) -> str:
        """Subscription filter for commands (also matches our own result topic)."""
        return f"{self.base}/cmd/+"

    @property
    def command_result(self) -> str:
        """Replies to commands, accepted or rejected."""
        return f"{self.base}/cmd/{RESULT}"

    def command(self, name: str) -> str:
        """Topic of command ``name``."""
        return f"{self.base}/cmd/{name}"

    def command_name(self, topic: str) -> str | None:
        """The command name of ``topic``, or ``None`` when it is not under our ``cmd/``."""
        head = f"{self.base}/cmd/"
        if not topic.startswith(head):
            return None
        name = topic[len(head) :]
        return name if name and "/" not in name else None

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic (``online`` after HA starts)."""
        return f"{self.discovery_prefix}/status"

    @property
    def node_id(self) -> str:
        """Discovery node id, also the device identifier."""
        return f"bmsgw_{self.gateway_id}".replace("-", "_").replace(".", "_")

    def discovery(self, component: str, object_id: str) -> str:
        """Discovery config topic of one entity."""
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"
