"""SunSpec register maps built from pysunspec2's model definitions. Pure: no I/O, no clock.

The register tables (point order, sizes, types, scale-factor names, access) come from
``sunspec2``'s JSON model definitions; the encoding of each type (and its "not implemented"
value) from ``sunspec2.mb``. Nothing here retypes a register table.

Three parts:

* ``ModelLayout``: one model's points with their offsets, and raw encode/decode.
* ``BatteryMap``: the gateway's own device in server mode, ``SunS`` + model 1 + model 802 + end
  model, and ``battery_points`` turning a ``ControlOutput`` into model 802 raw values.
* Storage-control helpers for client mode: the inverter's model 124 (``InWRte``/``OutWRte`` as %
  of ``WChaMax``) and model 702 (``WChaRteMax``/``WDisChaRteMax`` in W), both ways.

Sign convention of ``A`` and ``W`` in model 802: the SunSpec definition does not fix one. We
publish the gateway's own (positive = charging) unless ``charge_positive`` is False.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import sunspec2.device as ss_device
import sunspec2.mb as ss_mb
import sunspec2.mdef as ss_mdef

from gateway.core.model import ControlOutput
from gateway.sunspec.config import SunSpecConfig

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "ENVELOPE_A",
    "ENVELOPE_V",
    "SUNS_MARKER",
    "WRITABLE_802",
    "BatteryInfo",
    "BatteryMap",
    "LinkState",
    "ModelLayout",
    "PointDef",
    "RawValue",
    "ScaleFactors",
    "battery_points",
    "encode_point",
    "fit_sf",
    "from_raw",
    "limits_from_124",
    "limits_from_702",
    "pack_voltage_v",
    "setpoints_124",
    "setpoints_702",
    "to_raw",
]

RawValue = int | str | None
"""A point's value as stored on the wire (before scaling); ``None`` = not implemented."""

SUNS_MARKER: tuple[int, int] = struct.unpack(">2H", b"SunS")
"""The two registers ``SunS`` that open a SunSpec map."""
END_MODEL_ID: int = ss_mb.SUNS_END_MODEL_ID
BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)
"""Where SunSpec maps start (0-based PDU addresses), in the order clients try them."""

# Largest raw value each numeric type can carry without hitting its "not implemented" sentinel.
_RAW_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-32767, 32767),
    "uint16": (0, 65534),
    "count": (0, 65534),
    "acc16": (0, 65535),
    "enum16": (0, 65534),
    "bitfield16": (0, 0xFFFE),
    "sunssf": (-10, 10),
    "int32": (-(2**31) + 1, 2**31 - 1),
    "uint32": (0, 2**32 - 2),
    "acc32": (0, 2**32 - 1),
    "enum32": (0, 2**32 - 2),
    "bitfield32": (0, 2**32 - 2),
}


@dataclass(frozen=True, slots=True)
class PointDef:
    """One point of a model, as pysunspec2 defines it."""

    name: str
    offset: int  # registers from the model's ID register
    size: int  # registers
    type: str  # SunSpec type name ("uint16", "sunssf", "string", ...)
    sf: str | int | None  # scale factor point name, a fixed exponent, or None
    writable: bool
    mandatory: bool
    symbols: Mapping[str, int] = field(default_factory=dict)


def _regs(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data))


def _bytes(regs: Sequence[int]) -> bytes:
    return struct.pack(f">{len(regs)}H", *regs)


