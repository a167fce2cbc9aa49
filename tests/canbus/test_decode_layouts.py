"""The decoder against cantools' public ``Message.decode`` over random layouts, and frame lengths.

The decoder compiles cantools' internal bit-unpacking formats (``cantools.database.utils``), which
is why cantools is pinned below its next major. This property test is the guard: for random
messages (both byte orders, signed, float, multiplexed, standard and extended ids, classic and
CAN FD lengths) and random payloads (as long as the DBC says, or padded to the next CAN FD
length), every mapped value equals what the public API decodes.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import BaseConversion
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.canbus.dbc import DbcSet
from gateway.canbus.decode import Decoder, FrameDecodeError
from gateway.canbus.profile import Profile, SignalMap
from gateway.core.model import Role

FD_LENGTHS = (0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 48, 64)


def _bits(start: int, length: int, byte_order: str) -> set[tuple[int, int]]:
    """Physical (byte, bit) positions a signal occupies (DBC start-bit conventions)."""
    if byte_order == "little_endian":
        return {(k // 8, k % 8) for k in range(start, start + length)}
    msb = 8 * (start // 8) + (7 - start % 8)  # cantools' linear numbering
    return {(q // 8, 7 - q % 8) for q in range(msb, msb + length)}


def _start_for(pos: int, byte_order: str) -> int:
    """The DBC start bit for a signal whose first bit (LSB for LE, MSB for BE) is linear ``pos``."""
    if byte_order == "little_endian":
        return pos
    return 8 * (pos // 8) + (7 - pos % 8)


@st.composite
def layouts(draw: st.DrawFn) -> tuple[Message, list[int | None]]:
    """A random message; returns it and the mux value of each value signal (None: common)."""
    length = draw(st.sampled_from([n for n in FD_LENGTHS if n >= 2]))
    extended = draw(st.booleans())
    frame_id = draw(st.integers(0, 0x1FFFFFFF if extended else 0x7FF))
    used: set[tuple[int, int]] = set()
    signals: list[Signal] = []
    muxes: list[int | None] = []
    mux_values: list[int] = []
    if draw(st.booleans()):
        # A multiplexer in the first byte, little endian, and 1..3 mux values.
        used |= _bits(0, 8, "little_endian")
        mux_values = sorted(draw(st.sets(st.integers(0, 255), min_size=1, max_size=3)))
        signals.append(Signal("Mux", 0, 8, "little_endian", is_multiplexer=True))
    total = 8 * length
    for k in range(draw(st.integers(1, 6))):
        byte_order = draw(st.sampled_from(["little_endian", "big_endian"]))
        is_float = draw(st.booleans()) and total >= 32
        size = draw(st.sampled_from([32, 64] if total >= 64 else [32])) if is_float else None
        size = size or draw(st.integers(1, min(32, total)))
        pos = draw(st.integers(0, total - size))
        start = _start_for(pos, byte_order)
        bits = _bits(start, size, byte_order)
        if any(b >= length for b, _ in bits) or bits & used:
            continue
        mux_id = draw(st.sampled_from([None, *mux_values])) if mux_values else None
        if mux_id is None:
            used |= bits  # a common signal may not overlap anything
        else:
            # Signals of different mux values may share bits; keep it simple: no overlap at all.
            used |= bits
        scale = draw(st.sampled_from([1, 0.001, 0.1, 0.5, 2, -0.01]))
        offset = draw(st.sampled_from([0, -40, 1000.5, -273.15]))
        signals.append(
            Signal(
                f"S{k}",
                start,
                size,
                byte_order,
                is_signed=(not is_float) and draw(st.booleans()),
                conversion=BaseConversion.factory(scale=scale, offset=offset, is_float=is_float),
                multiplexer_ids=None if mux_id is None else [mux_id],
                multiplexer_signal=None if mux_id is None else "Mux",
            )
        )
        muxes.append(mux_id)
    if mux_values and all(m is None for m in muxes):
        signals = [s for s in signals if not s.is_multiplexer]  # a mux that selects nothing
    if not muxes:
        signals.append(Signal("S_last", _start_for(total - 1, "little_endian"), 1))
        used |= {(length - 1, 7)}
        muxes.append(None)
    msg = Message(
        frame_id=frame_id,
        name="M",
        length=length,
        signals=signals,
        is_extended_frame=extended,
        is_fd=length > 8,
        strict=True,
    )
    return msg, muxes


def _decoder(msg: Message) -> Decoder:
    db = Database(messages=[msg], strict=True)
    value_signals = [s for s in msg.signals if not s.is_multiplexer]
    profile = Profile(
        name="random",
        signals=[
            SignalMap(
                role=Role.CELL_VOLTAGE,
                message=msg.name,
                signal=s.name,
                index_offset=k,
                all_ones_sentinel=False,
            )
            for k, s in enumerate(value_signals)
        ],
    )
    return Decoder(profile, DbcSet(db, {msg.name: Path("random.dbc")}))


def _same(ours: float, theirs: Any) -> bool:
    theirs = float(theirs)
    if math.isnan(theirs):
        return math.isnan(ours)
    return ours == pytest.approx(theirs, rel=1e-12, abs=1e-12)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(layout=layouts(), data=st.data())
def test_decoder_matches_cantools_message_decode(
    layout: tuple[Message, list[int | None]], data: st.DataObject
) -> None:
    msg, _ = layout
    dec = _decoder(msg)
    payload = bytearray(data.draw(st.binary(min_size=msg.length, max_size=msg.length)))
    mux_sig = next((s for s in msg.signals if s.is_multiplexer), None)
    if mux_sig is not None:
        known = sorted({m for s in msg.signals for m in (s.multiplexer_ids or ())})
        payload[0] = data.draw(st.sampled_from(known)) if known else payload[0]
    payload_b = bytes(payload)
    # On the wire: as long as the DBC says, or padded to the next CAN FD length.
    pad = data.draw(st.sampled_from([0, *[n - msg.length for n in FD_LENGTHS if n > msg.length]]))
    wire = payload_b + data.draw(st.binary(min_size=pad, max_size=pad))
    expected = msg.decode(payload_b, decode_choices=False, scaling=True)
    value_signals = [s for s in msg.signals if not s.is_multiplexer]
    try:
        readings = dec.decode(msg.frame_id, wire, 1.0, bool(msg.is_extended_frame))
    except FrameDecodeError as e:  # pragma: no cover - a failure to explain
        pytest.fail(f"decoder refused a frame cantools decodes: {e}")
    got = {r.index: r.value for r in readings}
    want = {k: expected[s.name] for k, s in enumerate(value_signals) if s.name in expected}
    assert set(got) == set(want)
    for k, v in want.items():
        assert _same(got[k], v), (value_signals[k], got[k], v)
    assert all(r.valid for r in readings)


@given(layout=layouts(), data=st.data())
@settings(max_examples=100, deadline=None)
def test_a_frame_too_short_for_a_mapped_signal_is_counted(
    layout: tuple[Message, list[int | None]], data: st.DataObject
) -> None:
    msg, _ = layout
    dec = _decoder(msg)
    mux_sig = next((s for s in msg.signals if s.is_multiplexer), None)
    short = data.draw(st.integers(0, msg.length - 1))
    payload = bytearray(data.draw(st.binary(min_size=short, max_size=short)))
    if mux_sig is not None and short:
        known = sorted({m for s in msg.signals for m in (s.multiplexer_ids or ())})
        payload[0] = data.draw(st.sampled_from(known))
    # What the frame needs: every signal of its group (common + its mux value) and the mux.
    mux_value = payload[0] if (mux_sig is not None and short) else None
    needed = [
        s
        for s in msg.signals
        if s.is_multiplexer
        or s.multiplexer_ids is None
        or (mux_value is not None and mux_value in s.multiplexer_ids)
    ]
    fits = all(
        b < short for s in needed for b, _ in _bits(int(s.start), int(s.length), s.byte_order)
    )
    before = dec.counters.errors["length"]
    if fits:
        dec.decode(msg.frame_id, bytes(payload), 1.0, bool(msg.is_extended_frame))
        assert dec.counters.errors["length"] == before
    else:
        with pytest.raises(FrameDecodeError, match="bytes, its mapped signals need"):
            dec.decode(msg.frame_id, bytes(payload), 1.0, bool(msg.is_extended_frame))
        assert dec.counters.errors["length"] == before + 1
