"""Decoder trust: sentinels (configured and all-ones), frames longer or shorter than the DBC."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import Decoder, FrameDecodeError, load_decoder
from gateway.core.model import Role

DBC = """VERSION ""
NS_ :
BS_:
BU_: BMS
BO_ 512 Sensors: 8 BMS
 SG_ Cell_000 : 0|16@1+ (0.001,0) [0|65.535] "V" Vector__XXX
 SG_ Temp_000 : 16|8@1+ (1,-40) [-40|215] "degC" Vector__XXX
 SG_ Current : 24|16@1- (0.1,0) [-3276.8|3276.7] "A" Vector__XXX
 SG_ Spare : 56|8@1+ (1,0) [0|255] "" Vector__XXX
"""


def decoder(tmp_path: Path, extra: str = "") -> Decoder:
    (tmp_path / "s.dbc").write_text(DBC)
    (tmp_path / "s.toml").write_text(
        f"""name = "s"
dbc = ["s.dbc"]
[[signals]]
role = "cell_voltage"
message = "Sensors"
signal = "Cell_{{index:03d}}"
{extra}
[[signals]]
role = "cell_temperature"
message = "Sensors"
signal = "Temp_{{index:03d}}"
[[signals]]
role = "pack_current"
message = "Sensors"
signal = "Current"
"""
    )
    return load_decoder(CanConfig(profile=str(tmp_path / "s.toml")))


def frame(cell_raw: int, temp_raw: int, current_raw: int = 0) -> bytes:
    return (
        cell_raw.to_bytes(2, "little")
        + temp_raw.to_bytes(1, "little")
        + current_raw.to_bytes(2, "little", signed=True)
        + bytes(3)
    )


def values(dec: Decoder, data: bytes) -> dict[Role, float]:
    return {r.role: r.value for r in dec.decode(0x200, data, 1.0)}


def test_all_ones_of_an_unsigned_signal_is_a_sentinel(tmp_path: Path) -> None:
    dec = decoder(tmp_path)
    v = values(dec, frame(0xFFFF, 0xFF))  # 65.535 V and 215 degC: inside the DBC ranges
    assert math.isnan(v[Role.CELL_VOLTAGE])
    assert math.isnan(v[Role.CELL_TEMPERATURE])
    # A signed signal's all ones is -1 raw: a value, not a sentinel.
    assert values(dec, frame(3300, 60, -1))[Role.PACK_CURRENT] == pytest.approx(-0.1)
    # Ordinary values pass.
    v = values(dec, frame(3300, 60))
    assert v[Role.CELL_VOLTAGE] == pytest.approx(3.3)
    assert v[Role.CELL_TEMPERATURE] == pytest.approx(20.0)


def test_configured_sentinels_and_switching_all_ones_off(tmp_path: Path) -> None:
    dec = decoder(tmp_path, "sentinel = [0, 0xFFFE]\nall_ones_sentinel = false")
    assert math.isnan(values(dec, frame(0, 60))[Role.CELL_VOLTAGE])
    assert math.isnan(values(dec, frame(0xFFFE, 60))[Role.CELL_VOLTAGE])
    assert values(dec, frame(0xFFFF, 60))[Role.CELL_VOLTAGE] == pytest.approx(65.535)
    # The temperature binding keeps its own default.
    assert math.isnan(values(dec, frame(3300, 0xFF))[Role.CELL_TEMPERATURE])


def test_a_single_sentinel_value_is_accepted(tmp_path: Path) -> None:
    dec = decoder(tmp_path, "sentinel = 0")
    assert math.isnan(values(dec, frame(0, 60))[Role.CELL_VOLTAGE])


def test_frames_decode_when_the_mapped_signals_fit(tmp_path: Path) -> None:
    dec = decoder(tmp_path)
    data = frame(3300, 60, -125)
    # The mapped signals end at byte 5; Spare (byte 7) is not mapped.
    for wire in (data[:5], data[:6], data, data + bytes(4), data + bytes(56)):
        v = values(dec, wire)
        assert v[Role.CELL_VOLTAGE] == pytest.approx(3.3)
        assert v[Role.PACK_CURRENT] == pytest.approx(-12.5)
    before = dec.counters.errors["length"]
    with pytest.raises(FrameDecodeError, match="4 bytes, its mapped signals need 5") as e:
        dec.decode(0x200, data[:4], 1.0)
    assert e.value.reason == "length"
    assert dec.counters.errors["length"] == before + 1
    assert dec.counters.errors["time"] == 0  # a reason of its own, counted by the link