class ModelLayout:
    """The points of one SunSpec model (fixed block only) and their raw encoding."""

    def __init__(self, model_id: int, points: Sequence[PointDef]) -> None:
        self.model_id = model_id
        self.points: dict[str, PointDef] = {p.name: p for p in points}
        last = points[-1]
        self.size = last.offset + last.size  # registers including ID and L
        self.length = self.size - 2  # the model's L
        self._by_offset = {p.offset: p for p in points}
        # Encoding plan for the hot path (one call per control step): integer points of one or
        # two registers are split by shifts; the "not implemented" registers are precomputed
        # from pysunspec2. Other types (strings, floats...) go through pysunspec2's encoder.
        self._plan: list[tuple[str, int, list[int]]] = []
        for p in points:
            kind = p.size if p.type in _RAW_RANGE and p.size in (1, 2) else 0
            self._plan.append(
                (p.name, kind, _regs(ss_mb.create_unimpl_value(p.type, len=p.size * 2)))
            )

    @classmethod
    def from_definition(cls, model_id: int) -> ModelLayout:
        """Build the layout of ``model_id`` from pysunspec2's model definition.

        Raises:
            ValueError: the model is unknown or has repeating groups (not supported here).
        """
        return _layout(model_id)

    def point(self, name: str) -> PointDef:
        """The point called ``name``."""
        return self.points[name]

    def at(self, offset: int) -> PointDef | None:
        """The point that starts at register ``offset`` from the model's ID, if any."""
        return self._by_offset.get(offset)

    def containing(self, offset: int) -> PointDef | None:
        """The point that covers register ``offset``, if any."""
        for p in self.points.values():
            if p.offset <= offset < p.offset + p.size:
                return p
        return None

    def symbol(self, point: str, name: str) -> int:
        """The value of the enumeration or bit symbol ``name`` of ``point``."""
        return self.points[point].symbols[name]

    def encode(self, values: Mapping[str, RawValue]) -> list[int]:
        """Registers of the whole model (ID and L included) from raw point values.

        Points absent from ``values`` (or ``None``) get their "not implemented" value.
        """
        out: list[int] = [self.model_id, self.length]
        get = values.get
        for name, kind, unimpl in self._plan[2:]:
            v = get(name)
            if v is None:
                out.extend(unimpl)
            elif kind == 1 and isinstance(v, int):
                out.append(v & 0xFFFF)
            elif kind == 2 and isinstance(v, int):
                out.append((v >> 16) & 0xFFFF)
                out.append(v & 0xFFFF)
            else:
                out.extend(encode_point(self.points[name], v))
        return out

    def decode(self, regs: Sequence[int]) -> dict[str, RawValue]:
        """Raw point values from the model's registers (ID first); ``None`` = not implemented."""
        if len(regs) < self.size:
            raise ValueError(f"model {self.model_id}: {len(regs)} registers, {self.size} needed")
        data = _bytes(regs[: self.size])
        values: dict[str, RawValue] = {}
        for p in self.points.values():
            info = ss_mb.point_type_info[p.type]
            raw = info.data_to(data[p.offset * 2 : (p.offset + p.size) * 2])
            values[p.name] = raw if info.is_impl(raw) else None
        return values


def encode_point(p: PointDef, value: RawValue) -> list[int]:
    """Registers of one point; ``None`` gives its "not implemented" value."""
    nbytes = p.size * 2
    if value is None:
        return _regs(ss_mb.create_unimpl_value(p.type, len=nbytes))
    info = ss_mb.point_type_info[p.type]
    if p.type == "string":
        data = info.to_data(str(value), nbytes)[:nbytes]
    else:
        data = info.to_data(int(value), nbytes)
    return _regs(data)


@cache
def _layout(model_id: int) -> ModelLayout:
    try:
        mdef: dict[str, Any] = ss_device.get_model_def(model_id)
    except Exception as e:  # pysunspec2 raises bare Exception subclasses for unknown models
        raise ValueError(f"SunSpec model {model_id}: no definition ({e})") from None
    group = mdef[ss_mdef.GROUP]
    if group.get(ss_mdef.GROUPS):
        raise ValueError(f"SunSpec model {model_id}: repeating groups are not supported")
    points: list[PointDef] = []
    offset = 0
    for pd in group[ss_mdef.POINTS]:
        ptype = pd[ss_mdef.TYPE]
        size = int(pd.get(ss_mdef.SIZE) or ss_mb.point_type_info[ptype].len)
        sf = pd.get(ss_mdef.SF)
        symbols = {s[ss_mdef.NAME]: int(s[ss_mdef.VALUE]) for s in pd.get(ss_mdef.SYMBOLS, [])}
        points.append(
            PointDef(
                name=pd[ss_mdef.NAME],
                offset=offset,
                size=size,
                type=ptype,
                sf=sf,
                writable=pd.get(ss_mdef.ACCESS, "R") == "RW",
                mandatory=pd.get(ss_mdef.MANDATORY) == "M",
                symbols=symbols,
            )
        )
        offset += size
    return ModelLayout(model_id, points)


# --- scaling --------------------------------------------------------------------------------


def to_raw(
    value: float | None,
    sf: int,
    ptype: str = "uint16",
    *,
    clamp: bool = False,
    rounding: Literal["nearest", "down", "up"] = "nearest",
) -> int | None:
    """``value`` in SI units as a raw integer with scale factor ``sf``.

    Returns ``None`` ("not implemented") when the value is unknown, not finite or does not fit
    the type; with ``clamp`` an out-of-range value is clamped instead (used for limits, where the
    smaller representable value is the safe one). Limits round toward safety: an upper limit
    ``down``, a lower bound ``up`` (a 0.475 A limit is published as 0.4 A, never 0.5 A).
    """
    if value is None or not math.isfinite(value):
        return None
    scaled = value / 10.0**sf
    # The small epsilon keeps an exact step (0.3 A / 0.1) from falling to the step below.
    if rounding == "down":
        raw = math.floor(scaled + 1e-9)
    elif rounding == "up":
        raw = math.ceil(scaled - 1e-9)
    else:
        raw = round(scaled)
    lo, hi = _RAW_RANGE[ptype]
    if lo <= raw <= hi:
        return raw
    return (lo if raw < lo else hi) if clamp else None


