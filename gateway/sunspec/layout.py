"""SunSpec register layout from pysunspec2's model definitions: points, encoding, scaling.

The register tables (point order, sizes, types, scale-factor names, access) come from
``sunspec2``'s JSON model definitions; the encoding of each type (and its "not implemented"
value) from ``sunspec2.mb``. Nothing here retypes a register table. Pure: no I/O, no clock.

``ModelLayout`` is one model's points with their offsets and raw encode/decode; ``to_raw``,
``from_raw`` and ``fit_sf`` convert between SI values and raw integers with a scale factor.
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

__all__ = [
    "BASE_ADDRESSES",
    "END_MODEL_ID",
    "RAW_RANGE",
    "SUNS_MARKER",
    "ModelLayout",
    "PointDef",
    "RawValue",
    "encode_point",
    "fit_sf",
    "from_raw",
    "to_raw",
]

RawValue = int | str | None
"""A point's value as stored on the wire (before scaling); ``None`` = not implemented."""

SUNS_MARKER: tuple[int, int] = struct.unpack(">2H", b"SunS")
"""The two registers ``SunS`` that open a SunSpec map."""
END_MODEL_ID: int = ss_mb.SUNS_END_MODEL_ID
BASE_ADDRESSES: tuple[int, ...] = (40000, 0, 50000)
"""Where SunSpec maps start (0-based PDU addresses), in the order clients try them."""

RAW_RANGE: Mapping[str, tuple[int, int]] = {
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
"""Largest raw value each numeric type can carry without hitting its "not implemented" value."""


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
            kind = p.size if p.type in RAW_RANGE and p.size in (1, 2) else 0
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
    lo, hi = RAW_RANGE[ptype]
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
    hi = RAW_RANGE[ptype][1]
    sf = finest
    while abs(max_value) / 10.0**sf > hi and sf < 10:
        sf += 1
    return sf
