"""``bms-gateway demo``: the whole loop on this machine, no hardware.

A simulated pack on a virtual CAN bus feeds the gateway; a simulated storage controller polls the
gateway's SunSpec server on loopback and drives the pack current from a PV and load profile within
the limits it reads; an embedded (or the already running) MQTT broker on loopback carries the
diagnostics. Time can be accelerated with ``--speed``; the gateway, the pack and the inverter then
share one accelerated clock, so every timeout keeps its meaning in simulated seconds.

The demo never touches a real installation: it publishes as ``demo-<host>`` with its own MQTT
client id (never ``bms1``, a real gateway's default), deletes what it retained on the broker when
it stops, and serves Modbus on the configured port only when that port is free.
``--inverter`` picks what closes the loop (``DemoInverter``): the simulated storage controller
over SunSpec (default), a simulated inverter speaking a battery-CAN dialect on a second virtual
bus (``pylon``, ``sma``, ``victron``, ``pylon-hv``), or ``none``, which leaves the Modbus side (and
its controller heartbeat) to the user's own SunSpec client; the simulated pack then follows the PV
and load profile within the limits the gateway offers, as an obedient inverter would.
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
from collections.abc import Callable, Coroutine
from enum import StrEnum
from pathlib import Path
from typing import Any

import can

from gateway.app import Gateway
from gateway.core.chemistry import get_chemistry
from gateway.core.model import ControlOutput
from gateway.errors import MqttLinkError
from gateway.inverter_can.config import InverterProtocol
from gateway.mqtt.broker import LocalBroker
from gateway.mqtt.cleanup import clear_retained
from gateway.mqtt.topics import Topics
from gateway.settings import Settings
from gateway.sim.can_inverter import CanInverterSim
from gateway.sim.emitter import FrameRates, run_sim_on_bus
from gateway.sim.inverter import PvLoadProfile, StorageControllerSim
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.view import ScreenLog, alternate_screen, redraw, render

__all__ = [
    "DEMO_RAMP_HOLD_S",
    "INVERTERS",
    "DemoInverter",
    "demo",
    "demo_identity",
    "demo_settings",
    "modbus_host",
]

log = logging.getLogger(__name__)

VIEW_PERIOD_S = 0.5

DEMO_RAMP_HOLD_S = 5.0
"""The demo's ``limits.ramp_hold_s`` unless the config sets one: a first screen with CCL held at
0 A for the default 30 s looks broken to someone trying the gateway out."""


class DemoInverter(StrEnum):
    """What drives the Modbus side of the demo (``demo --inverter``)."""

    SUNSPEC = "sunspec"
    """The simulated storage controller: polls model 802, writes CtrlHb, follows the limits."""
    PYLON = "pylon"
    """A simulated hybrid inverter on battery CAN, Pylontech LV dialect."""
    SMA = "sma"
    """The same, SMA dialect."""
    VICTRON = "victron"
    """The same, Victron dialect."""
    PYLON_HV = "pylon-hv"
    """A simulated HV inverter polling Pylontech HV (29-bit, 0x4200)."""
    NONE = "none"
    """Nothing: a person's own SunSpec client or inverter polls the gateway."""

    @property
    def battery_can(self) -> bool:
        """Whether the inverter talks battery CAN (``[inverter_can]``) instead of SunSpec."""
        return self not in (DemoInverter.SUNSPEC, DemoInverter.NONE)


#: ``--inverter`` choices, as strings.
INVERTERS = tuple(k.value for k in DemoInverter)


def demo_identity(host: str | None = None) -> str:
    """``demo-<host>``: the demo's gateway id, a valid topic level (``control.gateway_id``)."""
    name = host if host is not None else socket.gethostname()
    clean = "".join(c if c.isalnum() or c in "_-" else "-" for c in name.split(".")[0])
    return f"demo-{clean.strip('-') or 'host'}"[:64]


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


Clock = Callable[[], float]


def _accelerated_clock(speed: float) -> Clock:
    m0 = time.monotonic()
    return lambda: (time.monotonic() - m0) * speed


def modbus_host(settings: Settings) -> str:
    """Where the demo's Modbus server listens: loopback, unless the config sets ``sunspec.host``
    (``0.0.0.0`` lets an inverter on the LAN poll the demo, with ``--inverter none``)."""
    return settings.sunspec.host if "host" in settings.sunspec.model_fields_set else "127.0.0.1"


