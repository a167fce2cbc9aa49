"""The gateway's outputs behind one protocol, and their construction from the settings.

An output reads the control step and talks to something outside the process: the SunSpec
server (the inverter polls us) or client (we write the inverter), the battery-CAN link to the
inverter, MQTT, the web dashboard, Sparkplug. Each is adapted to ``Output`` by a few lines here,
so the supervisor runs and contains them all alike and the control loop hands each step to all
of them alike; the servers themselves are not changed for it.

``Output`` (see docs/ARCHITECTURE.md, "Outputs"):

- ``name``: the supervisor's task name (``gateway.mqtt``), in logs and ``output_restart``.
- ``run()``: a fresh coroutine per (re)start that serves until cancelled and retries its own
  link errors; whatever escapes it is contained by the supervisor (logged, restarted after a
  capped, jittered backoff) and never stops the control step. Stopping is cancelling it.
- ``publish(out, step_s)``: the control loop hands over each step (``step_s``: how long the
  step took, s); it returns at once, never awaits and never waits for a peer. It runs in the
  control step, so an exception from it is the control loop's and ends the run.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from gateway import __version__
from gateway.core.chemistry import get_chemistry
from gateway.core.health import HealthReport
from gateway.core.model import Command, CommandResult, ControlOutput, Negotiation
from gateway.errors import ConfigError
from gateway.inverter_can.config import InverterProtocol
from gateway.inverter_can.frames import BatteryIdentity
from gateway.inverter_can.link import InverterCanLink
from gateway.mqtt.publisher import MqttPublisher
from gateway.settings import Settings
from gateway.sunspec.client import SunSpecClient
from gateway.sunspec.maps import BatteryInfo
from gateway.sunspec.server import SunSpecServer

if TYPE_CHECKING:
    from gateway.sparkplug.edge import SparkplugEdge
    from gateway.web.metrics import Observed
    from gateway.web.server import WebServer

__all__ = [
    "InverterCanOutput",
    "MqttOutput",
    "Output",
    "Outputs",
    "SparkplugOutput",
    "SunSpecClientOutput",
    "SunSpecServerOutput",
    "WebOutput",
    "build_outputs",
]


@runtime_checkable
class Output(Protocol):
    """One output of the gateway: run and contained by the supervisor, fed by the control loop."""

    @property
    def name(self) -> str:
        """The supervisor's task name (``gateway.<output>``)."""
        ...

    def run(self) -> Coroutine[Any, Any, None]:
        """A fresh coroutine per start: serve until cancelled (never returns on its own)."""
        ...

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Take the control step ``out`` (``step_s``: its duration, s); never blocks."""
        ...


# --- the adapters: one per output, a name and two calls each ---------------------------------


@dataclass(frozen=True, slots=True)
class SunSpecServerOutput:
    """The SunSpec model 802 server: each step is rendered into the registers."""

    server: SunSpecServer
    name: ClassVar[str] = "gateway.sunspec.server"

    def run(self) -> Coroutine[Any, Any, None]:
        """Serve Modbus until cancelled."""
        return self.server.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Render ``out`` into the registers."""
        self.server.update(out)


@dataclass(frozen=True, slots=True)
class SunSpecClientOutput:
    """The SunSpec client: each step's limits are what it writes to the inverter next."""

    client: SunSpecClient
    name: ClassVar[str] = "gateway.sunspec.client"

    def run(self) -> Coroutine[Any, Any, None]:
        """Negotiate with the inverter until cancelled."""
        return self.client.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Hand ``out`` to the negotiation."""
        self.client.update(out)


@dataclass(frozen=True, slots=True)
class InverterCanOutput:
    """The battery-CAN link to the inverter: a cut is sent within the step."""

    link: InverterCanLink
    name: ClassVar[str] = "gateway.inverter_can"

    def run(self) -> Coroutine[Any, Any, None]:
        """Broadcast (or answer polls) until cancelled."""
        return self.link.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Encode ``out`` (a lower limit goes out at once)."""
        self.link.update(out)


