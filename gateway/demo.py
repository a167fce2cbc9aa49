"""``bms-gateway demo``: the whole loop on this machine, no hardware.

A simulated pack on a virtual CAN bus feeds the gateway; a simulated storage controller polls the
gateway's SunSpec server on loopback and drives the pack current from a PV and load profile within
the limits it reads; an embedded (or the already running) MQTT broker on loopback carries the
diagnostics. Time can be accelerated with ``--speed``; the gateway, the pack and the inverter then
share one accelerated clock, so every timeout keeps its meaning in simulated seconds.

The demo never touches a real installation: it publishes as ``demo-<host>`` (``-2``, ... while
another demo is live on the same broker) with its own MQTT client id (never ``bms1``, a real
gateway's default), deletes what it retained on the broker when it stops, and serves Modbus on
the configured port only when that port is free.
``--inverter`` picks what closes the loop (``DemoInverter``): the simulated storage controller
over SunSpec (default), a simulated inverter speaking a battery-CAN dialect on a second virtual
bus (``pylon``, ``sma``, ``victron``, ``pylon-hv``), or ``none``, which leaves the Modbus side (and
its controller heartbeat) to the user's own SunSpec client; the simulated pack then follows the PV
and load profile within the limits the gateway offers, as an obedient inverter would.

This module runs the demo: ports, broker, gateway, simulators and the live view. What it changes
in the settings is in ``gateway.demo_config``, the simulated world in ``gateway.demo_world``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import can

from gateway.app import Gateway
from gateway.core.chemistry import get_chemistry
from gateway.core.model import ControlOutput, TermKind
from gateway.demo_config import (
    DEMO_RAMP_HOLD_S,
    INVERTERS,
    DemoInverter,
    demo_identity,
    demo_rates,
    demo_settings,
    modbus_host,
)
from gateway.demo_world import Clock, InverterSide, accelerated_clock, pack_sim
from gateway.errors import MqttLinkError
from gateway.mqtt.broker import BrokerInfo, LocalBroker
from gateway.mqtt.cleanup import clear_retained, live_gateway_ids
from gateway.mqtt.topics import Topics
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim
from gateway.view import ScreenLog, alternate_screen, redraw, render, summary_line

__all__ = [
    "DEMO_RAMP_HOLD_S",
    "INVERTERS",
    "DemoInverter",
    "demo",
    "demo_identity",
    "demo_rates",
    "demo_settings",
    "modbus_host",
]

log = logging.getLogger(__name__)

VIEW_PERIOD_S = 0.5


def _port_free(host: str, port: int) -> bool:
    """Whether a server could listen on ``host:port`` now.

    SO_REUSEADDR as asyncio's (and so pymodbus') listening socket has it on POSIX: a port whose
    last connections are in TIME_WAIT (a demo stopped a moment ago) counts as free, as it is.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def _ports(settings: Settings) -> tuple[int, int]:
    """The Modbus and web ports: the configured ones when free, else free ones (a Modbus port
    0, "any free port", is chosen here, so the simulated controller and the endpoints know it);
    never the same port for both."""
    modbus_port = settings.sunspec.port
    host = modbus_host(settings)
    if modbus_port == 0:
        modbus_port = _free_port(host)
    elif not _port_free(host, modbus_port):
        free = _free_port(host)
        log.warning("demo: Modbus port %d is in use; serving on %d", modbus_port, free)
        modbus_port = free
    web_port = settings.web.port
    if web_port == modbus_port or not _port_free("127.0.0.1", web_port):
        free = _free_port()
        while free == modbus_port:
            free = _free_port()
        log.warning("demo: web port %d is in use; serving the dashboard on %d", web_port, free)
        web_port = free
    return modbus_port, web_port


def _endpoints(s: Settings, broker: BrokerInfo, kind: DemoInverter) -> list[str]:
    """Where to look: the broker, the Modbus server or the battery-CAN bus, the dashboard."""
    base = f"{s.mqtt.prefix}/{s.control.gateway_id}"
    return [
        f"MQTT:   {broker.description} as {s.control.gateway_id}",
        f"  watch: mosquitto_sub -h {broker.host} -p {broker.port} -t '{base}/#' -v",
        f"Modbus: SunSpec model 802 at {s.sunspec.host}:{s.sunspec.port}, unit "
        f"{s.sunspec.unit_id}, base {s.sunspec.base_address}"
        if not kind.battery_can
        else f"Inverter: {kind} battery CAN on virtual:{s.inverter_can.channel}",
        f"Web:    http://127.0.0.1:{s.web.port}/ (dashboard), /metrics (Prometheus)",
    ]