def demo_settings(
    settings: Settings,
    *,
    channel: str,
    modbus_port: int,
    mqtt_port: int,
    state_dir: Path,
    gateway_id: str | None = None,
    inverter: DemoInverter | str = DemoInverter.SUNSPEC,
    speed: float = 1.0,
    web_port: int | None = None,
) -> Settings:
    """The user's settings with the demo's links and identity, and the web dashboard on
    loopback (``web_port``; the configured one when None).

    Virtual CAN, loopback MQTT, Modbus on loopback (or ``sunspec.host`` when the config sets
    it); gateway id ``gateway_id`` (default ``demo-<host>``)
    and MQTT client id ``bms-gateway-<gateway_id>-<pid>`` whatever the config says, so the demo
    never takes over a real gateway's topics or client id; the ramp hold shortened to
    ``DEMO_RAMP_HOLD_S`` unless the config (file or environment) sets ``limits.ramp_hold_s``.

    ``inverter``: ``sunspec`` and ``none`` serve model 802; a battery-CAN dialect speaks it on a
    second virtual channel (``<channel>-inv``) with SunSpec off.

    ``speed`` stretches the input timeouts as ``demo_rates`` stretches the frame periods: a
    value past its timeout is unknown on every output, and at 240x a 10 ms hiccup of a busy
    machine is 2.4 s of pack time, longer than the 2 s current timeout.
    """
    kind = DemoInverter(inverter)
    gid = gateway_id or demo_identity()
    limits = settings.limits
    if "ramp_hold_s" not in limits.model_fields_set:
        limits = limits.model_copy(update={"ramp_hold_s": DEMO_RAMP_HOLD_S})
    k = max(1.0, speed / 20.0)
    t = settings.timeouts
    timeouts = t.model_copy(
        update={
            "cell_voltage_timeout_s": min(60.0, t.cell_voltage_timeout_s * k),
            "temperature_timeout_s": min(300.0, t.temperature_timeout_s * k),
            "current_timeout_s": min(60.0, t.current_timeout_s * k),
            "pack_voltage_timeout_s": min(60.0, t.pack_voltage_timeout_s * k),
        }
    )
    return settings.model_copy(
        update={
            "timeouts": timeouts,
            "can": settings.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "control": settings.control.model_copy(update={"gateway_id": gid}),
            "limits": limits,
            "sunspec": settings.sunspec.model_copy(
                update={
                    "mode": "off" if kind.battery_can else "server",
                    "host": modbus_host(settings),
                    "port": modbus_port,
                }
            ),
            "inverter_can": settings.inverter_can.model_copy(
                update={
                    "protocol": InverterProtocol(kind.value if kind.battery_can else "off"),
                    "interface": "virtual",
                    "channel": f"{channel}-inv",
                }
            ),
            "mqtt": settings.mqtt.model_copy(
                update={
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": mqtt_port,
                    "commands": True,
                    "client_id": f"bms-gateway-{gid}-{os.getpid()}",
                }
            ),
            "state": settings.state.model_copy(update={"path": str(state_dir / "estimator.json")}),
            "web": settings.web.model_copy(
                update={
                    "enabled": True,
                    "host": "127.0.0.1",
                    "port": web_port if web_port is not None else settings.web.port,
                }
            ),
        }
    )


def demo_rates(speed: float) -> FrameRates:
    """Frame periods for ``speed``: the DBC's at real time, sparser when accelerated.

    At 240x the DBC rates would be ~20,000 frames per wall second; stretching the periods keeps
    the bus near 1,000 while every period stays well inside the gateway's input timeouts.
    """
    k = max(1.0, speed / 20.0)
    base = FrameRates()
    return FrameRates(
        cell_voltages_s=min(0.1 * k, 1.0),
        pack_values_s=min(0.02 * k, 0.5),
        cell_temperatures_s=min(1.0 * k, 2.0),
        balancing_status_s=base.balancing_status_s,
    )


def _pack_sim(settings: Settings) -> PackSim:
    pack = settings.pack
    return PackSim(
        PackSimConfig(
            cells=pack.cells,
            chemistry=pack.chemistry,
            capacity_ah=pack.capacity_ah,
            temp_sensors=pack.temp_sensors,
            initial_soc_pct=75.0,
            initial_soc_spread_pct=4.0,
            capacity_spread_pct=2.0,
        ),
        seed=1,
    )


