"""Frames the gateway sends, encoded with the DBC: the balancing command's per-cell flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gateway.canbus.compiler import Compiler
from gateway.canbus.profile import CommandMap

__all__ = ["CommandEncoder", "OutFrame"]


@dataclass(frozen=True, slots=True)
class OutFrame:
    """An encoded frame ready to send."""

    arbitration_id: int
    extended: bool
    data: bytes


class CommandEncoder:
    """Encodes a per-cell flag vector into the frames of a (multiplexed) flag message."""

    def __init__(self, comp: Compiler, cmd: CommandMap) -> None:
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
        self._order = sorted(self._groups, key=lambda k: -1 if k is None else k)
        # group key -> (its flags, its frame) as last encoded: the flags change rarely (the plan
        # is recomputed about once a second), and a DBC encode costs tens of microseconds.
        self._last: dict[int | None, tuple[tuple[int, ...], OutFrame]] = {}

    def encode(self, bleed: Sequence[bool]) -> list[OutFrame]:
        """The frames that carry ``bleed``; groups with no cell of the pack are not sent."""
        n = len(bleed)
        out: list[OutFrame] = []
        for key in self._order:
            sigs = self._groups[key]
            if not any(0 <= i < n for _, i in sigs):
                continue
            flags = tuple(int(0 <= i < n and bool(bleed[i])) for _, i in sigs)
            last = self._last.get(key)
            if last is not None and last[0] == flags:
                out.append(last[1])
                continue
            values: dict[str, float] = dict(self._fill)
            values.update({name: f for (name, _), f in zip(sigs, flags, strict=True)})
            if self._mux_name is not None and key is not None:
                values[self._mux_name] = key
            data = self.message.encode(values, strict=True)
            frame = OutFrame(self.message.frame_id, bool(self.message.is_extended_frame), data)
            self._last[key] = (flags, frame)
            out.append(frame)
        return out
