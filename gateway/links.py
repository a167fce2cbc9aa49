"""Whether each link of the gateway is up, and an event once when one is lost or comes back.

The links: BMS data on CAN (the interface is open and the pack current is fresh), the inverter
(the SunSpec client's connection or the inverter CAN keep-alive), and the storage controller's
heartbeat (SunSpec server mode). A link that was never up is not reported as lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.canbus.link import CanLink
from gateway.core.model import ControlOutput
from gateway.outputs import Outputs
from gateway.settings import Settings

__all__ = ["LinkMonitor"]

EventSink = Callable[..., None]
"""``event(name, **data)``: the gateway's event (log line, MQTT and web)."""


class LinkMonitor:
    """Link states of a control step, and their transitions as events.

    Args:
        settings: the gateway's settings (the pack current's timeout).
        can: the CAN input.
        outputs: the gateway's outputs (the inverter links).
        event: where a loss (``<link>_link_lost``), a first up and a recovery are reported.
    """

    def __init__(
        self, settings: Settings, can: CanLink, outputs: Outputs, event: EventSink
    ) -> None:
        self.settings = settings
        self.can = can
        self.outputs = outputs
        self._event = event
        self._links: dict[str, bool] = {}
        self._checked_s = -1e9

    def states(self, out: ControlOutput) -> dict[str, bool]:
        """Whether each link is up at ``out``: BMS data on CAN, the inverter, the controller."""
        outs = self.outputs
        age = out.pack.current_age_s
        fresh = age is not None and age <= self.settings.timeouts.current_timeout_s
        states = {"can": self.can.connected and fresh}
        if outs.sunspec_client is not None:
            states["inverter"] = outs.sunspec_client.connected
        if outs.inverter_can is not None:
            alive = outs.inverter_can.keepalive_alive()
            if alive is not None:
                states["inverter_can" if "inverter" in states else "inverter"] = alive
        if outs.sunspec_server is not None:
            hb = outs.sunspec_server.controller_heartbeat()
            if hb.seen:
                states["storage_controller"] = not hb.lost
        return states

    def detail(self, name: str, out: ControlOutput) -> dict[str, Any]:
        """What a link's state rests on: the value and its threshold."""
        outs = self.outputs
        if name == "can":
            age = out.pack.current_age_s
            return {
                "pack_current_age_s": None if age is None else round(age, 3),
                "timeout_s": self.settings.timeouts.current_timeout_s,
                "interface_up": self.can.connected,
            }
        if name == "storage_controller" and outs.sunspec_server is not None:
            hb = outs.sunspec_server.controller_heartbeat()
            return {
                "ctrl_hb_age_s": None if hb.age_s is None else round(hb.age_s, 3),
                "timeout_s": hb.timeout_s,
            }
        if name == "inverter" and outs.sunspec_client is not None:
            return {"error": outs.sunspec_client.last_error or ""}
        return {}

    def after_step(self, out: ControlOutput) -> None:
        """Report link transitions, at most once a second of control time."""
        if out.t_s - self._checked_s >= 1.0:
            self._checked_s = out.t_s
            self._watch(out)

    def _watch(self, out: ControlOutput) -> None:
        for name, up in self.states(out).items():
            before = self._links.get(name)
            if before is None and not up:
                continue  # never up yet: nothing was lost
            if before != up:
                detail = self.detail(name, out)
                if up:
                    verb = "recovered" if before is False else "up"
                    self._event(f"{name}_link_{verb}", **detail)
                else:
                    self._event(f"{name}_link_lost", **detail)
                self._links[name] = up