def _profile(settings: Settings) -> tuple[PvLoadProfile, float]:
    """The PV and load profile sized to the pack, and the pack's nominal voltage."""
    pack = settings.pack
    chem = get_chemistry(pack.chemistry)
    energy_wh = pack.capacity_ah * pack.cells * chem.nominal_v
    # Start at 10:00 so PV charges the pack right away; PV peaks at 0.5 C, the evening load
    # draws about 0.2 C.
    profile = PvLoadProfile(
        start_hour=10.0,
        pv_peak_w=0.5 * energy_wh,
        base_load_w=0.05 * energy_wh,
        evening_load_w=0.15 * energy_wh,
    )
    return profile, pack.cells * chem.nominal_v


Task = Callable[[], Coroutine[Any, Any, None]]


class _Inverter:
    """The demo's inverter side: the pack current it draws, its tasks, its link state."""

    def __init__(self, kind: DemoInverter, gw: Gateway, speed: float, clock: Clock) -> None:
        self.kind = kind
        s = gw.settings
        profile, nominal_v = _profile(s)
        self._gw = gw
        self._profile = profile
        self._nominal_v = nominal_v
        self.sim: StorageControllerSim | CanInverterSim | None = None
        if kind.battery_can:
            self.sim = CanInverterSim(
                kind.value,
                channel=s.inverter_can.channel,
                profile=profile,
                nominal_voltage_v=nominal_v,
                force_charge_a=0.1 * s.pack.capacity_ah,
            )
        elif kind is DemoInverter.SUNSPEC:
            wildcard = s.sunspec.host in ("0.0.0.0", "::")
            self.sim = StorageControllerSim(
                "127.0.0.1" if wildcard else s.sunspec.host,
                s.sunspec.port,
                unit_id=s.sunspec.unit_id,
                # A storage controller polls about once a second; keep that in simulated time.
                poll_s=max(0.02, min(0.2, 1.0 / speed)),
                profile=profile,
                nominal_voltage_v=nominal_v,
                clock=clock,
            )

    def current_a(self, t_s: float) -> float:
        """Pack current at simulated ``t_s`` (positive = charging)."""
        if self.sim is not None:
            return self.sim.current_a(t_s)
        # No simulated controller: an obedient inverter within the limits the gateway offers.
        out = self._gw.latest
        if out is None:
            return 0.0
        wanted = self._profile.surplus_w(t_s) / self._nominal_v
        return max(-out.limits.dcl_a.value, min(out.limits.ccl_a.value, wanted))

    def tasks(self) -> list[Task]:
        """What runs beside the gateway: the simulated inverter (a SunSpec controller only once
        the Modbus server listens)."""
        sim, server = self.sim, self._gw.sunspec_server
        if isinstance(sim, CanInverterSim):
            return [sim.run]
        if sim is None or server is None:
            return []

        async def run_controller() -> None:
            # Polling before the server listens costs a pymodbus connection warning per start.
            await server.started.wait()
            await sim.run()

        return [run_controller]

    def link(self) -> str:
        """One word for the view."""
        if isinstance(self.sim, CanInverterSim):
            return "hearing the battery" if self.sim.frames else "waiting"
        if self.sim is not None:
            return "polling" if self.sim.connected else "waiting"
        server = self._gw.sunspec_server
        hb = server.controller_heartbeat() if server is not None else None
        if hb is None or not hb.seen:
            return "none (yours: no CtrlHb yet)"
        return "yours (CtrlHb lost)" if hb.lost else "yours (CtrlHb ok)"


