"""SunSpec server mode: the gateway as a battery, ``SunS`` + model 1 + model 802 + end model.

``battery_points`` turns one ``ControlOutput`` into model 802 raw values; ``BatteryMap`` lays
out the whole device from a base address. Pure: no I/O, no clock.

Sign convention of ``A`` and ``W`` in model 802: the SunSpec definition does not fix one. We
publish the gateway's own (positive = charging) unless ``charge_positive`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.cells import cell_sum_v, extremes
from gateway.core.model import ControlOutput, GatewayMode
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.evt1 import evt1_of
from gateway.sunspec.layout import END_MODEL_ID, SUNS_MARKER, ModelLayout, RawValue, fit_sf, to_raw

__all__ = [
    "ENVELOPE_A",
    "ENVELOPE_V",
    "WRITABLE_802",
    "BatteryInfo",
    "BatteryMap",
    "LinkState",
    "ScaleFactors",
    "battery_points",
    "pack_voltage_v",
]

ENVELOPE_V = 1000.0
"""Largest pack voltage the map must carry without overflow."""
ENVELOPE_A = 2000.0
"""Largest pack current (either direction) the map must carry without overflow."""


@dataclass(frozen=True, slots=True)
class ScaleFactors:
    """Scale factors of model 802 (powers of ten).

    The defaults cover the design envelope (1,000 V, 2,000 A, so 2 MW): V 0.1 V, A 0.1 A, W
    100 W, cells 1 mV. ``for_rating`` fits every factor to the configured pack instead: the finest
    step at which the pack's range fits the point's type, so a 5 kW pack reads its power to 1 W
    (int16: packs rated under 32.7 kW), not in 100 W steps.
    """

    v: int = -1
    a: int = -1
    amax: int = -1
    w: int = 2
    cell_v: int = -3
    soc: int = -1
    soh: int = -1
    ah_rtg: int = 0
    wh_rtg: int = 0
    w_rtg: int = 0

    @classmethod
    def for_rating(
        cls,
        capacity_ah: float,
        energy_wh: float,
        max_power_w: float,
        *,
        max_current_a: float | None = None,
        nominal_voltage_v: float | None = None,
    ) -> ScaleFactors:
        """Every factor fitted to the pack's ratings.

        Ranges: V and VMax/VMin to 1.5 x the nominal voltage (a full NMC cell is 1.18 x its
        nominal); A to 2 x the largest configured current (over-current must still read); AMax
        to that current (limits never exceed it); W to ``max_power_w`` (nominal voltage x the
        largest configured current); a value beyond its range reads "not implemented", never a
        wrapped number. Without ``max_current_a``/``nominal_voltage_v`` the envelope defaults
        stay for V, A, AMax and W.
        """
        base = cls()
        v, a, amax, w = base.v, base.a, base.amax, base.w
        if nominal_voltage_v is not None and nominal_voltage_v > 0:
            v = fit_sf(1.5 * nominal_voltage_v, "uint16", finest=-1)
        if max_current_a is not None and max_current_a > 0:
            a = fit_sf(2.0 * max_current_a, "int16", finest=-1)
            amax = fit_sf(max_current_a, "uint16", finest=-1)
            w = fit_sf(max_power_w, "int16", finest=0)
        return cls(
            v=v,
            a=a,
            amax=amax,
            w=w,
            ah_rtg=fit_sf(capacity_ah, finest=-1),
            wh_rtg=fit_sf(energy_wh, finest=0),
            w_rtg=fit_sf(max_power_w, finest=0),
        )


@dataclass(frozen=True, slots=True)
class BatteryInfo:
    """Static description of the battery published in models 1 and 802."""

    manufacturer: str = "bms-gateway"
    model: str = "bms-gateway"
    version: str = "0.1.0"
    serial: str = "0"
    unit_id: int = 1
    capacity_ah: float = 100.0
    nominal_voltage_v: float = 51.2
    max_charge_a: float = 100.0
    max_discharge_a: float = 100.0
    cells_per_module: int = 16
    charge_positive: bool = True

    @classmethod
    def from_config(
        cls,
        config: SunSpecConfig,
        *,
        cells: int = 16,
        capacity_ah: float = 100.0,
        nominal_cell_v: float = 3.2,
        max_charge_a: float = 100.0,
        max_discharge_a: float = 100.0,
        version: str = "0.1.0",
    ) -> BatteryInfo:
        """The battery description from the ``sunspec`` section and the pack's ratings."""
        return cls(
            manufacturer=config.manufacturer,
            model=config.model_name,
            version=version,
            serial=config.serial,
            unit_id=config.unit_id,
            capacity_ah=capacity_ah,
            nominal_voltage_v=cells * nominal_cell_v,
            max_charge_a=max_charge_a,
            max_discharge_a=max_discharge_a,
            cells_per_module=config.cells_per_module,
            charge_positive=config.charge_positive,
        )

    @property
    def energy_wh(self) -> float:
        """Nominal energy."""
        return self.capacity_ah * self.nominal_voltage_v


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the Modbus side adds to the control step: heartbeats and the controller's orders."""

    hb: int = 0
    ctrl_hb: int | None = None
    ctrl_hb_lost: bool = False
    remote: bool = True
    disconnect: bool = False  # SetOp = DISCONNECT received in remote mode
    set_op: int | None = None
    set_inv_state: int | None = None


