"""``bms-gateway demo``: the whole loop on this machine, no hardware.

A simulated pack on a virtual CAN bus feeds the gateway; a simulated storage controller polls the
gateway's SunSpec server on loopback and drives the pack current from a PV and load profile within
the limits it reads; an embedded (or the already running) MQTT broker on loopback carries the
diagnostics. Time can be accelerated with ``--speed``; the gateway, the pack and the inverter then
share one accelerated clock, so every timeout keeps its meaning in simulated seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import can

from gateway.app import Gateway
from gateway.core.chemistry import get_chemistry
from gateway.inverter_can.config import InverterProtocol
from gateway.mqtt.broker import LocalBroker
from gateway.settings import Settings
from gateway.sim.can_inverter import CanInverterSim
from gateway.sim.emitter import FrameRates, run_sim_on_bus
from gateway.sim.inverter import PvLoadProfile, StorageControllerSim
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.view import render

__all__ = ["demo"]

log = logging.getLogger(__name__)

VIEW_PERIOD_S = 0.5


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
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


def _accelerated_clock(speed: float) -> Callable[[], float]:
    m0 = time.monotonic()
    return lambda: (time.monotonic() - m0) * speed


#: ``--inverter`` choices: the battery-CAN dialects, SunSpec (model 802 server) or no inverter.
INVERTERS = ("sunspec", "pylon", "sma", "victron", "pylon-hv", "none")


def demo_settings(
    settings: Settings,
    *,
    channel: str,
    modbus_port: int,
    mqtt_port: int,
    state_dir: Path,
    inverter: str = "sunspec",
    speed: float = 1.0,
) -> Settings:
    """The user's settings with the demo's links: virtual CAN, loopback Modbus and MQTT.

    ``inverter``: ``sunspec`` serves model 802 on loopback; a battery-CAN dialect speaks it on a
    second virtual channel (``<channel>-inv``) with SunSpec off; ``none`` has no inverter link.

    ``speed`` stretches the input timeouts as ``demo_rates`` stretches the frame periods: a
    value past its timeout is unknown on every output, and at 240x a 10 ms hiccup of a busy
    machine is 2.4 s of pack time, longer than the 2 s current timeout.
    """
    can_side = inverter not in ("sunspec", "none")
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
            "sunspec": settings.sunspec.model_copy(
                update={
                    "mode": "server" if inverter == "sunspec" else "off",
                    "host": "127.0.0.1",
                    "port": modbus_port,
                }
            ),
            "inverter_can": settings.inverter_can.model_copy(
                update={
                    "protocol": InverterProtocol(inverter if can_side else "off"),
                    "interface": "virtual",
                    "channel": f"{channel}-inv",
                }
            ),
            "mqtt": settings.mqtt.model_copy(
                update={"enabled": True, "host": "127.0.0.1", "port": mqtt_port, "commands": True}
            ),
            "state": settings.state.model_copy(update={"path": str(state_dir / "estimator.json")}),
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


async def _demo(
    settings: Settings,
    speed: float,
    duration_s: float | None,
    view: bool,
    state_dir: Path | None,
    inverter_kind: str = "sunspec",
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    modbus_port = settings.sunspec.port
    if not _port_free("127.0.0.1", modbus_port):
        modbus_port = _free_port()
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
            )
            gw = Gateway(s, clock=clock)
            pack = s.pack
            chem = get_chemistry(pack.chemistry)
            sim = PackSim(
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
            energy_wh = pack.capacity_ah * pack.cells * chem.nominal_v
            # Start at 10:00 so PV charges the pack right away.
            # Sized to the pack: PV peaks at 0.5 C, the evening load draws about 0.2 C.
            profile = PvLoadProfile(
                start_hour=10.0,
                pv_peak_w=0.5 * energy_wh,
                base_load_w=0.05 * energy_wh,
                evening_load_w=0.15 * energy_wh,
            )
            inverter: StorageControllerSim | CanInverterSim | None = None
            if inverter_kind == "sunspec":
                inverter = StorageControllerSim(
                    "127.0.0.1",
                    modbus_port,
                    unit_id=s.sunspec.unit_id,
                    # A storage controller polls about once a second; keep that in simulated time.
                    poll_s=max(0.02, min(0.2, 1.0 / speed)),
                    profile=profile,
                    nominal_voltage_v=pack.cells * chem.nominal_v,
                    clock=clock,
                )
            elif inverter_kind != "none":
                inverter = CanInverterSim(
                    inverter_kind,
                    channel=s.inverter_can.channel,
                    profile=profile,
                    nominal_voltage_v=pack.cells * chem.nominal_v,
                    force_charge_a=0.1 * pack.capacity_ah,
                )
            sim_bus = can.Bus(interface="virtual", channel=channel)
            endpoints = [
                f"MQTT:   {broker.description}; watch: mosquitto_sub -h {broker.host} "
                f"-p {broker.port} -t '{s.mqtt.prefix}/#' -v",
                f"Modbus: SunSpec model 802 at 127.0.0.1:{modbus_port}, unit "
                f"{s.sunspec.unit_id}, base {s.sunspec.base_address}"
                if inverter_kind == "sunspec"
                else f"Inverter: {inverter_kind} battery CAN on virtual:{s.inverter_can.channel}"
                if inverter is not None
                else "Inverter: none (the pack current stays 0 A)",
            ]

            def current_a(t_s: float) -> float:
                return inverter.current_a(t_s) if inverter is not None else 0.0

            def inverter_state() -> str:
                if isinstance(inverter, StorageControllerSim):
                    return "polling" if inverter.connected else "waiting"
                if isinstance(inverter, CanInverterSim):
                    return "hearing the battery" if inverter.frames else "waiting"
                return "none"

            async def run_sim() -> None:
                await run_sim_on_bus(
                    sim_bus,
                    sim,
                    speed=speed,
                    current_source=current_a,
                    stop=stop,
                    rates=demo_rates(speed),
                )

            async def run_view() -> None:
                tty = view and sys.stdout.isatty()
                last_line = -math.inf
                while True:
                    await asyncio.sleep(VIEW_PERIOD_S)
                    out = gw.latest
                    links = {
                        "CAN": "up" if gw.can.connected else "down",
                        "inverter": inverter_state(),
                        "MQTT": (
                            "connected"
                            if gw.mqtt is not None and gw.mqtt.status.connected
                            else "connecting"
                        ),
                    }
                    if tty:
                        screen = render(
                            out,
                            v_window=(chem.min_v, chem.max_v),
                            links=links,
                            endpoints=endpoints,
                            sim_time_s=sim.t_s,
                        )
                        sys.stdout.write("\x1b[H\x1b[2J" + screen + "\n")
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

            if not (view and sys.stdout.isatty()):
                for e in endpoints:
                    print(e, flush=True)
            try:
                extra = [run_sim, run_view, run_timer]
                if inverter is not None:
                    extra.append(inverter.run)
                await gw.run(stop, extra=extra)
            finally:
                sim_bus.shutdown()
    return 0


def demo(
    settings: Settings,
    *,
    speed: float = 1.0,
    duration_s: float | None = None,
    view: bool = True,
    state_dir: Path | None = None,
    inverter: str = "sunspec",
) -> int:
    """Run the demo until Ctrl-C (or ``duration_s`` wall seconds); the exit status.

    ``state_dir`` keeps the estimator state between demo runs (default: a temporary folder).
    ``inverter``: one of ``INVERTERS`` (which simulated inverter closes the loop).
    """
    if inverter not in INVERTERS:
        print(
            f"error: --inverter (={inverter}) must be one of {', '.join(INVERTERS)}",
            file=sys.stderr,
        )
        return 2
    if not speed > 0:
        print(f"error: --speed (={speed}) must be positive", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(_demo(settings, speed, duration_s, view, state_dir, inverter))
    return 0