def _ramp_note(out: ControlOutput, hold_s: float, rate_a_per_s: float) -> str | None:
    """Why a current limit says ``ramp``, for the view (None when neither does)."""
    held = [
        (name, lim)
        for name, lim in (("CCL", out.limits.ccl_a), ("DCL", out.limits.dcl_a))
        if lim.winner == "ramp"
    ]
    if not held:
        return None
    lim = held[0][1]
    target = min((t.value for t in lim.terms if t.name != "ramp"), default=lim.value)
    return (
        f"ramp: {'/'.join(n for n, _ in held)} hold {hold_s:g} s after a cut or start, "
        f"then +{rate_a_per_s:g} A/s (to {target:.0f} A)"
    )


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

    modbus_port = settings.sunspec.port
    host = modbus_host(settings)
    if not _port_free(host, modbus_port):
        free = _free_port(host)
        log.warning("demo: Modbus port %d is in use; serving on %d", modbus_port, free)
        modbus_port = free
    web_port = settings.web.port
    if not _port_free("127.0.0.1", web_port):
        web_port = _free_port()
    channel = f"bms-demo-{os.getpid()}"
    clock = _accelerated_clock(speed)

    async with LocalBroker(port=settings.mqtt.port) as broker:
        with tempfile.TemporaryDirectory(prefix="bms-demo-") as tmp:
            s = demo_settings(
                settings,
                channel=channel,
                modbus_port=modbus_port,
                mqtt_port=broker.port,
                state_dir=state_dir or Path(tmp),
                inverter=inverter_kind,
                speed=speed,
                web_port=web_port,
            )
            gw = Gateway(s, clock=clock)
            chem = get_chemistry(s.pack.chemistry)
            sim = _pack_sim(s)
            inverter = _Inverter(inverter_kind, gw, speed, clock)
            sim_bus = can.Bus(interface="virtual", channel=channel)
            base = f"{s.mqtt.prefix}/{s.control.gateway_id}"
            endpoints = [
                f"MQTT:   {broker.description} as {s.control.gateway_id}",
                f"  watch: mosquitto_sub -h {broker.host} -p {broker.port} -t '{base}/#' -v",
                f"Modbus: SunSpec model 802 at {host}:{modbus_port}, unit "
                f"{s.sunspec.unit_id}, base {s.sunspec.base_address}"
                if not inverter_kind.battery_can
                else f"Inverter: {inverter_kind} battery CAN on virtual:{s.inverter_can.channel}",
                f"Web:    http://127.0.0.1:{web_port}/ (dashboard), /metrics (Prometheus)",
            ]

            async def run_sim() -> None:
                await run_sim_on_bus(
                    sim_bus,
                    sim,
                    speed=speed,
                    current_source=inverter.current_a,
                    stop=stop,
                    rates=demo_rates(speed),
                )

            tty = view and sys.stdout.isatty()
            screen_log = ScreenLog()

            async def run_view() -> None:
                last_line = -math.inf
                while True:
                    await asyncio.sleep(VIEW_PERIOD_S)
                    out = gw.latest
                    if tty:
                        links = {
                            "CAN": "up" if gw.can.connected else "down",
                            "inverter": inverter.link(),
                            "MQTT": (
                                "connected"
                                if gw.mqtt is not None and gw.mqtt.status.connected
                                else "connecting"
                            ),
                        }
                        note = None
                        if out is not None:
                            note = _ramp_note(out, s.limits.ramp_hold_s, s.limits.ramp_a_per_s)
                        size = shutil.get_terminal_size((80, 24))
                        screen = render(
                            out,
                            v_window=(chem.min_v, chem.max_v),
                            links=links,
                            endpoints=endpoints,
                            sim_time_s=sim.t_s,
                            note=note,
                            log_line=screen_log.latest,
                            width=max(80, size.columns),
                            height=max(24, size.lines),
                        )
                        sys.stdout.write(redraw(screen))
                        sys.stdout.flush()
                    elif out is not None and time.monotonic() - last_line >= 5.0:
                        last_line = time.monotonic()
                        soc = f"{out.soc.soc_pct:.1f}" if out.soc else "--"
                        print(
                            f"t={sim.t_s:8.0f}s mode={out.mode} I={out.pack.current_a} "
                            f"SoC={soc}% CCL={out.limits.ccl_a.value:.1f}A "
                            f"({out.limits.ccl_a.winner}) DCL={out.limits.dcl_a.value:.1f}A "
                            f"({out.limits.dcl_a.winner}) balancing={sum(out.balancing.bleed)}",
                            flush=True,
                        )

            async def run_timer() -> None:
                if duration_s is None:
                    return
                await asyncio.sleep(duration_s)
                stop.set()

            if not tty:
                for e in endpoints:
                    print(e, flush=True)
                if inverter_kind is DemoInverter.NONE:
                    print(
                        "inverter: none simulated; point your SunSpec client at the Modbus "
                        "address above (write CtrlHb to be supervised)",
                        flush=True,
                    )
            try:
                with screen_log.capture(tty), alternate_screen(tty):
                    await gw.run(stop, extra=[run_sim, *inverter.tasks(), run_view, run_timer])
            finally:
                sim_bus.shutdown()
                if broker.which == "existing":  # a broker we started goes with what it holds
                    await _clear(s)
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