def _ramp_note(out: ControlOutput, hold_s: float, rate_a_per_s: float) -> str | None:
    """Why a current limit says ``ramp``, for the view (None when neither does)."""
    held = [
        (name, lim)
        for name, lim in (("CCL", out.limits.ccl_a), ("DCL", out.limits.dcl_a))
        if lim.winner_kind is TermKind.RAMP
    ]
    if not held:
        return None
    lim = held[0][1]
    target = min((t.value for t in lim.terms if t.kind is not TermKind.RAMP), default=lim.value)
    return (
        f"ramp: {'/'.join(n for n, _ in held)} hold {hold_s:g} s after a cut or start, "
        f"then +{rate_a_per_s:g} A/s (to {target:.0f} A)"
    )


class _LiveView:
    """Every ``VIEW_PERIOD_S``: the screen on a terminal, else a log line every 5 s."""

    def __init__(
        self,
        gw: Gateway,
        sim: PackSim,
        inverter: InverterSide,
        endpoints: list[str],
        *,
        tty: bool,
    ) -> None:
        self._gw = gw
        self._sim = sim
        self._inverter = inverter
        self._endpoints = endpoints
        self.tty = tty
        self.screen_log = ScreenLog()
        self._limits = gw.settings.limits
        chem = get_chemistry(gw.settings.pack.chemistry)
        self._v_window = (chem.min_v, chem.max_v)

    async def run(self) -> None:
        """Paint until cancelled."""
        last_line = -math.inf
        while True:
            await asyncio.sleep(VIEW_PERIOD_S)
            out = self._gw.latest
            if self.tty:
                self._paint(out)
            elif out is not None and time.monotonic() - last_line >= 5.0:
                last_line = time.monotonic()
                self._print_line(out)

    def _paint(self, out: ControlOutput | None) -> None:
        gw = self._gw
        links = {
            "CAN": "up" if gw.can.connected else "down",
            "inverter": self._inverter.link(),
            "MQTT": (
                "connected" if gw.mqtt is not None and gw.mqtt.status.connected else "connecting"
            ),
        }
        note = None
        if out is not None:
            lim = self._limits
            note = _ramp_note(out, lim.ramp_hold_s, lim.ramp_a_per_s)
        size = shutil.get_terminal_size((80, 24))
        screen = render(
            out,
            v_window=self._v_window,
            links=links,
            endpoints=self._endpoints,
            sim_time_s=self._sim.t_s,
            note=note,
            log_line=self.screen_log.latest,
            width=max(80, size.columns),
            height=max(24, size.lines),
        )
        sys.stdout.write(redraw(screen))
        sys.stdout.flush()

    def _print_line(self, out: ControlOutput) -> None:
        print(summary_line(out, self._sim.t_s), flush=True)


async def _clear(settings: Settings) -> None:
    """Delete the demo's retained topics; a broker that went away is logged, not fatal."""
    m = settings.mqtt
    topics = Topics(m.prefix, settings.control.gateway_id, m.discovery_prefix)
    try:
        cleared = await clear_retained(m, topics, client_id=f"{m.client_id}-cleanup")
    except MqttLinkError as e:
        log.warning("demo: retained topics of %s not cleared: %s", topics.base, e)
    else:
        log.info("demo: removed %d retained topic(s) of %s", len(cleared), topics.base)


