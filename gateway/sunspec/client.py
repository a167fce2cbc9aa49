"""SunSpec client mode: the inverter is the Modbus server; the gateway writes its limits to it.

The client scans the configured base addresses for ``SunS``, walks the model headers, and drives
storage control through model 124 (``InWRte``/``OutWRte`` as % of ``WChaMax``, a revert timeout,
``StorCtl_Mod``) or, on DER inverters, model 702 (``WChaRteMax``/``WDisChaRteMax`` in W). It
rewrites well within the revert timeout, at once when our limit is cut, and reads back what the
inverter holds, so ``negotiation()`` reports requested, accepted and effective limits. A read-back
that disagrees with what was written (the inverter rebooted or lost its settings) is rewritten at
once, once per disagreement (an inverter that clamps what it stores is not written in a loop). A
lost inverter is probed every 1-2 s (jittered), so a rebooted one that runs unlimited gets its
limits back within seconds.

pymodbus is confined to ``ModbusLink`` (``gateway.sunspec.modbus_link``): every library error and
every exception response becomes ``gateway.errors.ModbusLinkError`` there. The map scan is
``gateway.sunspec.scan``; both are re-exported here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

from gateway.cancel import raise_if_cancelling
from gateway.core.model import ControlOutput, InverterLink, Negotiation
from gateway.errors import ModbusLinkError
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.layout import ModelLayout, RawValue, from_raw
from gateway.sunspec.modbus_link import ModbusExceptionResponse, ModbusLink
from gateway.sunspec.model802 import pack_voltage_v
from gateway.sunspec.scan import InverterModel, SunSpecMap, scan, scan_map
from gateway.sunspec.storage_control import (
    limits_from_124,
    limits_from_702,
    setpoints_124,
    setpoints_702,
)

__all__ = [
    "InverterModel",
    "ModbusExceptionResponse",
    "ModbusLink",
    "SunSpecClient",
    "SunSpecMap",
    "raise_if_cancelling",
    "scan",
    "scan_map",
]

log = logging.getLogger(__name__)

_PROBE_S = (1.0, 2.0)  # a lost inverter is probed this often (uniform, so gateways spread out)
# Points whose read-back must match what was written; the revert timeout and ChaGriSet are left
# out (some inverters count the former down, some map the latter).
_CHECKED = frozenset({"InWRte", "OutWRte", "StorCtl_Mod", "WChaRteMax", "WDisChaRteMax"})


def _sf(values: dict[str, RawValue], name: str) -> int | None:
    v = values.get(name)
    return v if isinstance(v, int) else None


class SunSpecClient:
    """Writes the gateway's limits to an inverter's model 124 or 702 and reads them back.

    Args:
        config: the ``sunspec`` settings section (``mode = "client"``).
        clock: monotonic seconds for the rewrite cadence. The inverter's revert timeout runs in
            real time, so keep the default (an accelerated clock only rewrites more often).
        sleep: waits the given seconds between probes of a lost inverter (tests record the
            waits instead of sleeping them).
    """

    def __init__(
        self,
        config: SunSpecConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.config = config
        self._clock = clock
        self._sleep = sleep
        self._req_c = 0.0
        self._req_d = 0.0
        self._voltage_v: float | None = None
        self._grid_charge = False
        self._written_req: tuple[float, float] | None = None
        self._written_points: dict[str, int] | None = None
        self._written_mod: int | None = None  # model 124 StorCtl_Mod as last written
        self._wake = asyncio.Event()
        self._connected = False
        self._accepted: tuple[float | None, float | None] = (None, None)
        self._max: tuple[float | None, float | None] = (None, None)
        self.model: InverterModel | None = None
        self.polls = 0  # exchanges with the inverter (each reads the model)
        self.writes = 0
        self.write_times_s: list[float] = []  # last few rewrite times (cadence, for tests)
        self.losses = 0
        self.rewrites_on_disagreement = 0
        self._disagreement: dict[str, tuple[RawValue, int]] | None = None
        self.last_error: str | None = None

    # --- the gateway side --------------------------------------------------------------------

    def update(self, out: ControlOutput) -> None:
        """Take one step's limits: a cut is written at once, a rise on the next poll."""
        self._req_c = max(0.0, out.limits.ccl_a.value)
        self._req_d = max(0.0, out.limits.dcl_a.value)
        self._voltage_v = pack_voltage_v(out)
        self._grid_charge = out.charge is not None and out.charge.grid_charge_requested
        last = self._written_req
        if last is not None and (self._req_c < last[0] or self._req_d < last[1]):
            self._wake.set()

    def negotiation(self) -> Negotiation:
        """Requested (ours), accepted (what the inverter holds) and the inverter's maxima."""
        acc_c, acc_d = self._accepted if self._connected else (None, None)
        return Negotiation(
            link=InverterLink.CLIENT,
            connected=self._connected,
            requested_ccl_a=self._req_c,
            requested_dcl_a=self._req_d,
            accepted_ccl_a=acc_c,
            accepted_dcl_a=acc_d,
            inverter_max_charge_a=self._max[0],
            inverter_max_discharge_a=self._max[1],
        )

    @property
    def connected(self) -> bool:
        """Whether the last exchange with the inverter succeeded."""
        return self._connected

    # --- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, scan and negotiate until cancelled; reconnect with capped jittered backoff."""
        cfg = self.config
        attempt = 0
        while True:
            link = ModbusLink(cfg.host, cfg.port, cfg.unit_id, cfg.request_timeout_s)
            try:
                await link.connect()
                self.model = await scan(link, cfg.base_addresses, cfg.prefer_model)
                await self._exchange(link, first=True)
                self._set_connected(True)
                attempt = 0
                while True:
                    raise_if_cancelling()
                    await self._wait()
                    await self._exchange(link, first=False)
            except ModbusLinkError as e:
                self.last_error = str(e)
                self._set_connected(False, str(e), first_failure=attempt == 0)
                attempt += 1
            finally:
                link.close()
            raise_if_cancelling()
            # Probed every 1-2 s, not after a growing backoff: while we are away a rebooted
            # inverter runs without our limits. One TCP connect per probe is cheap.
            lo, hi = _PROBE_S
            await self._sleep(
                random.uniform(min(lo, cfg.backoff_max_s), min(hi, cfg.backoff_max_s))
            )

    def _set_connected(self, ok: bool, why: str = "", first_failure: bool = False) -> None:
        if ok and not self._connected:
            m = self.model
            assert m is not None
            log.info(
                "sunspec client: inverter %s:%s linked (model %d at %d)%s",
                self.config.host,
                self.config.port,
                m.model_id,
                m.address,
                " after a loss" if self.losses else "",
            )
        elif not ok and (self._connected or first_failure):
            if self._connected:
                self.losses += 1
            # Logged once per loss; later attempts fail quietly until the link is back.
            log.warning("sunspec client: inverter link down: %s", why)
        elif not ok:
            log.debug("sunspec client: still down: %s", why)
        self._connected = ok

    async def _wait(self) -> None:
        timeout = self.config.poll_s
        if self.write_times_s:
            due = self.write_times_s[-1] + self.config.rewrite_s - self._clock()
            timeout = max(0.0, min(timeout, due))
        # asyncio.timeout, not wait_for: in 3.11 wait_for can turn a cancellation that meets
        # its own timeout into TimeoutError, which would swallow the supervisor's cancel.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def _exchange(self, link: ModbusLink, *, first: bool) -> None:
        """Read the model; write our limits when due or changed; read back what it holds."""
        m = self.model
        assert m is not None
        # Cleared before reading the request, so a cut during this exchange wakes the next.
        self._wake.clear()
        self.polls += 1
        layout = ModelLayout.from_definition(m.model_id)
        values = layout.decode(await link.read(m.address, layout.size))
        requested = (self._req_c, self._req_d)
        points = self._setpoints(m.model_id, layout, values)
        due = first or not self.write_times_s
        if self.write_times_s:
            due = due or self._clock() - self.write_times_s[-1] >= self.config.rewrite_s
        due = self._disagrees(values) or due
        # Written when due (well within the revert timeout) or when what we would write changed;
        # a change below the register resolution is no reason to write.
        if due or points != self._written_points:
            await self._write_points(link, layout, m.address, points)
            if m.model_id == 124:  # enable last: the inverter never enforces a half-written set
                mod = (1 << layout.symbol("StorCtl_Mod", "CHARGE")) | (
                    1 << layout.symbol("StorCtl_Mod", "DiSCHARGE")
                )
                await self._write_points(link, layout, m.address, {"StorCtl_Mod": mod})
                self._written_mod = mod
            self._written_points = points
            self._written_req = requested
            self.writes += 1
            self.write_times_s = [*self.write_times_s[-31:], self._clock()]
            values = layout.decode(await link.read(m.address, layout.size))
        self._read_back(m.model_id, values)

    def _disagrees(self, values: dict[str, RawValue]) -> bool:
        """Whether the inverter holds other limits than we wrote, seen for the first time.

        Logged once per disagreement with what was written and what is held; a disagreement
        that stays after the rewrite (an inverter that clamps) waits for the normal cadence.
        """
        if self._written_points is None:
            return False
        written = dict(self._written_points)
        if self._written_mod is not None:
            written["StorCtl_Mod"] = self._written_mod
        seen = {
            name: (values.get(name), raw)
            for name, raw in written.items()
            if name in _CHECKED and values.get(name) != raw
        }
        if not seen:
            self._disagreement = None
            return False
        if seen == self._disagreement:
            return False
        self._disagreement = seen
        self.rewrites_on_disagreement += 1
        held = ", ".join(f"{n} {got} (written {want})" for n, (got, want) in seen.items())
        log.warning("sunspec client: the inverter holds %s; rewriting now", held)
        return True

    def _max_w_124(self, values: dict[str, RawValue]) -> float | None:
        return from_raw(values.get("WChaMax"), _sf(values, "WChaMax_SF"))

    def _setpoints(
        self, model_id: int, layout: ModelLayout, values: dict[str, RawValue]
    ) -> dict[str, int]:
        """The raw points to write for the current request, in writing order."""
        cfg = self.config
        if model_id == 124:
            inout_sf = _sf(values, "InOutWRte_SF")
            if inout_sf is None:
                raise ModbusLinkError("model 124: InOutWRte_SF not implemented")
            max_w = self._max_w_124(values) or 0.0
            in_raw, out_raw = setpoints_124(
                self._req_c, self._req_d, self._voltage_v, max_w, inout_sf
            )
            # Rates first, then the revert timeout (StorCtl_Mod follows in its own write).
            pts: dict[str, int] = {"OutWRte": out_raw, "InWRte": in_raw}
            if cfg.send_revert_timeout:
                pts["InOutWRte_RvrtTms"] = cfg.revert_timeout_s
            if cfg.send_cha_gri_set:
                # A requested full charge that may draw from the grid ([charge]
                # full_charge_from_grid) overrides a "pv" setting while it is below re-bulk.
                source = "GRID" if self._grid_charge else cfg.cha_gri_set.upper()
                pts["ChaGriSet"] = layout.symbol("ChaGriSet", source)
            return pts
        w_sf = _sf(values, "W_SF")
        if w_sf is None:
            raise ModbusLinkError("model 702: W_SF not implemented")
        cha, dis = setpoints_702(self._req_c, self._req_d, self._voltage_v, w_sf)
        return {"WChaRteMax": cha, "WDisChaRteMax": dis}

    async def _write_points(
        self, link: ModbusLink, layout: ModelLayout, base: int, points: dict[str, int]
    ) -> None:
        """Write ``points`` (raw) in as few requests as their addresses allow, in order."""
        runs: list[tuple[int, list[int]]] = []
        for name, raw in points.items():
            p = layout.point(name)
            regs = layout.encode({name: raw})[p.offset : p.offset + p.size]
            addr = base + p.offset
            if runs and runs[-1][0] + len(runs[-1][1]) == addr:
                runs[-1][1].extend(regs)
            else:
                runs.append((addr, regs))
        for addr, regs in runs:
            await link.write(addr, regs)

    def _read_back(self, model_id: int, values: dict[str, RawValue]) -> None:
        v = self._voltage_v
        if v is None or not v > 0:
            self._accepted, self._max = (None, None), (None, None)
            return
        if model_id == 124:
            max_w = self._max_w_124(values)
            if max_w is None:
                self._accepted, self._max = (None, None), (None, None)
                return
            self._max = (max_w / v, max_w / v)
            mod = values.get("StorCtl_Mod")
            mod = mod if isinstance(mod, int) else 0
            acc_c, acc_d = limits_from_124(
                values.get("InWRte"), values.get("OutWRte"), _sf(values, "InOutWRte_SF"), max_w, v
            )
            # A rate the inverter does not enforce (its StorCtl_Mod bit clear) limits nothing.
            self._accepted = (
                acc_c if mod & 1 else self._max[0],
                acc_d if mod & 2 else self._max[1],
            )
        else:
            w_sf = _sf(values, "W_SF")
            rtg = limits_from_702(
                values.get("WChaRteMaxRtg"), values.get("WDisChaRteMaxRtg"), w_sf, v
            )
            self._max = rtg
            self._accepted = limits_from_702(
                values.get("WChaRteMax"), values.get("WDisChaRteMax"), w_sf, v
            )