@dataclass(frozen=True, slots=True)
class MqttOutput:
    """The MQTT publisher: alarm and balancing changes queued, state and cells at their rates."""

    publisher: MqttPublisher
    name: ClassVar[str] = "gateway.mqtt"

    def run(self) -> Coroutine[Any, Any, None]:
        """Connect, publish and reconnect until cancelled."""
        return self.publisher.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Hand ``out`` to the publisher."""
        self.publisher.publish_output(out)


@dataclass(frozen=True, slots=True)
class WebOutput:
    """The web dashboard and ``/metrics``: a latest-value holder."""

    server: WebServer
    name: ClassVar[str] = "gateway.web"

    def run(self) -> Coroutine[Any, Any, None]:
        """Serve HTTP until cancelled."""
        return self.server.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Keep ``out`` and the step's duration for the page and the metrics."""
        self.server.publish_output(out, step_s)


@dataclass(frozen=True, slots=True)
class SparkplugOutput:
    """The Sparkplug B edge node."""

    edge: SparkplugEdge
    name: ClassVar[str] = "gateway.sparkplug"

    def run(self) -> Coroutine[Any, Any, None]:
        """Connect, publish births and data, reconnect until cancelled."""
        return self.edge.run()

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Hand ``out`` to the edge node."""
        self.edge.publish_output(out)


# --- the set of outputs of one gateway -------------------------------------------------------


@dataclass
class Outputs:
    """The outputs the settings switch on (``None``: off) and what the gateway asks of them.

    ``all`` holds the adapters in the order each step reaches them: the inverter links first
    (SunSpec server, SunSpec client, inverter CAN: a cut reaches the inverter first), then MQTT,
    the web dashboard and Sparkplug.
    """

    sunspec_server: SunSpecServer | None = None
    sunspec_client: SunSpecClient | None = None
    inverter_can: InverterCanLink | None = None
    mqtt: MqttPublisher | None = None
    sparkplug: SparkplugEdge | None = None
    web: WebServer | None = None
    all: list[Output] = field(default_factory=list)

    def publish(self, out: ControlOutput, step_s: float) -> None:
        """Hand one control step to every output."""
        for output in self.all:
            output.publish(out, step_s)

    def negotiation(self) -> Negotiation | None:
        """What the inverter link (server, client or inverter CAN, the first that is on)
        negotiated; ``None`` with no inverter link."""
        if self.sunspec_server is not None:
            return self.sunspec_server.negotiation()
        if self.sunspec_client is not None:
            return self.sunspec_client.negotiation()
        if self.inverter_can is not None:
            return self.inverter_can.negotiation()
        return None

    def publish_health(self, report: HealthReport) -> None:
        """Hand a health report to MQTT and the dashboard (latest-value holders)."""
        if self.mqtt is not None:
            self.mqtt.publish_health(report)
        if self.web is not None:
            self.web.publish_health(report)  # a latest-value holder: never blocks

    def event(self, name: str, data: dict[str, Any]) -> None:
        """Publish an event on MQTT and on the dashboard."""
        if self.mqtt is not None:
            self.mqtt.event(name, **data)
        if self.web is not None:
            self.web.event(name, data)

    def links(self) -> dict[str, bool]:
        """The outputs' own links to their brokers (MQTT, Sparkplug)."""
        states: dict[str, bool] = {}
        if self.mqtt is not None:
            states["mqtt"] = self.mqtt.status.connected
        if self.sparkplug is not None:
            states["sparkplug"] = self.sparkplug.status.connected
        return states

    def counters(self) -> dict[str, int]:
        """Message counters of the broker outputs, for ``/metrics``."""
        counters: dict[str, int] = {}
        if self.mqtt is not None:
            st = self.mqtt.status
            counters |= {
                "mqtt_sent": st.messages_sent,
                "mqtt_dropped": st.events_dropped,
                "mqtt_reconnects": st.reconnects,
            }
        if self.sparkplug is not None:
            sp = self.sparkplug.status
            counters |= {"sparkplug_births": sp.births, "sparkplug_data": sp.data_messages}
        return counters