def from_raw(raw: RawValue, sf: int | None) -> float | None:
    """A raw integer and its scale factor back in SI units; ``None`` when either is unknown."""
    if raw is None or sf is None or isinstance(raw, str):
        return None
    return raw * 10.0**sf


def fit_sf(max_value: float, ptype: str = "uint16", finest: int = -3) -> int:
    """The finest scale factor (>= ``finest``) at which ``max_value`` fits ``ptype``."""
    hi = _RAW_RANGE[ptype][1]
    sf = finest
    while abs(max_value) / 10.0**sf > hi and sf < 10:
        sf += 1
    return sf


# --- server mode: the gateway as a battery (model 1 + model 802) ----------------------------

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
    if out is None or out.mode == "starting":
        return sym["INITIALIZING"]
    if out.mode in ("fault", "stale"):
        return sym["FAULT"]
    return sym["CONNECTED"]


def pack_voltage_v(out: ControlOutput) -> float | None:
    """The measured pack voltage, else the sum of the cells when every cell is known."""
    if out.pack.pack_voltage_v is not None:
        return out.pack.pack_voltage_v
    cells = out.pack.cell_voltage_v
    if cells and all(v is not None for v in cells):
        return sum(v for v in cells if v is not None)
    return None


def _cell_extremes(
    cells: tuple[float | None, ...],
) -> tuple[int | None, int | None, float | None]:
    best_hi = best_lo = None
    total, n = 0.0, 0
    for i, v in enumerate(cells):
        if v is None:
            continue
        total += v
        n += 1
        if best_hi is None or v > cells[best_hi]:  # type: ignore[operator]
            best_hi = i
        if best_lo is None or v < cells[best_lo]:  # type: ignore[operator]
            best_lo = i
    return best_hi, best_lo, (total / n if n else None)


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
    p: dict[str, RawValue] = {
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
    evt1 = 1 << lay.symbol("Evt1", "COMMUNICATION_ERROR") if link.ctrl_hb_lost else 0
    if out is None:
        p["Evt1"] = evt1
        return p
    p["Evt1"] = (out.alarms.evt1 & 0x7FFFFFFF) | evt1
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


# --- client mode: the inverter's storage control (model 124 / model 702) --------------------


def _pct(watts: float, max_w: float) -> float:
    return max(0.0, min(100.0, 100.0 * watts / max_w)) if max_w > 0 else 0.0


def setpoints_124(
    ccl_a: float, dcl_a: float, voltage_v: float | None, wcha_max_w: float, inout_sf: int
) -> tuple[int, int]:
    """Raw ``InWRte`` and ``OutWRte`` (% of ``WChaMax``) for our limits at ``voltage_v``.

    An unknown voltage or an inverter without a maximum gives 0 % both ways (fail safe).
    Rounded down, so the inverter never gets more than we asked for.
    """
    if voltage_v is None or not voltage_v > 0 or not wcha_max_w > 0:
        return 0, 0
    step = 10.0**inout_sf
    in_pct = _pct(max(0.0, ccl_a) * voltage_v, wcha_max_w)
    out_pct = _pct(max(0.0, dcl_a) * voltage_v, wcha_max_w)
    return math.floor(in_pct / step + 1e-9), math.floor(out_pct / step + 1e-9)


def limits_from_124(
    in_raw: RawValue, out_raw: RawValue, inout_sf: int | None, wcha_max_w: float, voltage_v: float
) -> tuple[float | None, float | None]:
    """What the inverter holds in ``InWRte``/``OutWRte``, as charge/discharge amperes."""
    res: list[float | None] = []
    for raw in (in_raw, out_raw):
        pct = from_raw(raw, inout_sf)
        res.append(None if pct is None else max(0.0, pct) / 100.0 * wcha_max_w / voltage_v)
    return res[0], res[1]


def setpoints_702(
    ccl_a: float, dcl_a: float, voltage_v: float | None, w_sf: int
) -> tuple[int, int]:
    """Raw ``WChaRteMax``/``WDisChaRteMax`` (W) for our limits; 0 when the voltage is unknown."""
    if voltage_v is None or not voltage_v > 0:
        return 0, 0
    step = 10.0**w_sf
    hi = _RAW_RANGE["uint16"][1]
    cha = min(hi, math.floor(max(0.0, ccl_a) * voltage_v / step + 1e-9))
    dis = min(hi, math.floor(max(0.0, dcl_a) * voltage_v / step + 1e-9))
    return cha, dis


def limits_from_702(
    cha_raw: RawValue, dis_raw: RawValue, w_sf: int | None, voltage_v: float
) -> tuple[float | None, float | None]:
    """What the inverter holds in ``WChaRteMax``/``WDisChaRteMax``, as amperes."""
    cha, dis = from_raw(cha_raw, w_sf), from_raw(dis_raw, w_sf)
    return (
        None if cha is None else cha / voltage_v,
        None if dis is None else dis / voltage_v,
    )
