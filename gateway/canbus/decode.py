"""Frame decoding: frames of the mapped messages into readings, counted by what is dropped.

``Decoder.decode`` is the CAN hot path (every received or replayed frame). At start the profile is
compiled against the DBC (``gateway.canbus.compiler``): each profile binding is resolved to
cantools signals once and each (frame id, mux value) gets a precompiled cantools bit-unpacking
format holding only the signals the profile needs; decoding a frame is then one or two
``bitstruct`` unpacks (cantools' own codec), a multiply-add per value and a range check. The
frames the gateway sends are encoded in ``gateway.canbus.encode``. Pure: no I/O and no clock after
construction; the caller passes the receive time.

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

from gateway.canbus.compiler import EXTENDED_FLAG, Binding, CompiledFrame, Compiler, frame_key
from gateway.canbus.config import CanConfig
from gateway.canbus.dbc import DbcSet, load_dbcs
from gateway.canbus.encode import CommandEncoder, OutFrame
from gateway.canbus.profile import Profile, load_profile
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

#: Why a frame was dropped (the keys of ``DecodeCounters.errors``); ``time``: the interface
#: stamped it with a time that cannot be real (counted by the link, see ``canbus.rxtime``).
REASONS: Final = ("length", "unknown_mux", "out_of_range", "remote", "time")

_NAN: Final = math.nan


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


class Decoder:
    """Decodes frames of the mapped messages into readings; counts what it drops and why."""

    def __init__(self, profile: Profile, dbcs: DbcSet) -> None:
        comp = Compiler(profile, dbcs)
        self.profile = profile
        self.dbcs = dbcs
        self._frames = comp.compile()
        self._ranges = comp.ranges
        self.counters = DecodeCounters()
        self._balancing = (
            CommandEncoder(comp, profile.balancing_command)
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

    def _too_short(self, frame: CompiledFrame, size: int, need: int) -> list[Reading]:
        self.counters.errors["length"] += 1
        raise FrameDecodeError(
            "length",
            f"{frame.message.name}: {size} bytes, its mapped signals need {need} "
            f"(the DBC says {frame.length})",
        )

    def _general(
        self, frame: CompiledFrame, b: Binding, raw: dict[str, Any], t_s: float
    ) -> Reading:
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
        try:
            profile = load_profile(path)
        except ConfigError as e:
            raise ConfigError(f"can.profile: {e}") from None
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
