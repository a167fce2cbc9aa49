"""The demo's world around the gateway: the simulated pack, its day, the inverter and the clock.

``pack_sim`` is a 75 % pack with some spread; ``pv_load_profile`` a home-storage day sized to it;
``InverterSide`` what draws the pack current (a simulated storage controller on SunSpec, a
simulated inverter on battery CAN, or, with ``--inverter none``, an obedient inverter within the
limits the gateway offers) and how its link looks on the view. One ``Clock`` (``speed`` times
real time) drives the gateway, the pack and the inverter alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.app import Gateway
from gateway.core.chemistry import get_chemistry
from gateway.demo_config import DemoInverter
from gateway.settings import Settings
from gateway.sim.can_inverter import CanInverterSim
from gateway.sim.inverter import PvLoadProfile, StorageControllerSim
from gateway.sim.pack import PackSim, PackSimConfig

__all__ = ["Clock", "InverterSide", "Task", "accelerated_clock", "pack_sim", "pv_load_profile"]

#: Monotonic seconds of the demo (simulated time).
Clock = Callable[[], float]

#: A coroutine function run beside the gateway (``Gateway.run(extra=...)``).
Task = Callable[[], Coroutine[Any, Any, None]]


def accelerated_clock(speed: float) -> Clock:
    """Seconds since now, ``speed`` times faster than ``time.monotonic``."""
    m0 = time.monotonic()
    return lambda: (time.monotonic() - m0) * speed


def pack_sim(settings: Settings) -> PackSim:
    """The simulated pack of ``[pack]``: 75 % SoC, 4 % SoC and 2 % capacity spread, seed 1."""
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


def pv_load_profile(settings: Settings) -> tuple[PvLoadProfile, float]:
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


class InverterSide:
    """The demo's inverter side: the pack current it draws, its tasks, its link state."""

    def __init__(self, kind: DemoInverter, gw: Gateway, speed: float, clock: Clock) -> None:
        self.kind = kind
        s = gw.settings
        profile, nominal_v = pv_load_profile(s)
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