# Points the gateway implements as writable; every other point is read-only (exception 02).
WRITABLE_802: frozenset[str] = frozenset({"CtrlHb", "AlmRst", "SetOp", "SetInvState"})
_IDLE_A = 0.5  # below this the pack counts as neither charging nor discharging


def _cha_st(out: ControlOutput, lay: ModelLayout) -> int:
    sym = lay.points["ChaSt"].symbols
    current = out.pack.current_a
    if current is not None and current > _IDLE_A:
        return sym["CHARGING"]
    if current is not None and current < -_IDLE_A:
        return sym["DISCHARGING"]
    ccl, dcl = out.limits.ccl_a.value, out.limits.dcl_a.value
    if ccl <= 0 and dcl <= 0:
        return sym["OFF"]
    soc = out.soc.soc_pct if out.soc is not None else None
    if soc is not None and soc >= 99.5:
        return sym["FULL"]
    if soc is not None and soc <= 0.5:
        return sym["EMPTY"]
    return sym["HOLDING"]


def _state(out: ControlOutput | None, link: LinkState, lay: ModelLayout) -> int:
    sym = lay.points["State"].symbols
    if link.disconnect:
        return sym["DISCONNECTED"]
    if out is None or out.mode is GatewayMode.STARTING:
        return sym["INITIALIZING"]
    if out.mode in (GatewayMode.FAULT, GatewayMode.STALE):
        return sym["FAULT"]
    return sym["CONNECTED"]


def pack_voltage_v(out: ControlOutput) -> float | None:
    """The measured pack voltage, else the sum of the cells when every cell is known."""
    if out.pack.pack_voltage_v is not None:
        return out.pack.pack_voltage_v
    return cell_sum_v(out.pack.cell_voltage_v)


def _cell_extremes(
    cells: tuple[float | None, ...],
) -> tuple[int | None, int | None, float | None]:
    """Index of the highest and of the lowest known cell, and the mean of the known cells."""
    ext = extremes(cells)
    if ext is None:
        return None, None, None
    known = [v for v in cells if v is not None]
    return ext[3], ext[1], sum(known) / len(known)


def _base_points(
    out: ControlOutput | None,
    info: BatteryInfo,
    sf: ScaleFactors,
    link: LinkState,
    lay: ModelLayout,
) -> dict[str, RawValue]:
    """The points known without a step: ratings, scale factors, the link, no events, 0 A."""
    return {
        "AHRtg": to_raw(info.capacity_ah, sf.ah_rtg, clamp=True),
        "WHRtg": to_raw(info.energy_wh, sf.wh_rtg, clamp=True),
        "WChaRteMax": to_raw(info.max_charge_a * info.nominal_voltage_v, sf.w_rtg, clamp=True),
        "WDisChaRteMax": to_raw(
            info.max_discharge_a * info.nominal_voltage_v, sf.w_rtg, clamp=True
        ),
        "LocRemCtl": lay.symbol("LocRemCtl", "REMOTE" if link.remote else "LOCAL"),
        "Hb": link.hb & 0xFFFF,
        "CtrlHb": link.ctrl_hb,
        "AlmRst": 0,
        "Typ": lay.symbol("Typ", "LITHIUM_ION"),
        "State": _state(out, link, lay),
        "Evt1": 0,
        "Evt2": 0,
        "EvtVnd1": 0,
        "EvtVnd2": 0,
        "AChaMax": 0,
        "ADisChaMax": 0,
        "SetOp": link.set_op,
        "SetInvState": link.set_inv_state,
        "AHRtg_SF": sf.ah_rtg,
        "WHRtg_SF": sf.wh_rtg,
        "WChaDisChaMax_SF": sf.w_rtg,
        "SoC_SF": sf.soc,
        "SoH_SF": sf.soh,
        "V_SF": sf.v,
        "CellV_SF": sf.cell_v,
        "A_SF": sf.a,
        "AMax_SF": sf.amax,
        "W_SF": sf.w,
    }


