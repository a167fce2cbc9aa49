"""Inverter simulator: follows the battery's limits and drives the pack current.

Two ways to close the loop over loopback Modbus, matching the gateway's two SunSpec modes:

* ``StorageControllerSim`` (gateway in server mode): polls the gateway's model 802 like a storage
  controller, writes CtrlHb every second, and follows AChaMax/ADisChaMax.
* ``InverterServerSim`` (gateway in client mode): serves models 124 and 702 like a hybrid or DER
  inverter, enforces what the gateway writes there (with the revert timeout), and follows it.

Either way ``current_a(t_s)`` is the pack current (positive = charging): the PV surplus or the
house deficit from a profile, divided by the pack voltage and bounded by the limits. It is
usable as ``current_source`` for ``gateway.sim.emitter.run_sim_on_bus``. Before any limit is
known it is 0 A: an inverter without a battery limit leaves the battery alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer

from gateway.cancel import raise_if_cancelling
from gateway.errors import ModbusLinkError
from gateway.sim.follower import LimitFollower, PvLoadProfile
from gateway.sunspec.client import ModbusLink, scan_map
from gateway.sunspec.device import adopt_registers, build_sim_device, register_writes
from gateway.sunspec.layout import (
    BASE_ADDRESSES,
    END_MODEL_ID,
    SUNS_MARKER,
    ModelLayout,
    RawValue,
    from_raw,
    to_raw,
)

__all__ = ["InverterServerSim", "PvLoadProfile", "StorageControllerSim"]

log = logging.getLogger(__name__)


# --- server mode of the gateway: a storage controller polling model 802 ---------------------


class StorageControllerSim(LimitFollower):
    """Polls a SunSpec battery (model 802), writes CtrlHb, follows AChaMax/ADisChaMax.

    Set ``heartbeat = False`` to play a controller whose heartbeat has stopped.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        unit_id: int = 1,
        poll_s: float = 0.2,
        ctrl_hb_period_s: float = 1.0,
        base_addresses: Sequence[int] = BASE_ADDRESSES,
        profile: PvLoadProfile | None = None,
        nominal_voltage_v: float = 51.2,
        demand_a: Callable[[float], float] | None = None,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(profile, nominal_voltage_v, demand_a)
        self.host, self.port, self.unit_id = host, port, unit_id
        self.poll_s = poll_s
        self.ctrl_hb_period_s = ctrl_hb_period_s
        self.base_addresses = tuple(base_addresses)
        self.timeout_s = timeout_s
        self._clock = clock
        self.heartbeat = True
        self.ctrl_hb = 0
        self.polls = 0
        self.errors = 0
        self.soc_pct: float | None = None
        self.evt1 = 0
        self.connected = False
        self._layout = ModelLayout.from_definition(802)

    async def run(self) -> None:
        """Poll until cancelled; on a link error, retry after ``poll_s``."""
        while True:
            link = ModbusLink(self.host, self.port, self.unit_id, self.timeout_s)
            try:
                await link.connect()
                found = await scan_map(link, self.base_addresses)
                hit = found.find(802)
                if hit is None:
                    raise ModbusLinkError(f"no model 802 in {found.models}")
                await self._poll_loop(link, hit[0])
            except ModbusLinkError as e:
                self.errors += 1
                if self.connected:
                    log.warning("inverter sim: battery link down: %s", e)
                self.connected = False
                # Without a battery an inverter stops using it.
                self.charge_limit_a = self.discharge_limit_a = None
            finally:
                link.close()
            raise_if_cancelling()
            await asyncio.sleep(self.poll_s)

    async def _poll_loop(self, link: ModbusLink, address: int) -> None:
        lay = self._layout
        hb_addr = address + lay.point("CtrlHb").offset
        next_hb_s = self._clock()
        while True:
            now_s = self._clock()
            if self.heartbeat and now_s >= next_hb_s:
                self.ctrl_hb = (self.ctrl_hb + 1) & 0xFFFF
                await link.write(hb_addr, [self.ctrl_hb])
                next_hb_s = now_s + self.ctrl_hb_period_s
            self._apply(lay.decode(await link.read(address, lay.size)))
            self.polls += 1
            self.connected = True
            raise_if_cancelling()
            await asyncio.sleep(self.poll_s)

    def _apply(self, v: dict[str, RawValue]) -> None:
        amax_sf = cast(int | None, v.get("AMax_SF"))
        cha = from_raw(v.get("AChaMax"), amax_sf)
        dis = from_raw(v.get("ADisChaMax"), amax_sf)
        # An unimplemented limit in 802 means "no current" to a careful controller.
        self.charge_limit_a = cha if cha is not None else 0.0
        self.discharge_limit_a = dis if dis is not None else 0.0
        volts = from_raw(v.get("V"), cast(int | None, v.get("V_SF")))
        if volts is not None and volts > 0:
            self.voltage_v = volts
        self.soc_pct = from_raw(v.get("SoC"), cast(int | None, v.get("SoC_SF")))
        evt1 = v.get("Evt1")
        self.evt1 = evt1 if isinstance(evt1, int) else 0


