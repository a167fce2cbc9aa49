"""A profile compiled against a DBC set into per-frame, per-mux lookup tables (start-up only).

Each profile binding is resolved to cantools signals once; every mismatch (a message or signal the
DBC lacks, a unit the profile does not scale to the role's, nested multiplexers) is a
``ConfigError`` naming the profile, the DBC and the key. Each (frame id, mux value) gets a
precompiled cantools bit-unpacking format holding only the signals the profile needs, and the
bytes those signals occupy, for ``gateway.canbus.decode.Decoder``'s hot path.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from cantools.database.can import Message, Signal
from cantools.database.utils import (
    create_encode_decode_formats,
    sort_signals_by_start_bit,
    start_bit,
)

from gateway.canbus.dbc import DbcSet
from gateway.canbus.profile import NamePattern, Profile, SignalMap
from gateway.core.model import Role
from gateway.errors import ConfigError

__all__ = [
    "EXTENDED_FLAG",
    "Binding",
    "CompiledFrame",
    "Compiler",
    "Group",
    "bytes_needed",
    "frame_key",
]

#: Added to a 29-bit id in table keys so an extended id never collides with an 11-bit one.
EXTENDED_FLAG: Final = 0x8000_0000

#: Roles whose values can carry a sentinel (a balancing flag of all ones is just "on").
_MEASURED: Final = frozenset(
    (Role.CELL_VOLTAGE, Role.CELL_TEMPERATURE, Role.PACK_CURRENT, Role.PACK_VOLTAGE)
)

# The role's SI unit and what a DBC unit needs from the profile to reach it: (scale, offset).
_V = {"v": (1.0, 0.0), "mv": (0.001, 0.0), "kv": (1000.0, 0.0)}
_UNITS: Final[dict[Role, tuple[str, dict[str, tuple[float, float]]]]] = {
    Role.CELL_VOLTAGE: ("V", _V),
    Role.PACK_VOLTAGE: ("V", _V),
    Role.PACK_CURRENT: ("A", {"a": (1.0, 0.0), "ma": (0.001, 0.0), "ka": (1000.0, 0.0)}),
    Role.CELL_TEMPERATURE: (
        "degC",
        {
            "degc": (1.0, 0.0),
            "°c": (1.0, 0.0),
            "c": (1.0, 0.0),
            "deg c": (1.0, 0.0),
            "celsius": (1.0, 0.0),
            "k": (1.0, -273.15),
        },
    ),
}


def frame_key(frame_id: int, extended: bool) -> int:
    """The lookup key of a frame id."""
    return frame_id | EXTENDED_FLAG if extended else frame_id


@dataclass(frozen=True, slots=True)
class Binding:
    """One value signal of one (frame, mux) group, with everything needed to map it."""

    role: Role
    name: str
    index: int  # fixed index (pattern number + offset), or the offset when index_signal is set
    index_signal: str | None
    index_mult: float
    index_add: float
    index_lo: float
    index_hi: float
    mult: float  # DBC scale * profile scale * sign
    add: float  # (DBC offset * profile scale) * sign + value offset
    raw_lo: float  # DBC minimum in raw units, minus half an LSB (-inf when none)
    raw_hi: float
    flags: tuple[str, ...]
    invalid_value: int
    sentinels: frozenset[int]


@dataclass(slots=True)
class Group:
    """The bindings decoded together from one frame layout (one mux value).

    ``simple`` holds the common case (fixed index, at most one flag) as plain tuples, which the
    hot loop unpacks in one step; ``general`` holds the rest (index from a signal, several flags).
    """

    be: Any  # cantools/bitstruct compiled formats, or None when no signal uses that byte order
    le: Any
    simple: tuple[Row, ...]
    general: tuple[Binding, ...]
    need: int  # bytes the group's signals (and the multiplexer) occupy


# name, role, index, mult, add, raw_lo, raw_hi, flag (or None), invalid_value, sentinels
Row = tuple[str, Role, int, float, float, float, float, str | None, int, frozenset[int]]


def _group(be: Any, le: Any, bindings: Sequence[Binding], need: int) -> Group:
    simple: list[Row] = []
    general: list[Binding] = []
    for b in bindings:
        if b.index_signal is None and len(b.flags) <= 1:
            flag = b.flags[0] if b.flags else None
            simple.append(
                (
                    b.name,
                    b.role,
                    b.index,
                    b.mult,
                    b.add,
                    b.raw_lo,
                    b.raw_hi,
                    flag,
                    b.invalid_value,
                    b.sentinels,
                )
            )
        else:
            general.append(b)
    return Group(be, le, tuple(simple), tuple(general), need)


def bytes_needed(signals: Sequence[Signal]) -> int:
    """How many bytes from the start of the payload ``signals`` occupy (0 for none).

    Little-endian signals run upwards from their start bit; big-endian (Motorola) ones run from
    their most significant bit in cantools' linear numbering (``start_bit``).
    """
    need = 0
    for sig in signals:
        first = int(start_bit(sig))
        need = max(need, (first + int(sig.length) - 1) // 8 + 1)
    return need


def _sentinels(m: SignalMap, sig: Signal) -> frozenset[int]:
    if m.role not in _MEASURED:
        return frozenset()
    values = set(m.sentinel)
    if m.all_ones_sentinel and not sig.is_float and not sig.is_signed and sig.length >= 8:
        values.add((1 << sig.length) - 1)
    return frozenset(values)


@dataclass(slots=True)
class CompiledFrame:
    message: Message
    length: int
    mux_name: str | None
    mux_be: Any
    mux_le: Any
    groups: dict[int | None, Group]
    known_mux: frozenset[int]
    mux_need: int  # bytes the multiplexer occupies (0 without one)


def _raw_bounds(sig: Signal) -> tuple[float, float]:
    """The DBC min/max in raw units, widened by half an LSB so float rounding never trips it."""
    scale = float(sig.scale) or 1.0
    offset = float(sig.offset)
    margin = 1e-9 if sig.is_float else 0.5

    def raw(x: float | None, default: float) -> float:
        return default if x is None else (float(x) - offset) / scale

    if scale < 0:
        # A negative scale maps the physical maximum to the lowest raw value (and an unset
        # bound to the opposite infinity).
        lo, hi = raw(sig.maximum, -math.inf), raw(sig.minimum, math.inf)
    else:
        lo, hi = raw(sig.minimum, -math.inf), raw(sig.maximum, math.inf)
    return lo - margin, hi + margin


def _compile_formats(signals: Sequence[Signal], length: int) -> tuple[Any, Any]:
    """cantools unpack formats for ``signals``; ``None`` for a byte order none of them uses."""
    # cantools builds the little-endian layout assuming signals in start-bit order.
    formats = create_encode_decode_formats(sort_signals_by_start_bit(list(signals)), length)
    be = formats.big_endian if any(s.byte_order == "big_endian" for s in signals) else None
    le = formats.little_endian if any(s.byte_order == "little_endian" for s in signals) else None
    return be, le


class Compiler:
    """Resolves a profile against a DBC set; every mismatch is a ConfigError naming both."""

    def __init__(self, profile: Profile, dbcs: DbcSet) -> None:
        self.profile = profile
        self.dbcs = dbcs
        self.where = f"profile {profile.source or profile.name}"
        # Per role: the physical (SI) span each bound signal's DBC min/max allows.
        self.ranges: dict[Role, list[tuple[float, float]]] = {}

    def message(self, ctx: str, name: str) -> Message:
        try:
            return self.dbcs.db.get_message_by_name(name)
        except KeyError:
            raise ConfigError(
                f"{self.where}: {ctx}: message {name!r} is not in DBC {self.dbcs.describe()}"
            ) from None

    def signal(self, ctx: str, msg: Message, name: str) -> Signal:
        try:
            return msg.get_signal_by_name(name)
        except KeyError:
            raise ConfigError(
                f"{self.where}: {ctx}: signal {name!r} is not in message {msg.name!r} "
                f"(DBC {self.dbcs.origin(msg.name)})"
            ) from None

    def expand(self, ctx: str, msg: Message, pattern: str) -> list[tuple[Signal, int]]:
        """Every signal of ``msg`` that fits ``pattern``, with the number in its name."""
        pat = NamePattern(pattern)
        if not pat.indexed:
            return [(self.signal(ctx, msg, pattern), 0)]
        found = [(s, i) for s in msg.signals if (i := pat.match(s.name)) is not None]
        if not found:
            raise ConfigError(
                f"{self.where}: {ctx}: signal pattern {pattern!r} matches no signal of message "
                f"{msg.name!r} (DBC {self.dbcs.origin(msg.name)})"
            )
        return sorted(found, key=lambda f: f[1])

    @staticmethod
    def mux_signal(msg: Message) -> Signal | None:
        muxes = [s for s in msg.signals if s.is_multiplexer]
        return muxes[0] if muxes else None

    def check_same_mux(self, ctx: str, msg: Message, value: Signal, other: Signal) -> None:
        """``other`` must be present in every frame layout that carries ``value``."""
        if other.multiplexer_ids is None:
            return
        if value.multiplexer_ids is None or not set(value.multiplexer_ids) <= set(
            other.multiplexer_ids
        ):
            raise ConfigError(
                f"{self.where}: {ctx}: signal {other.name!r} is not in the same multiplexed "
                f"frame as {value.name!r} in message {msg.name!r} (DBC "
                f"{self.dbcs.origin(msg.name)})"
            )

    def check_unit(self, ctx: str, m: SignalMap, msg: Message, sig: Signal) -> None:
        """The DBC unit, scaled by the profile, must be the role's unit (V, A, degC).

        A profile that forgets ``scale = 0.001`` on a signal in mA would read the current 1000
        times too high; a unit the table does not know (or none) cannot be checked.
        """
        if m.role not in _UNITS or not sig.unit:
            return
        si, known = _UNITS[m.role]
        unit = str(sig.unit).strip().lower()
        if unit not in known:
            return
        scale, offset = known[unit]
        ok_scale = math.isclose(abs(m.scale), scale, rel_tol=1e-6)
        ok_offset = math.isclose(m.value_offset, offset, abs_tol=0.01)
        if ok_scale and ok_offset:
            return
        need = f"scale = {scale:g}" + (f", value_offset = {offset:g}" if offset else "")
        raise ConfigError(
            f"{self.where}: {ctx}: signal {sig.name!r} of {msg.name!r} is in {sig.unit!r} (DBC "
            f"{self.dbcs.origin(msg.name)}) but {m.role.value} is in {si}: set {need} "
            f"(the profile has scale = {m.scale:g}, value_offset = {m.value_offset:g})"
        )

    def binding(self, ctx: str, m: SignalMap, msg: Message, sig: Signal, number: int) -> Binding:
        sign = -1.0 if m.flip_sign else 1.0
        flags: list[str] = []
        for flag_pattern in m.invalid_flag:
            flag = self.signal(ctx, msg, NamePattern(flag_pattern).format(number))
            self.check_same_mux(ctx, msg, sig, flag)
            flags.append(flag.name)
        index_mult, index_add = 1.0, 0.0
        index_lo, index_hi = -math.inf, math.inf
        if m.index_signal is not None:
            isig = self.signal(ctx, msg, m.index_signal)
            self.check_same_mux(ctx, msg, sig, isig)
            index_mult, index_add = float(isig.scale), float(isig.offset)
            index_lo, index_hi = _raw_bounds(isig)
        self.check_unit(ctx, m, msg, sig)
        mult = float(sig.scale) * m.scale * sign
        add = float(sig.offset) * m.scale * sign + m.value_offset
        ends = [
            m.scale * sign * float(x) + m.value_offset if x is not None else default * mult
            for x, default in ((sig.minimum, -math.inf), (sig.maximum, math.inf))
        ]
        self.ranges.setdefault(m.role, []).append((min(ends), max(ends)))
        lo, hi = _raw_bounds(sig)
        return Binding(
            role=m.role,
            name=sig.name,
            index=m.index_offset + (0 if m.index_signal is not None else number),
            index_signal=m.index_signal,
            index_mult=index_mult,
            index_add=index_add,
            index_lo=index_lo,
            index_hi=index_hi,
            mult=mult,
            add=add,
            raw_lo=lo,
            raw_hi=hi,
            flags=tuple(flags),
            invalid_value=m.invalid_value,
            sentinels=_sentinels(m, sig),
        )

    def compile(self) -> dict[int, CompiledFrame]:
        per_msg: dict[str, list[tuple[Signal, Binding]]] = {}
        for n, m in enumerate(self.profile.signals):
            ctx = f"signals[{n}] ({m.role.value})"
            msg = self.message(ctx, m.message)
            mux = self.mux_signal(msg)
            if mux is not None and sum(1 for s in msg.signals if s.is_multiplexer) > 1:
                raise ConfigError(
                    f"{self.where}: {ctx}: message {m.message!r} has nested multiplexers, "
                    "which the gateway does not decode"
                )
            for sig, number in self.expand(ctx, msg, m.signal):
                if sig.is_multiplexer:
                    raise ConfigError(
                        f"{self.where}: {ctx}: {sig.name!r} is the multiplexer of {msg.name!r}"
                    )
                per_msg.setdefault(msg.name, []).append(
                    (sig, self.binding(ctx, m, msg, sig, number))
                )
        frames: dict[int, CompiledFrame] = {}
        for name, items in per_msg.items():
            msg = self.dbcs.db.get_message_by_name(name)
            frames[frame_key(msg.frame_id, bool(msg.is_extended_frame))] = self.frame(msg, items)
        return frames

    def frame(self, msg: Message, items: list[tuple[Signal, Binding]]) -> CompiledFrame:
        mux = self.mux_signal(msg)
        known: set[int] = set()
        for s in msg.signals:
            known.update(s.multiplexer_ids or ())
        common = [(s, b) for s, b in items if s.multiplexer_ids is None]
        keys: list[int | None] = [None]
        if mux is not None:
            keys = [*sorted(known)]
        groups: dict[int | None, Group] = {}
        for key in keys:
            chosen = common + [
                (s, b) for s, b in items if s.multiplexer_ids and key in s.multiplexer_ids
            ]
            if not chosen:
                continue  # a mux value the profile does not use: decodes to no readings
            names: dict[str, Signal] = {}
            for s, b in chosen:
                names[s.name] = s
                for extra in (*b.flags, *((b.index_signal,) if b.index_signal else ())):
                    names[extra] = msg.get_signal_by_name(extra)
            be, le = _compile_formats(list(names.values()), msg.length)
            need = bytes_needed([*names.values(), *([mux] if mux is not None else [])])
            groups[key] = _group(be, le, [b for _, b in chosen], need)
        mux_be = mux_le = None
        if mux is not None:
            mux_be, mux_le = _compile_formats([mux], msg.length)
        return CompiledFrame(
            message=msg,
            length=msg.length,
            mux_name=mux.name if mux is not None else None,
            mux_be=mux_be,
            mux_le=mux_le,
            groups=groups,
            known_mux=frozenset(known),
            mux_need=bytes_needed([mux]) if mux is not None else 0,
        )
