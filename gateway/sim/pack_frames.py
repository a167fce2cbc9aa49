"""The simulated pack's CAN frames: per ``dbc/bms.dbc`` out, balancing commands in. No I/O.

``PackFrameEmitter`` turns a ``PackSim`` into ``can.Message`` objects encoded with cantools at
configurable rates, and turns ``GW_BalancingCommand`` frames into the simulator's bleed mask (a
group of 56 cells stops bleeding when its command has not been refreshed for 5 s, as the DBC
says). It is clock-injected: the caller passes the simulated (or wall) time.
``gateway.sim.emitter.run_sim_on_bus`` drives it on a python-can bus in (accelerated) real time;
``gateway.sim.log`` writes its frames to a log.

Message and signal names come from the DBC; nothing here knows a byte offset.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import can
import cantools
from cantools.database import Database, Message
from cantools.database import errors as cantools_errors

from gateway.errors import ConfigError
from gateway.sim.pack import PackSim

__all__ = [
    "DEFAULT_DBC",
    "EmitterStats",
    "FrameRates",
    "PackFrameEmitter",
    "load_bms_dbc",
]

log = logging.getLogger("gateway.sim")

DEFAULT_DBC = Path(__file__).resolve().parent.parent / "data" / "dbc" / "bms.dbc"

_VOLTS_PER_FRAME = 4
_TEMPS_PER_FRAME = 4
_FLAGS_PER_FRAME = 56
_MV_MAX = 8191  # 13-bit unsigned
_TEMP_MIN_C = -204.8  # 12-bit signed, 0.1 degC
_TEMP_MAX_C = 204.7
_PAYLOAD_CACHE_SIZE = 8192


@lru_cache(maxsize=4)
def load_bms_dbc(path: Path = DEFAULT_DBC) -> Database:
    """Load (once per path) the DBC the simulator encodes with.

    Raises:
        ConfigError: the file cannot be read or is not a valid DBC; the message names it.
    """
    try:
        db = cantools.database.load_file(path, strict=True)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read DBC: {e.strerror}") from None
    except cantools_errors.Error as e:
        raise ConfigError(f"{path}: not a valid DBC: {e}") from None
    if not isinstance(db, Database):
        raise ConfigError(f"{path}: not a CAN database")
    return db


@dataclass(frozen=True, slots=True)
class FrameRates:
    """Transmit period of every message the simulated BMS sends; ``None`` disables it.

    The defaults are the cycle times of ``dbc/bms.dbc``.
    """

    cell_voltages_s: float | None = 0.1
    pack_values_s: float | None = 0.02
    cell_temperatures_s: float | None = 1.0
    balancing_status_s: float | None = 1.0

    def __post_init__(self) -> None:
        for name in (
            "cell_voltages_s",
            "pack_values_s",
            "cell_temperatures_s",
            "balancing_status_s",
        ):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} (={value}) must be positive")

    def scaled(self, rate: float) -> FrameRates:
        """The same rates times ``rate`` (0.1 = ten times fewer frames)."""
        if not rate > 0:
            raise ValueError(f"rate (={rate}) must be positive")

        def f(p: float | None) -> float | None:
            return None if p is None else p / rate

        return FrameRates(
            cell_voltages_s=f(self.cell_voltages_s),
            pack_values_s=f(self.pack_values_s),
            cell_temperatures_s=f(self.cell_temperatures_s),
            balancing_status_s=f(self.balancing_status_s),
        )


@dataclass(frozen=True, slots=True)
class EmitterStats:
    """Counters of an emitter."""

    frames_emitted: int
    commands_applied: int
    command_errors: int
    command_timeouts: int
    last_command_error: str | None


def _timestamp(msg: can.Message) -> float:
    return float(msg.timestamp)


@dataclass(slots=True)
class _Schedule:
    period_s: float
    start_s: float
    build: Callable[[], list[tuple[Message, dict[str, Any]]]]
    sent: int = 0  # transmissions so far; the next is due at start_s + sent * period_s


class PackFrameEmitter:
    """Encodes a ``PackSim``'s sensed values as CAN frames and applies balancing commands.

    Args:
        sim: The simulated pack.
        rates: Transmit periods (default: the DBC cycle times).
        db: A loaded DBC with the ``dbc/bms.dbc`` message set (default: the bundled one).
        channel: Channel name put on every message (``None``: the bus's own).
        command_timeout_s: A command group not refreshed for this long stops bleeding.
        start_s: Time of the first transmission of every message.
    """

    def __init__(
        self,
        sim: PackSim,
        *,
        rates: FrameRates | None = None,
        db: Database | None = None,
        channel: str | None = None,
        command_timeout_s: float = 5.0,
        start_s: float = 0.0,
    ) -> None:
        if not command_timeout_s > 0:
            raise ValueError(f"command_timeout_s (={command_timeout_s}) must be positive")
        self.sim = sim
        self.rates = rates if rates is not None else FrameRates()
        self.db = db if db is not None else load_bms_dbc()
        self.channel = channel
        self.command_timeout_s = command_timeout_s
        try:
            self._volt_msg = self.db.get_message_by_name("BMS_CellVoltages")
            self._temp_msg = self.db.get_message_by_name("BMS_CellTemperatures")
            self._pack_msg = self.db.get_message_by_name("BMS_PackValues")
            self._status_msg = self.db.get_message_by_name("BMS_BalancingStatus")
            self._cmd_msg = self.db.get_message_by_name("GW_BalancingCommand")
        except KeyError as e:
            raise ConfigError(f"DBC lacks message {e.args[0]!r} the simulator sends") from None
        n = sim.config.cells
        self._cells = n
        self._groups = math.ceil(n / _FLAGS_PER_FRAME)
        # Per command group: the flags last commanded and when (None: never / expired).
        self._cmd_flags: list[list[bool]] = [
            [False] * _FLAGS_PER_FRAME for _ in range(self._groups)
        ]
        self._cmd_time_s: list[float | None] = [None] * self._groups
        self._frames = 0
        self._applied = 0
        self._errors = 0
        self._timeouts = 0
        self._last_error: str | None = None
        # Signal names built once: formatting them per frame would cost more than encoding.
        self._volt_names = [
            [
                (f"CellVoltage_{k:03d}", f"CellVoltage_{k:03d}_invalidFlag")
                for k in range(mux * _VOLTS_PER_FRAME, (mux + 1) * _VOLTS_PER_FRAME)
            ]
            for mux in range(math.ceil(n / _VOLTS_PER_FRAME))
        ]
        self._schedules: list[_Schedule] = []
        self._payloads: dict[tuple[Any, ...], bytes] = {}
        for period, build in (
            (self.rates.cell_voltages_s, self.cell_voltage_signals),
            (self.rates.pack_values_s, self.pack_value_signals),
            (self.rates.cell_temperatures_s, self.cell_temperature_signals),
            (self.rates.balancing_status_s, self.balancing_status_signals),
        ):
            if period is not None:
                self._schedules.append(_Schedule(period, start_s, build))

    # ---------------------------------------------------------------- frames out

    def frames_due(self, t_s: float) -> list[can.Message]:
        """Every frame whose transmit time is at or before ``t_s``, time-stamped at that time.

        Values are the simulator's sensed values now: call this after stepping the simulator to
        ``t_s`` (a step longer than a period repeats the values with later time stamps).
        """
        out: list[can.Message] = []
        for sch in self._schedules:
            # Multiplication, not repeated addition: no drift over a day of periods; the
            # tolerance lets 0.1 s steps hit 0.1 s periods despite float rounding.
            while (due_s := sch.start_s + sch.sent * sch.period_s) <= t_s + 1e-9:
                out.extend(self._encode(sch.build(), due_s))
                sch.sent += 1
        # In time order across messages (a stable sort keeps each burst's order): log writers
        # and receivers expect non-decreasing time stamps.
        out.sort(key=_timestamp)
        self._frames += len(out)
        return out

    def all_frames(self, t_s: float) -> list[can.Message]:
        """One of every frame the pack sends, with the values now and time stamp ``t_s``."""
        out: list[can.Message] = []
        for build in (
            self.cell_voltage_signals,
            self.pack_value_signals,
            self.cell_temperature_signals,
            self.balancing_status_signals,
        ):
            out.extend(self._encode(build(), t_s))
        self._frames += len(out)
        return out

    def cell_voltage_signals(self) -> list[tuple[Message, dict[str, Any]]]:
        """Signal values of the ``BMS_CellVoltages`` frames (one per 4 cells)."""
        volts = self.sim.sensed_cell_voltages_v()
        n = self._cells
        frames = []
        for mux, names in enumerate(self._volt_names):
            data: dict[str, Any] = {"CellVoltages_Mux": mux}
            for k, (name, flag) in enumerate(names, start=mux * _VOLTS_PER_FRAME):
                mv = round(volts[k] * 1000.0) if k < n else 0
                # A cell that does not exist, or a value the signal cannot carry, is sent as
                # invalid rather than wrapped or clipped into a wrong reading.
                bad = k >= n or not 0 <= mv <= _MV_MAX
                data[name] = min(max(mv, 0), _MV_MAX)
                data[flag] = int(bad)
            frames.append((self._volt_msg, data))
        return frames

    def cell_temperature_signals(self) -> list[tuple[Message, dict[str, Any]]]:
        """Signal values of the ``BMS_CellTemperatures`` frames (one per 4 sensors)."""
        temps = self.sim.sensed_temperatures_c()
        sensors = len(temps)
        frames = []
        for mux in range(math.ceil(sensors / _TEMPS_PER_FRAME)):
            data: dict[str, Any] = {"CellTemperatures_Mux": mux}
            for k in range(mux * _TEMPS_PER_FRAME, (mux + 1) * _TEMPS_PER_FRAME):
                t = round(temps[k], 1) if k < sensors else 0.0
                bad = k >= sensors or not _TEMP_MIN_C <= t <= _TEMP_MAX_C
                data[f"CellTemperature_{k:03d}"] = min(max(t, _TEMP_MIN_C), _TEMP_MAX_C)
                data[f"CellTemperature_{k:03d}_invalidFlag"] = int(bad)
            frames.append((self._temp_msg, data))
        return frames

    def pack_value_signals(self) -> list[tuple[Message, dict[str, Any]]]:
        """Signal values of the ``BMS_PackValues`` frame."""
        current_ma = round(self.sim.sensed_current_a() * 1000.0)
        voltage_v = round(self.sim.sensed_pack_voltage_v(), 2)
        bad_i = not -(2**31) <= current_ma < 2**31
        bad_v = not 0.0 <= voltage_v <= 167772.15
        data = {
            "PackCurrent": 0 if bad_i else current_ma,
            "PackVoltage": 0.0 if bad_v else voltage_v,
            "PackCurrent_invalidFlag": int(bad_i),
            "PackVoltage_invalidFlag": int(bad_v),
        }
        return [(self._pack_msg, data)]

    def balancing_status_signals(self) -> list[tuple[Message, dict[str, Any]]]:
        """Signal values of the ``BMS_BalancingStatus`` frames (one per 56 cells)."""
        mask = self.sim.bleed_mask
        frames = []
        for mux in range(self._groups):
            data: dict[str, Any] = {"BalancingStatus_Mux": mux}
            for k in self._group_cells(mux):
                data[f"BalancingStatus_{k:03d}"] = int(k < self._cells and mask[k])
            frames.append((self._status_msg, data))
        return frames

    def _encode(
        self, frames: list[tuple[Message, dict[str, Any]]], t_s: float
    ) -> Iterator[can.Message]:
        cache = self._payloads
        for msg_def, data in frames:
            # Values change slowly against the frame rates (mV, mA, 0.1 degC), so most frames
            # repeat an earlier payload: the cache skips cantools for them.
            key = (msg_def.frame_id, *data.values())
            payload = cache.get(key)
            if payload is None:
                # strict=False skips cantools' range checks (3x faster); the builders above
                # have already put every value in range or marked it invalid.
                payload = msg_def.encode(data, scaling=True, padding=False, strict=False)
                if len(cache) >= _PAYLOAD_CACHE_SIZE:
                    cache.clear()
                cache[key] = payload
            yield can.Message(
                timestamp=t_s,
                arbitration_id=msg_def.frame_id,
                is_extended_id=msg_def.is_extended_frame,
                data=payload,
                channel=self.channel,
            )

    # ---------------------------------------------------------------- commands in

    def handle_frame(self, msg: can.Message, now_s: float) -> bool:
        """Apply ``msg`` if it is a ``GW_BalancingCommand``; other frames are ignored.

        A command that does not decode is counted (``stats.command_errors``), never raised.

        Returns:
            True when the frame was a command that was applied.
        """
        if msg.arbitration_id != self._cmd_msg.frame_id or msg.is_extended_id:
            return False
        try:
            decoded = self._cmd_msg.decode(bytes(msg.data), decode_choices=False)
        except cantools_errors.DecodeError as e:
            self._errors += 1
            self._last_error = f"GW_BalancingCommand: {e}"
            return False
        if not isinstance(decoded, dict):  # only container messages decode to a list
            self._errors += 1
            self._last_error = "GW_BalancingCommand: not a plain message in this DBC"
            return False
        mux = int(cast(int, decoded["BalancingCommand_Mux"]))
        if mux >= self._groups:
            # A group beyond our cells: only a mistake if it asks a cell to bleed.
            if any(v for k, v in decoded.items() if k != "BalancingCommand_Mux"):
                self._errors += 1
                self._last_error = f"GW_BalancingCommand: mux {mux} beyond {self._cells} cells"
            return False
        flags = [bool(decoded[f"BalancingCommand_{k:03d}"]) for k in self._group_cells(mux)]
        self._cmd_flags[mux] = flags
        self._cmd_time_s[mux] = now_s
        self._applied += 1
        self._apply_mask()
        return True

    def expire(self, now_s: float) -> None:
        """Stop bleeding the groups whose command is older than ``command_timeout_s``."""
        changed = False
        for g, t in enumerate(self._cmd_time_s):
            if t is not None and now_s - t > self.command_timeout_s:
                self._cmd_time_s[g] = None
                changed = True
                if any(self._cmd_flags[g]):
                    self._timeouts += 1
                    log.info("balancing command group %d timed out: stop bleeding", g)
        if changed:
            self._apply_mask()

    def _apply_mask(self) -> None:
        mask = [False] * self._cells
        for g, t in enumerate(self._cmd_time_s):
            if t is None:
                continue
            base = g * _FLAGS_PER_FRAME
            for j, on in enumerate(self._cmd_flags[g]):
                if on and base + j < self._cells:
                    mask[base + j] = True
        self.sim.set_bleed(mask)

    @staticmethod
    def _group_cells(mux: int) -> range:
        return range(mux * _FLAGS_PER_FRAME, min((mux + 1) * _FLAGS_PER_FRAME, 512))

    @property
    def stats(self) -> EmitterStats:
        """A snapshot of the counters."""
        return EmitterStats(
            frames_emitted=self._frames,
            commands_applied=self._applied,
            command_errors=self._errors,
            command_timeouts=self._timeouts,
            last_command_error=self._last_error,
        )