# --- client mode of the gateway: an inverter serving models 124 and 702 --------------------


@dataclass(frozen=True, slots=True)
class _Write:
    t_s: float
    point: str
    value: int


def _initial_values(
    lay: ModelLayout, wcha_max_w: float, wdischa_max_w: float, w_sf: int
) -> dict[str, RawValue]:
    """Model 124 or 702 as the inverter starts: its ratings, no storage control, 100 %."""
    if lay.model_id == 124:
        return {
            "WChaMax": to_raw(wcha_max_w, w_sf),
            "WChaMax_SF": w_sf,
            "WChaGra": 100,
            "WDisChaGra": 100,
            "WChaDisChaGra_SF": 0,
            "StorCtl_Mod": 0,
            "OutWRte": 1000,
            "InWRte": 1000,
            "InOutWRte_SF": -1,
            "InOutWRte_WinTms": 0,
            "InOutWRte_RvrtTms": 0,
            "InOutWRte_RmpTms": 0,
            "ChaGriSet": lay.symbol("ChaGriSet", "PV"),
        }
    return {
        "W_SF": w_sf,
        "WMaxRtg": to_raw(max(wcha_max_w, wdischa_max_w), w_sf),
        "WChaRteMaxRtg": to_raw(wcha_max_w, w_sf),
        "WDisChaRteMaxRtg": to_raw(wdischa_max_w, w_sf),
        "WChaRteMax": to_raw(wcha_max_w, w_sf),
        "WDisChaRteMax": to_raw(wdischa_max_w, w_sf),
    }


