"""Frame decoding: a profile compiled against a DBC into per-frame, per-mux lookup tables.

``Decoder.decode`` is the CAN hot path (every received or replayed frame). At start, each profile
binding is resolved to cantools signals once and each (frame id, mux value) gets a precompiled
cantools bit-unpacking format holding only the signals the profile needs; decoding a frame is then
one or two ``bitstruct`` unpacks (cantools' own codec), a multiply-add per value and a range check.
Pure: no I/O and no clock after construction; the caller passes the receive time.

Length: a frame is decoded when every signal it needs (values, flags, index and multiplexer)
lies inside the bytes received, whatever the DBC's length: a CAN FD frame padded to the next
valid FD length, or a longer classic frame, decodes; a frame too short for its signals is counted
(``length``).

Sentinels: a raw value the profile names in ``sentinel`` (and, by default, the all-ones value of
an unsigned integer signal of 8 bits or more) means "no measurement". It decodes to a *valid*
reading whose value is NaN, which the pack state counts as a measurement fault; it is not range
checked, so it never drops the other values of its frame.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cantools
from cantools.database.can import Message, Signal
from cantools.database.utils import (
    create_encode_decode_formats,
    sort_signals_by_start_bit,
    start_bit,
)

from gateway.canbus.config import CanConfig
from gateway.canbus.dbc import DbcSet, load_dbcs
from gateway.canbus.profile import CommandMap, NamePattern, Profile, SignalMap, load_profile
from gateway.core.model import Reading, Role
from gateway.errors import ConfigError, FrameError

__all__ = [
    "EXTENDED_FLAG",
    "REASONS",
    "DecodeCounters",
    "Decoder",
    "FrameDecodeError",
    "OutFrame",
    "frame_key",
    "load_decoder",
]

log = logging.getLogger(__name__)

#: Added to a 29-bit id in table keys so an extended id never collides with an 11-bit one.
EXTENDED_FLAG: Final = 0x8000_0000

#: Why a frame was dropped (the keys of ``DecodeCounters.errors``); ``time``: the interface
#: stamped it with a time that cannot be real (counted by the link, see ``canbus.rxtime``).
REASONS: Final = ("length", "unknown_mux", "out_of_range", "remote", "time")

#: Roles whose values can carry a sentinel (a balancing flag of all ones is just "on").
_MEASURED: Final = frozenset(
    (Role.CELL_VOLTAGE, Role.CELL_TEMPERATURE, Role.PACK_CURRENT, Role.PACK_VOLTAGE)
)

_NAN: Final = math.nan

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


class FrameDecodeError(FrameError):
    """A frame of a mapped message that could not be decoded; ``reason`` is one of ``REASONS``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class DecodeCounters:
    """What the decoder has seen. Mutable on purpose: it is bumped on the hot path."""

    decoded: int = 0
    """Frames of mapped messages decoded (possibly into zero readings)."""
    ignored: int = 0
    """Frames whose id the profile does not map (not an error: a bus carries more)."""
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REASONS, 0))
    """Dropped frames per reason."""

    @property
    def dropped(self) -> int:
        """All dropped frames."""
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class OutFrame:
    """An encoded frame ready to send."""

    arbitration_id: int
    extended: bool
    data: bytes


# --- compiled tables -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Binding:
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
class _Group:
    """The bindings decoded together from one frame layout (one mux value).

    ``simple`` holds the common case (fixed index, at most one flag) as plain tuples, which the
    hot loop unpacks in one step; ``general`` holds the rest (index from a signal, several flags).
    """

    be: Any  # cantools/bitstruct compiled formats, or None when no signal uses that byte order
    le: Any
    simple: tuple[_Row, ...]
    general: tuple[_Binding, ...]
    need: int  # bytes the group's signals (and the multiplexer) occupy


# name, role, index, mult, add, raw_lo, raw_hi, flag (or None), invalid_value, sentinels
_Row = tuple[str, Role, int, float, float, float, float, str | None, int, frozenset[int]]


def _group(be: Any, le: Any, bindings: Sequence[_Binding], need: int) -> _Group:
    simple: list[_Row] = []
    general: list[_Binding] = []
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
    return _Group(be, le, tuple(simple), tuple(general), need)


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
class _Frame:
    message: Message
    length: int
    mux_name: str | None
    mux_be: Any
    mux_le: Any
    groups: dict[int | None, _Group]
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