def build_outputs(
    settings: Settings,
    *,
    on_command: Callable[[Command], CommandResult],
    observe: Callable[[], Observed],
) -> Outputs:
    """The outputs ``settings`` switch on, adapted to ``Output``.

    Args:
        settings: the gateway's settings.
        on_command: applies a command from SunSpec (AlmRst), MQTT or the web page.
        observe: what the dashboard reads (the gateway's ``observed``).

    Raises:
        ConfigError: ``sparkplug.enabled`` without pysparkplug installed.
    """
    outs = Outputs()
    if settings.sunspec.mode == "server":
        outs.sunspec_server = _sunspec_server(settings, on_command)
    elif settings.sunspec.mode == "client":
        outs.sunspec_client = SunSpecClient(settings.sunspec)
    if settings.inverter_can.protocol is not InverterProtocol.OFF:
        outs.inverter_can = _inverter_can(settings)
    if settings.mqtt.enabled:
        outs.mqtt = MqttPublisher(
            settings.mqtt,
            settings.control.gateway_id,
            on_command=on_command,
            health=settings.health.enabled,
        )
    if settings.sparkplug.enabled:
        outs.sparkplug = _sparkplug(settings)
    if settings.web.enabled:
        from gateway.web.server import WebServer  # aiohttp only when the dashboard is on

        chem = get_chemistry(settings.pack.chemistry)
        outs.web = WebServer(
            settings.web,
            settings.control.gateway_id,
            observe=observe,
            on_command=on_command,
            v_window=(chem.min_v, chem.max_v),
        )
    outs.all = _adapters(outs)
    return outs


def _adapters(outs: Outputs) -> list[Output]:
    """The adapters of the outputs that are on, in step order."""
    adapters: list[Output] = []
    if outs.sunspec_server is not None:
        adapters.append(SunSpecServerOutput(outs.sunspec_server))
    if outs.sunspec_client is not None:
        adapters.append(SunSpecClientOutput(outs.sunspec_client))
    if outs.inverter_can is not None:
        adapters.append(InverterCanOutput(outs.inverter_can))
    if outs.mqtt is not None:
        adapters.append(MqttOutput(outs.mqtt))
    if outs.web is not None:
        adapters.append(WebOutput(outs.web))
    if outs.sparkplug is not None:
        adapters.append(SparkplugOutput(outs.sparkplug))
    return adapters


def _sunspec_server(
    settings: Settings, on_command: Callable[[Command], CommandResult]
) -> SunSpecServer:
    chem = get_chemistry(settings.pack.chemistry)
    info = BatteryInfo.from_config(
        settings.sunspec,
        cells=settings.pack.cells,
        capacity_ah=settings.pack.capacity_ah,
        nominal_cell_v=chem.nominal_v,
        max_charge_a=settings.limits.max_charge_a,
        max_discharge_a=settings.limits.max_discharge_a,
        version=__version__,
    )
    # The SunSpec links keep real time even when the demo accelerates the pack: Hb counts
    # wall seconds and a storage controller's CtrlHb timeout is a wall-clock promise.
    return SunSpecServer(settings.sunspec, info=info, on_command=on_command)


def _inverter_can(settings: Settings) -> InverterCanLink:
    # Wall clock: the inverter's keep-alive timeout is a real-time promise.
    return InverterCanLink(
        settings.inverter_can,
        BatteryIdentity.from_config(
            settings.inverter_can,
            capacity_ah=settings.pack.capacity_ah,
            version=__version__,
            cells=settings.pack.cells,
            nominal_cell_v=get_chemistry(settings.pack.chemistry).nominal_v,
        ),
    )


def _sparkplug(settings: Settings) -> SparkplugEdge:
    try:  # pysparkplug only when it is on
        from gateway.sparkplug.edge import SparkplugEdge
    except ImportError as e:
        raise ConfigError(
            f"sparkplug.enabled needs pysparkplug ({e}); install it with "
            "`pip install --no-deps 'pysparkplug>=0.6.1,<0.7'` (make install does)"
        ) from None
    return SparkplugEdge(settings.sparkplug, settings.control.gateway_id, __version__)