class InverterServerSim(LimitFollower):
    """A SunSpec inverter (models 1, 124 and/or 702) on loopback that obeys what is written.

    Model 124: the charge (discharge) limit is ``InWRte`` (``OutWRte``) % of ``WChaMax`` while
    the ``StorCtl_Mod`` charge (discharge) bit is set; after ``InOutWRte_RvrtTms`` seconds without
    a rewrite of the rates it reverts (bits cleared, 100 %). It never accepts more than
    ``accept_max_pct``: a larger rate is stored clamped (what a client reads back). Model 702:
    ``WChaRteMax``/``WDisChaRteMax`` in W, never above the ratings.

    Quirks: ``reject_cha_gri_set`` and ``reject_revert_timeout`` answer writes there with
    exception 02, like inverters that do not implement them.

    The inverter turns its W limits into A at the pack voltage: ``set_voltage`` it, or pass
    ``voltage_source`` (e.g. ``pack_sim.pack_voltage_v``), read on every ``current_a`` call.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        unit_id: int = 1,
        base: int = 40000,
        models: Sequence[int] = (124, 702),
        wcha_max_w: float = 5000.0,
        wdischa_max_w: float = 5000.0,
        accept_max_pct: float = 100.0,
        reject_cha_gri_set: bool = False,
        reject_revert_timeout: bool = False,
        profile: PvLoadProfile | None = None,
        nominal_voltage_v: float = 51.2,
        demand_a: Callable[[float], float] | None = None,
        voltage_source: Callable[[], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(profile, nominal_voltage_v, demand_a)
        self._voltage_source = voltage_source
        if not set(models) <= {124, 702} or not models:
            raise ValueError(f"models (={tuple(models)}) must be 124 and/or 702")
        self.host, self.port, self.unit_id, self.base = host, port, unit_id, base
        self.accept_max_pct = accept_max_pct
        self.reject_cha_gri_set = reject_cha_gri_set
        self.reject_revert_timeout = reject_revert_timeout
        self._clock = clock
        self.writes: list[_Write] = []
        self.reverts = 0
        self.bound_port: int | None = None
        self.started = asyncio.Event()
        self._rates_written_s: float | None = None
        self._layouts: dict[int, tuple[ModelLayout, int]] = {}  # id -> (layout, address)
        regs: list[int] = [*SUNS_MARKER]
        common = ModelLayout.from_definition(1)
        regs += common.encode({"Mn": "sim", "Md": "inverter-sim", "SN": "1", "DA": unit_id})
        w_sf = -1 if max(wcha_max_w, wdischa_max_w) < 6553 else 0
        for mid in models:
            lay = ModelLayout.from_definition(mid)
            self._layouts[mid] = (lay, base + len(regs))
            regs += lay.encode(_initial_values(lay, wcha_max_w, wdischa_max_w, w_sf))
        regs += [END_MODEL_ID, 0]
        self._regs = regs
        self._writable: dict[int, tuple[int, str]] = {}
        for mid, (lay, addr) in self._layouts.items():
            for p in lay.points.values():
                if not p.writable or p.size != 1:
                    continue
                if mid == 124 and p.name == "ChaGriSet" and reject_cha_gri_set:
                    continue
                if mid == 124 and p.name == "InOutWRte_RvrtTms" and reject_revert_timeout:
                    continue
                self._writable[addr + p.offset] = (mid, p.name)
        self._follow()

    # --- state -------------------------------------------------------------------------------

    def values(self, model_id: int) -> dict[str, RawValue]:
        """The raw points of ``model_id`` as a client would read them now."""
        lay, addr = self._layouts[model_id]
        off = addr - self.base
        return lay.decode(self._regs[off : off + lay.size])

    def _set(self, model_id: int, point: str, raw: int) -> None:
        lay, addr = self._layouts[model_id]
        p = lay.point(point)
        off = addr - self.base + p.offset
        self._regs[off : off + p.size] = lay.encode({point: raw})[p.offset : p.offset + p.size]

    def limits_w(self) -> tuple[float, float]:
        """Charge and discharge power the inverter allows itself now."""
        cha = dis = math.inf
        if 124 in self._layouts:
            v = self.values(124)
            max_w = from_raw(v.get("WChaMax"), cast(int | None, v.get("WChaMax_SF"))) or 0.0
            sf = cast(int | None, v.get("InOutWRte_SF"))
            mod = v.get("StorCtl_Mod")
            mod = mod if isinstance(mod, int) else 0
            in_pct = from_raw(v.get("InWRte"), sf) if mod & 1 else 100.0
            out_pct = from_raw(v.get("OutWRte"), sf) if mod & 2 else 100.0
            cha = min(cha, max_w * max(0.0, in_pct or 0.0) / 100.0)
            dis = min(dis, max_w * max(0.0, out_pct or 0.0) / 100.0)
        if 702 in self._layouts:
            v = self.values(702)
            sf = cast(int | None, v.get("W_SF"))
            cha = min(cha, from_raw(v.get("WChaRteMax"), sf) or 0.0)
            dis = min(dis, from_raw(v.get("WDisChaRteMax"), sf) or 0.0)
        return cha, dis

    def _follow(self) -> None:
        v = self.voltage_v if self.voltage_v and self.voltage_v > 0 else self.nominal_voltage_v
        cha_w, dis_w = self.limits_w()
        self.charge_limit_a = cha_w / v
        self.discharge_limit_a = dis_w / v

    def set_voltage(self, voltage_v: float) -> None:
        """The pack voltage the inverter measures (turns its W limits into A)."""
        self.voltage_v = voltage_v
        self._follow()

    def current_a(self, t_s: float) -> float:
        """Pack current at ``t_s``; with a ``voltage_source`` its W limits follow the voltage."""
        if self._voltage_source is not None:
            self.set_voltage(self._voltage_source())
        return super().current_a(t_s)

    # --- Modbus ------------------------------------------------------------------------------

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        current_registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        named = register_writes(function_code, address, count, set_values, self._writable)
        if named is None or isinstance(named, ExcCodes):
            return named
        values = cast(list[int], set_values)
        for i, ((mid, name), raw) in enumerate(named):
            if mid == 124 and name in ("InWRte", "OutWRte"):
                pct = raw - 0x10000 if raw & 0x8000 else raw  # int16 on the wire
                sf = cast(int, self.values(124)["InOutWRte_SF"])
                if not 0 <= pct * 10.0**sf <= 100.0:
                    return ExcCodes.ILLEGAL_VALUE
                cap = math.floor(self.accept_max_pct / 10.0**sf + 1e-9)
                values[i] = min(pct, cap)
            if mid == 702 and name in ("WChaRteMax", "WDisChaRteMax"):
                rtg = self.values(702)[name.replace("Max", "MaxRtg")]
                if isinstance(rtg, int) and raw > rtg:
                    values[i] = rtg
        now_s = self._clock()
        for i, ((_mid, name), _raw) in enumerate(named):
            self.writes.append(_Write(now_s, name, int(values[i])))
            if name in ("InWRte", "OutWRte", "WChaRteMax", "WDisChaRteMax"):
                self._rates_written_s = now_s
        del self.writes[:-1000]  # bounded
        # Apply now (pymodbus writes the same values right after) so limits follow at once.
        for i in range(count):
            self._regs[address - self.base + i] = int(values[i])
        self._follow()
        return None

    def _check_revert(self, now_s: float) -> None:
        if 124 not in self._layouts or self._rates_written_s is None:
            return
        v = self.values(124)
        rvrt = v.get("InOutWRte_RvrtTms")
        mod = v.get("StorCtl_Mod")
        if not isinstance(rvrt, int) or rvrt <= 0 or not isinstance(mod, int) or mod == 0:
            return
        if now_s - self._rates_written_s > rvrt:
            self.forget_settings()
            self.reverts += 1
            log.info("inverter sim: no rewrite within %d s; storage control reverted", rvrt)

    def forget_settings(self) -> None:
        """Drop every written limit (what a revert or a reboot does): 100 %, control off."""
        if 124 in self._layouts:
            self._set(124, "StorCtl_Mod", 0)
            self._set(124, "InWRte", 1000)
            self._set(124, "OutWRte", 1000)
        if 702 in self._layouts:
            v = self.values(702)
            for point, rating in (
                ("WChaRteMax", "WChaRteMaxRtg"),
                ("WDisChaRteMax", "WDisChaRteMaxRtg"),
            ):
                raw = v.get(rating)
                if isinstance(raw, int):
                    self._set(702, point, raw)
        self._follow()

    async def run(self) -> None:
        """Serve until cancelled (the register state survives a restart on the same port)."""
        writable = set(self._writable)
        device = build_sim_device(self.unit_id, self.base, self._regs, writable, self._action)
        server = ModbusTcpServer(device, address=(self.host, self.port))
        self._regs = adopt_registers(server, self.unit_id, self.base, self._regs)
        try:
            await server.serve_forever(background=True)
        except RuntimeError as e:
            raise ModbusLinkError(f"inverter sim: cannot listen on {self.port}: {e}") from None
        sockets = getattr(server.transport, "sockets", None) or ()
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        self.port = self.bound_port  # a restart binds the same port again
        self.started.set()
        try:
            while True:
                await asyncio.sleep(0.05)
                self._check_revert(self._clock())
        finally:
            self.started.clear()
            self._regs = list(self._regs)
            with contextlib.suppress(OSError):
                await cast(Any, server).shutdown()