class _Compiler:
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

    def binding(self, ctx: str, m: SignalMap, msg: Message, sig: Signal, number: int) -> _Binding:
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
        return _Binding(
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

    def compile(self) -> dict[int, _Frame]:
        per_msg: dict[str, list[tuple[Signal, _Binding]]] = {}
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
        frames: dict[int, _Frame] = {}
        for name, items in per_msg.items():
            msg = self.dbcs.db.get_message_by_name(name)
            frames[frame_key(msg.frame_id, bool(msg.is_extended_frame))] = self.frame(msg, items)
        return frames

    def frame(self, msg: Message, items: list[tuple[Signal, _Binding]]) -> _Frame:
        mux = self.mux_signal(msg)
        known: set[int] = set()
        for s in msg.signals:
            known.update(s.multiplexer_ids or ())
        common = [(s, b) for s, b in items if s.multiplexer_ids is None]
        keys: list[int | None] = [None]
        if mux is not None:
            keys = [*sorted(known)]
        groups: dict[int | None, _Group] = {}
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
        return _Frame(
            message=msg,
            length=msg.length,
            mux_name=mux.name if mux is not None else None,
            mux_be=mux_be,
            mux_le=mux_le,
            groups=groups,
            known_mux=frozenset(known),
            mux_need=bytes_needed([mux]) if mux is not None else 0,
        )


class _CommandEncoder:
    """Encodes a per-cell flag vector into the frames of a (multiplexed) flag message."""

    def __init__(self, comp: _Compiler, cmd: CommandMap) -> None:
        ctx = "balancing_command"
        msg = comp.message(ctx, cmd.message)
        self.message = msg
        mux = comp.mux_signal(msg)
        self._mux_name = mux.name if mux is not None else None
        # group key (mux value or None) -> [(signal name, cell index)]
        self._groups: dict[int | None, list[tuple[str, int]]] = {}
        for sig, number in comp.expand(ctx, msg, cmd.signal):
            keys: list[int | None] = [None]
            if sig.multiplexer_ids:
                keys = [*sig.multiplexer_ids]
            for key in keys:
                self._groups.setdefault(key, []).append((sig.name, number + cmd.index_offset))
        # Signals of the frame the profile does not name (none in bms.dbc) are sent as 0.
        self._fill = {
            s.name: 0 for s in msg.signals if not s.is_multiplexer and s.multiplexer_ids is None
        }

    def encode(self, bleed: Sequence[bool]) -> list[OutFrame]:
        """The frames that carry ``bleed``; groups with no cell of the pack are not sent."""
        n = len(bleed)
        out: list[OutFrame] = []
        for key, sigs in sorted(
            self._groups.items(), key=lambda kv: -1 if kv[0] is None else kv[0]
        ):
            if not any(0 <= i < n for _, i in sigs):
                continue
            values: dict[str, float] = dict(self._fill)
            values.update({name: int(0 <= i < n and bool(bleed[i])) for name, i in sigs})
            if self._mux_name is not None and key is not None:
                values[self._mux_name] = key
            data = self.message.encode(values, strict=True)
            out.append(OutFrame(self.message.frame_id, bool(self.message.is_extended_frame), data))
        return out


class Decoder:
    """Decodes frames of the mapped messages into readings; counts what it drops and why."""

    def __init__(self, profile: Profile, dbcs: DbcSet) -> None:
        comp = _Compiler(profile, dbcs)
        self.profile = profile
        self.dbcs = dbcs
        self._frames = comp.compile()
        self._ranges = comp.ranges
        self.counters = DecodeCounters()
        self._balancing = (
            _CommandEncoder(comp, profile.balancing_command)
            if profile.balancing_command is not None
            else None
        )

    @property
    def frame_keys(self) -> frozenset[int]:
        """Keys (see ``frame_key``) of every mapped message."""
        return frozenset(self._frames)

    def mapped_indices(self, role: Role) -> set[int] | None:
        """The indices the profile can deliver for ``role``; None when a signal decides them."""
        found: set[int] = set()
        for frame in self._frames.values():
            for group in frame.groups.values():
                found.update(row[2] for row in group.simple if row[1] is role)
                for b in group.general:
                    if b.role is role:
                        if b.index_signal is not None:
                            return None
                        found.add(b.index)
        return found

    def check_pack(self, cells: int, temp_sensors: int) -> None:
        """Check that the profile can deliver every configured cell and sensor.

        A pack the profile cannot fill would never be complete: the gateway would hold 0 A for
        ever, so this is a start-up error instead.

        Raises:
            ConfigError: naming the setting, the profile and the DBC.
        """
        for role, wanted, key in (
            (Role.CELL_VOLTAGE, cells, "pack.cells"),
            (Role.CELL_TEMPERATURE, temp_sensors, "pack.temp_sensors"),
        ):
            have = self.mapped_indices(role)
            if have is None or wanted == 0:
                continue  # indices come from a signal: only the bus can tell
            missing = [i for i in range(wanted) if i not in have]
            if missing:
                raise ConfigError(
                    f"{key} (={wanted}): profile {self.profile.name!r} on DBC "
                    f"{self.dbcs.describe()} maps no {role.value} for index {missing[0]}"
                    f"{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}"
                )
        for role in (Role.CELL_VOLTAGE, Role.PACK_CURRENT):
            if self.mapped_indices(role) == set():
                raise ConfigError(
                    f"profile {self.profile.name!r} maps no {role.value}: the pack could never "
                    "be complete"
                )

    def value_range(self, role: Role) -> tuple[float, float]:
        """The lowest and highest value (SI units) the DBC can carry for ``role``.

        The hull over every signal bound to the role, from the DBC's min/max scaled by the
        profile (``-inf``/``inf`` where the DBC gives none, or no signal carries the role).
        """
        spans = self._ranges.get(role)
        if not spans:
            return -math.inf, math.inf
        return min(lo for lo, _ in spans), max(hi for _, hi in spans)

    def check_carries(self, checks: Sequence[tuple[str, Role, float]]) -> None:
        """Check that the DBC can carry each threshold ``(setting, role, value)``.

        A threshold beyond what the DBC's signal can express can never be reached: the alarm
        it configures would be switched off without a word.

        Raises:
            ConfigError: naming the setting, the value and the DBC's range.
        """
        for key, role, value in checks:
            lo, hi = self.value_range(role)
            if not lo <= value <= hi:
                raise ConfigError(
                    f"{key} (={value:g}) is beyond what DBC {self.dbcs.describe()} can carry for "
                    f"{role.value} ({lo:g}..{hi:g}): the check could never trigger"
                )

    def handles(self, frame_id: int, extended: bool = False) -> bool:
        """Whether frames with this id are mapped (others are ignored)."""
        return frame_key(frame_id, extended) in self._frames

    def decode(
        self, frame_id: int, data: bytes, t_s: float, extended: bool = False
    ) -> list[Reading]:
        """The readings in one frame, stamped ``t_s``; ``[]`` for an unmapped id (counted).

        A frame longer or shorter than the DBC's length decodes when every signal it needs lies
        inside ``data``. A sentinel raw value gives a valid reading with a NaN value.

        Raises:
            FrameDecodeError: too short for its signals, unknown mux value or a value outside
                the DBC's min/max; counted per reason in ``counters.errors``.
        """
        frame = self._frames.get(frame_id | EXTENDED_FLAG if extended else frame_id)
        counters = self.counters
        if frame is None:
            counters.ignored += 1
            return []
        size = len(data)
        length = frame.length
        if size != length:
            # Padded (CAN FD) or short: decode what the received bytes carry. The compiled
            # formats read exactly ``length`` bytes; bytes past ``size`` are checked unused below.
            if size < frame.mux_need:
                return self._too_short(frame, size, frame.mux_need)
            data = data[:length] if size > length else data + bytes(length - size)
        if frame.mux_name is None:
            group = frame.groups.get(None)
        else:
            mux_le = frame.mux_le
            if mux_le is not None:  # the usual case, inlined: cantools reads LE reversed
                mux = mux_le.unpack(data[::-1])[frame.mux_name]
            else:
                mux = frame.mux_be.unpack(data)[frame.mux_name]
            group = frame.groups.get(mux)
            if group is None:
                if mux not in frame.known_mux:
                    counters.errors["unknown_mux"] += 1
                    raise FrameDecodeError(
                        "unknown_mux", f"{frame.message.name}: mux value {mux} is not in the DBC"
                    )
                counters.decoded += 1
                return []
        if group is None:  # a plain message whose mapped signals all sit under a mux
            counters.decoded += 1
            return []
        if size < group.need:
            return self._too_short(frame, size, group.need)
        be, le = group.be, group.le
        if le is None:
            raw = be.unpack(data)
        elif be is None:
            raw = le.unpack(data[::-1])  # cantools unpacks little-endian from the reversed payload
        else:
            raw = {**be.unpack(data), **le.unpack(data[::-1])}
        out: list[Reading] = []
        append = out.append
        for name, role, index, mult, add, lo, hi, flag, invalid, sentinels in group.simple:
            value = raw[name]
            if flag is not None and raw[flag] == invalid:
                # An invalid value may hold anything (often all ones): not range-checked.
                append(Reading(role, index, value * mult + add, t_s, False))
            elif value in sentinels:
                # "No measurement": a measurement fault downstream, never a value.
                append(Reading(role, index, _NAN, t_s, True))
            elif lo <= value <= hi:
                append(Reading(role, index, value * mult + add, t_s, True))
            elif value != value:  # noqa: PLR0124 - a NaN float signal: no measurement
                append(Reading(role, index, _NAN, t_s, True))
            else:
                counters.errors["out_of_range"] += 1
                raise FrameDecodeError(
                    "out_of_range",
                    f"{frame.message.name}: {name} raw value {value} is outside the DBC range",
                )
        for b in group.general:
            append(self._general(frame, b, raw, t_s))
        counters.decoded += 1
        return out

    def _too_short(self, frame: _Frame, size: int, need: int) -> list[Reading]:
        self.counters.errors["length"] += 1
        raise FrameDecodeError(
            "length",
            f"{frame.message.name}: {size} bytes, its mapped signals need {need} "
            f"(the DBC says {frame.length})",
        )

    def _general(self, frame: _Frame, b: _Binding, raw: dict[str, Any], t_s: float) -> Reading:
        value = raw[b.name]
        valid = not any(raw[flag] == b.invalid_value for flag in b.flags)
        sentinel = valid and (value in b.sentinels or value != value)  # noqa: PLR0124 - NaN
        if valid and not sentinel and not b.raw_lo <= value <= b.raw_hi:
            self.counters.errors["out_of_range"] += 1
            raise FrameDecodeError(
                "out_of_range",
                f"{frame.message.name}: {b.name} raw value {value} is outside the DBC range",
            )
        index = b.index
        if b.index_signal is not None:
            raw_index = raw[b.index_signal]
            if not b.index_lo <= raw_index <= b.index_hi:
                self.counters.errors["out_of_range"] += 1
                raise FrameDecodeError(
                    "out_of_range",
                    f"{frame.message.name}: {b.index_signal} raw value {raw_index} is "
                    "outside the DBC range",
                )
            index += int(raw_index * b.index_mult + b.index_add)
        if sentinel:
            return Reading(b.role, index, _NAN, t_s, True)
        return Reading(b.role, index, value * b.mult + b.add, t_s, valid)

    def count_bad_time(self) -> None:
        """Count a frame of a mapped id whose receive time cannot be real as dropped."""
        self.counters.errors["time"] += 1

    def count_remote(self) -> None:
        """Count a remote (RTR) frame of a mapped id as dropped: it carries no data."""
        self.counters.errors["remote"] += 1

    # --- transmit ----------------------------------------------------------------------------

    def encode(self, message_name: str, signals: dict[str, float]) -> OutFrame:
        """Encode one message with the DBC (strict: every signal present and in range).

        Raises:
            FrameError: unknown message, missing signal or value out of range.
        """
        try:
            msg = self.dbcs.db.get_message_by_name(message_name)
        except KeyError:
            raise FrameError(
                f"message {message_name!r} is not in DBC {self.dbcs.describe()}"
            ) from None
        try:
            data = msg.encode(signals, strict=True)
        except (cantools.database.EncodeError, KeyError, ValueError, TypeError) as e:
            raise FrameError(f"cannot encode {message_name}: {e}") from None
        return OutFrame(msg.frame_id, bool(msg.is_extended_frame), data)

    def encode_balancing(self, bleed: Sequence[bool]) -> list[OutFrame]:
        """Frames carrying the bleed flags (empty when the profile maps no balancing command)."""
        if self._balancing is None:
            return []
        return self._balancing.encode(bleed)


def _profile_dbcs(config: CanConfig, profile: Profile) -> list[Path]:
    paths = config.dbc_paths() or profile.dbc_paths()
    if not paths:
        raise ConfigError(
            f"profile {profile.name!r} ships no DBC: set can.dbc to the DBC file(s) of your BMS"
        )
    return paths


def load_decoder(config: CanConfig) -> Decoder:
    """Load the configured profile and DBC(s) and compile the decoder.

    Raises:
        ConfigError: one line naming the file and the problem (missing or malformed DBC,
            unknown profile key, a message or signal the DBC lacks).
    """
    with ExitStack() as stack:
        path = config.profile_path(stack)
        if config.profile_is_packaged() and not path.is_file():
            shipped = sorted(p.stem for p in path.parent.glob("*.toml"))
            raise ConfigError(
                f"can.profile (={config.profile!r}): no such shipped profile "
                f"(shipped: {', '.join(shipped)}; or give a path to a .toml file)"
            )
        profile = load_profile(path)
        try:
            dbcs = load_dbcs(_profile_dbcs(config, profile))
        except ConfigError as e:
            # Name the setting that led to the file: the user's can.dbc or the profile's own.
            key = "can.dbc" if config.dbc_paths() else f"can.profile (={config.profile!r})"
            raise ConfigError(f"{key}: {e}") from None
        decoder = Decoder(profile, dbcs)
    log.debug(
        "profile %s on %s: %d mapped messages",
        profile.name,
        dbcs.describe(),
        len(decoder.frame_keys),
    )
    return decoder