def battery_points(
    out: ControlOutput | None,
    info: BatteryInfo,
    sf: ScaleFactors,
    link: LinkState,
    lay: ModelLayout,
) -> dict[str, RawValue]:
    """Model 802 raw point values for one control step (``None`` before the first step).

    Safe by construction: no step yet, a lost controller heartbeat or a remote DISCONNECT all
    publish AChaMax = ADisChaMax = 0.
    """
    p = _base_points(out, info, sf, link, lay)
    evt1 = 1 << lay.symbol("Evt1", "COMMUNICATION_ERROR") if link.ctrl_hb_lost else 0
    if out is None:
        p["Evt1"] = evt1
        return p
    p["Evt1"] = (evt1_of(out.alarms) & 0x7FFFFFFF) | evt1
    if not (link.ctrl_hb_lost or link.disconnect):
        ccl, dcl = max(0.0, out.limits.ccl_a.value), max(0.0, out.limits.dcl_a.value)
        p["AChaMax"] = to_raw(ccl, sf.amax, clamp=True, rounding="down")
        p["ADisChaMax"] = to_raw(dcl, sf.amax, clamp=True, rounding="down")
    # A zero voltage window means "not known yet" (no step with a complete data set).
    cvl, dvl = out.limits.cvl_v.value, out.limits.dvl_v.value
    p["VMax"] = to_raw(cvl, sf.v, rounding="down") if cvl > 0 else None
    p["VMin"] = to_raw(dvl, sf.v, rounding="up") if dvl > 0 else None
    if out.soc is not None:
        p["SoC"] = to_raw(out.soc.soc_pct, sf.soc)
        p["SoH"] = to_raw(out.soc.soh_pct, sf.soh)
    sign = 1.0 if info.charge_positive else -1.0
    volts = pack_voltage_v(out)
    amps = out.pack.current_a
    p["V"] = to_raw(volts, sf.v)
    p["A"] = to_raw(None if amps is None else sign * amps, sf.a, "int16")
    p["W"] = to_raw(None if amps is None or volts is None else sign * amps * volts, sf.w, "int16")
    hi, lo, avg = _cell_extremes(out.pack.cell_voltage_v)
    per_module = max(1, info.cells_per_module)
    # Extremes of a partly unknown (stale, implausible) string would be false: not implemented.
    if hi is not None and lo is not None and None not in out.pack.cell_voltage_v:
        p["CellVMax"] = to_raw(out.pack.cell_voltage_v[hi], sf.cell_v)
        p["CellVMaxStr"] = 1
        p["CellVMaxMod"] = hi // per_module + 1
        p["CellVMin"] = to_raw(out.pack.cell_voltage_v[lo], sf.cell_v)
        p["CellVMinStr"] = 1
        p["CellVMinMod"] = lo // per_module + 1
        p["CellVAvg"] = to_raw(avg, sf.cell_v)
    p["ChaSt"] = _cha_st(out, lay)
    return p


class BatteryMap:
    """The gateway's SunSpec device: ``SunS`` + model 1 + model 802 + end model at ``base``."""

    def __init__(self, info: BatteryInfo, base: int = 40000) -> None:
        self.info = info
        self.base = base
        self.common = ModelLayout.from_definition(1)
        self.battery = ModelLayout.from_definition(802)
        max_a = max(info.max_charge_a, info.max_discharge_a)
        self.sf = ScaleFactors.for_rating(
            info.capacity_ah,
            info.energy_wh,
            max_a * info.nominal_voltage_v,
            max_current_a=max_a,
            nominal_voltage_v=info.nominal_voltage_v,
        )
        self.common_address = base + 2
        self.battery_address = self.common_address + self.common.size
        self.end_address = self.battery_address + self.battery.size
        self.size = self.end_address + 2 - base
        if base + self.size > 0x10000:
            raise ValueError(f"base (={base}) leaves no room for the map ({self.size} registers)")
        self._head = [*SUNS_MARKER, *self.common.encode(self._common_values())]
        self._tail = [END_MODEL_ID, 0]

    def _common_values(self) -> dict[str, RawValue]:
        i = self.info
        return {
            "Mn": i.manufacturer,
            "Md": i.model,
            "Vr": i.version,
            "SN": i.serial,
            "DA": i.unit_id,
            "Pad": 0,
        }

    def address(self, point: str) -> int:
        """Absolute (0-based PDU) address of a model 802 point."""
        return self.battery_address + self.battery.points[point].offset

    def writable(self) -> list[tuple[int, int]]:
        """(address, count) of every register a client may write; all others are read-only."""
        return [
            (self.address(name), self.battery.points[name].size) for name in sorted(WRITABLE_802)
        ]

    def point_at(self, address: int) -> str | None:
        """Name of the model 802 point starting at ``address``."""
        p = self.battery.at(address - self.battery_address)
        return p.name if p is not None else None

    def image(self, out: ControlOutput | None, link: LinkState) -> list[int]:
        """Every register of the map, from ``base``, for one control step."""
        body = self.battery.encode(battery_points(out, self.info, self.sf, link, self.battery))
        return [*self._head, *body, *self._tail]