async def _free_identity(settings: Settings, broker: BrokerInfo) -> str:
    """``demo-<host>``, or ``demo-<host>-2``, ``-3``, ... when another demo (or gateway) on a
    broker that was already running holds it: two demos on one broker would overwrite each
    other's retained topics and clear them when either stops. A broker that cannot be read
    keeps the plain id (the demo's own link reports the broker)."""
    base = demo_identity()
    if broker.which != "existing":
        return base
    m = settings.mqtt.model_copy(update={"host": broker.host, "port": broker.port})
    try:
        live = await live_gateway_ids(m, m.prefix, client_id=f"bms-demo-probe-{os.getpid()}")
    except MqttLinkError as e:
        log.warning("demo: could not read which gateways are live on the broker: %s", e)
        return base
    gid = base
    n = 1
    while gid in live:
        n += 1
        gid = f"{base[:58]}-{n}"
    if gid != base:
        log.warning("demo: %s is live on this broker; this demo publishes as %s", base, gid)
    return gid


def _print_endpoints(endpoints: list[str], kind: DemoInverter) -> None:
    for e in endpoints:
        print(e, flush=True)
    if kind is DemoInverter.NONE:
        print(
            "inverter: none simulated; point your SunSpec client at the Modbus "
            "address above (write CtrlHb to be supervised)",
            flush=True,
        )


async def _run_loop(
    s: Settings,
    broker: BrokerInfo,
    stop: asyncio.Event,
    clock: Clock,
    speed: float,
    duration_s: float | None,
    view: bool,
    kind: DemoInverter,
) -> None:
    """Run the gateway, the simulated pack and inverter and the view on ``s`` until ``stop``."""
    gw = Gateway(s, clock=clock)
    sim = pack_sim(s)
    inverter = InverterSide(kind, gw, speed, clock)
    sim_bus = can.Bus(interface="virtual", channel=s.can.channel)
    endpoints = _endpoints(s, broker, kind)
    live = _LiveView(gw, sim, inverter, endpoints, tty=view and sys.stdout.isatty())

    async def run_sim() -> None:
        await run_sim_on_bus(
            sim_bus,
            sim,
            speed=speed,
            current_source=inverter.current_a,
            stop=stop,
            rates=demo_rates(speed),
        )

    async def run_timer() -> None:
        if duration_s is None:
            return
        await asyncio.sleep(duration_s)
        stop.set()

    if not live.tty:
        _print_endpoints(endpoints, kind)
    try:
        with live.screen_log.capture(live.tty), alternate_screen(live.tty):
            await gw.run(stop, extra=[run_sim, *inverter.tasks(), live.run, run_timer])
    finally:
        sim_bus.shutdown()
        if broker.which == "existing":  # a broker we started goes with what it holds
            await _clear(s)


async def _demo(
    settings: Settings,
    speed: float,
    duration_s: float | None,
    view: bool,
    state_dir: Path | None,
    inverter_kind: DemoInverter,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    modbus_port, web_port = _ports(settings)
    channel = f"bms-demo-{os.getpid()}"
    clock = accelerated_clock(speed)
    async with LocalBroker(port=settings.mqtt.port) as broker:
        with tempfile.TemporaryDirectory(prefix="bms-demo-") as tmp:
            s = demo_settings(
                settings,
                channel=channel,
                modbus_port=modbus_port,
                mqtt_port=broker.port,
                state_dir=state_dir or Path(tmp),
                gateway_id=await _free_identity(settings, broker),
                inverter=inverter_kind,
                speed=speed,
                web_port=web_port,
            )
            await _run_loop(s, broker, stop, clock, speed, duration_s, view, inverter_kind)
    return 0


def demo(
    settings: Settings,
    *,
    speed: float = 1.0,
    duration_s: float | None = None,
    view: bool = True,
    state_dir: Path | None = None,
    inverter: DemoInverter | str = DemoInverter.SUNSPEC,
) -> int:
    """Run the demo until Ctrl-C (or ``duration_s`` wall seconds); the exit status.

    ``state_dir`` keeps the estimator state between demo runs (default: a temporary folder);
    ``inverter`` picks what drives the Modbus side (``DemoInverter``).
    """
    if not speed > 0:
        print(f"error: --speed (={speed}) must be positive", file=sys.stderr)
        return 2
    if inverter not in INVERTERS:
        print(
            f"error: --inverter (={inverter}) must be one of {', '.join(INVERTERS)}",
            file=sys.stderr,
        )
        return 2
    kind = DemoInverter(inverter)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_demo(settings, speed, duration_s, view, state_dir, kind))
    return 0
