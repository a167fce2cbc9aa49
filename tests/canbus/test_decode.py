"""The decoder on golden frames: cantools encodes known values, the decoder must give them back."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cantools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import Decoder, FrameDecodeError, load_decoder
from gateway.canbus.encode import OutFrame
from gateway.core.model import Reading, Role
from gateway.errors import ConfigError, FrameError
from tests.conftest import BMS_DBC

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "canbus"
CELLID_DBC = FIXTURES / "cellid.dbc"

CELLID_PROFILE = """
name = "cellid"
dbc = ["cellid.dbc"]

[[signals]]
role = "cell_voltage"
message = "CellReport"
signal = "CellVoltage"
index_signal = "CellId"
index_offset = -1          # CellId counts from 1
invalid_flag = "CellVoltageValid"
invalid_value = 0          # the flag says "valid"
scale = 0.001

[[signals]]
role = "pack_current"
message = "CellReport"
signal = "ShuntCurrent"
flip_sign = true           # the shunt counts discharge as positive

[[signals]]
role = "cell_temperature"
message = "ModuleTemp"
signal = "TempK"
index_signal = "SensorNo"
value_offset = -273.15
invalid_flag = ["TempFault", "TempOpenWire"]
"""


def encode(db: Any, name: str, values: Mapping[str, float]) -> bytes:
    return bytes(db.get_message_by_name(name).encode(values, strict=True))


def by_key(readings: list[Reading]) -> dict[tuple[Role, int], Reading]:
    return {(r.role, r.index): r for r in readings}


@pytest.fixture(scope="module")
def bms() -> Decoder:
    return load_decoder(CanConfig())


@pytest.fixture
def cellid(tmp_path: Path) -> Decoder:
    (tmp_path / "cellid.dbc").write_bytes(CELLID_DBC.read_bytes())
    (tmp_path / "cellid.toml").write_text(CELLID_PROFILE)
    return load_decoder(CanConfig(profile=str(tmp_path / "cellid.toml")))


# --- dbc/bms.dbc with the shipped profile -----------------------------------------------------


def test_default_config_uses_packaged_dbc_and_profile(bms: Decoder) -> None:
    assert bms.profile.name == "bms"
    assert [p.name for p in bms.dbcs.files] == ["bms.dbc"]
    assert bms.handles(0x100)
    assert bms.handles(0x120)
    assert not bms.handles(0x150)


def test_cell_voltages_by_name_pattern_under_mux(bms: Decoder) -> None:
    db = bms.dbcs.db
    values: dict[str, float] = {"CellVoltages_Mux": 127}
    for k, i in enumerate(range(508, 512)):
        values[f"CellVoltage_{i:03d}"] = 2500 + 1000 * k
        values[f"CellVoltage_{i:03d}_invalidFlag"] = 1 if i == 510 else 0
    out = by_key(bms.decode(0x100, encode(db, "BMS_CellVoltages", values), 12.5))
    assert set(out) == {(Role.CELL_VOLTAGE, i) for i in range(508, 512)}
    assert out[Role.CELL_VOLTAGE, 508].value == pytest.approx(2.5)
    assert out[Role.CELL_VOLTAGE, 511].value == pytest.approx(5.5)
    assert out[Role.CELL_VOLTAGE, 510].valid is False
    assert all(r.valid for k, r in out.items() if k[1] != 510)
    assert {r.t_s for r in out.values()} == {12.5}


def test_temperatures_pack_values_and_balancing_status(bms: Decoder) -> None:
    db = bms.dbcs.db
    temps: dict[str, float] = {"CellTemperatures_Mux": 1}
    for k, i in enumerate(range(4, 8)):
        temps[f"CellTemperature_{i:03d}"] = [-20.5, 0.0, 25.3, 60.1][k]
        temps[f"CellTemperature_{i:03d}_invalidFlag"] = 0
    t = by_key(bms.decode(0x110, encode(db, "BMS_CellTemperatures", temps), 1.0))
    assert [t[Role.CELL_TEMPERATURE, i].value for i in range(4, 8)] == pytest.approx(
        [-20.5, 0.0, 25.3, 60.1]
    )

    pack = {
        "PackCurrent": -150_250,
        "PackVoltage": 51.23,
        "PackCurrent_invalidFlag": 0,
        "PackVoltage_invalidFlag": 1,
    }
    p = by_key(bms.decode(0x120, encode(db, "BMS_PackValues", pack), 2.0))
    assert p[Role.PACK_CURRENT, 0].value == pytest.approx(-150.25)  # mA -> A, sign kept
    assert p[Role.PACK_CURRENT, 0].valid
    assert p[Role.PACK_VOLTAGE, 0].value == pytest.approx(51.23)
    assert not p[Role.PACK_VOLTAGE, 0].valid

    bal: dict[str, float] = {"BalancingStatus_Mux": 1}
    bal.update({f"BalancingStatus_{i:03d}": int(i in (56, 60, 111)) for i in range(56, 112)})
    b = by_key(bms.decode(0x130, encode(db, "BMS_BalancingStatus", bal), 3.0))
    assert len(b) == 56
    assert {i for (_, i), r in b.items() if r.value == 1.0} == {56, 60, 111}


def test_unmapped_ids_are_ignored_and_counted(bms: Decoder) -> None:
    before = bms.counters.ignored
    assert bms.decode(0x7FF, b"\x00" * 8, 0.0) == []
    assert bms.decode(0x100, b"\x00" * 8, 0.0, extended=True) == []  # 29-bit 0x100 is not ours
    assert bms.counters.ignored == before + 2


# --- bad frames ---------------------------------------------------------------------------------


def test_truncated_frame_is_a_counted_frame_error(bms: Decoder) -> None:
    before = bms.counters.errors["length"]
    with pytest.raises(FrameDecodeError) as e:
        bms.decode(0x100, b"\x00\x01\x02", 0.0)
    assert e.value.reason == "length"
    assert isinstance(e.value, FrameError)
    assert "BMS_CellVoltages" in str(e.value)
    assert "3 bytes" in str(e.value)
    assert bms.counters.errors["length"] == before + 1


def test_unknown_mux_is_a_counted_frame_error(bms: Decoder) -> None:
    before = bms.counters.errors["unknown_mux"]
    with pytest.raises(FrameDecodeError, match="mux value 200") as e:
        bms.decode(0x100, bytes([200, 0, 0, 0, 0, 0, 0, 0]), 0.0)
    assert e.value.reason == "unknown_mux"
    assert bms.counters.errors["unknown_mux"] == before + 1


def test_out_of_range_value_is_a_counted_frame_error(cellid: Decoder) -> None:
    db = cellid.dbcs.db
    # CellVoltage's DBC range is 0..5000 mV; 6000 mV fits the 16 bits but not the range.
    data = encode(
        db,
        "CellReport",
        {"CellId": 3, "CellVoltage": 5000, "CellVoltageValid": 1, "ShuntCurrent": 0},
    )
    raw = bytearray(data)
    raw[1:3] = (60000).to_bytes(2, "little")  # raw 60000 * 0.1 = 6000 mV
    with pytest.raises(FrameDecodeError, match="CellVoltage raw value 60000") as e:
        cellid.decode(0x400, bytes(raw), 0.0)
    assert e.value.reason == "out_of_range"
    assert cellid.counters.errors["out_of_range"] == 1
    # The same value flagged invalid is not an error: an invalid value may hold anything.
    raw[3] = 0
    (r,) = [x for x in cellid.decode(0x400, bytes(raw), 0.0) if x.role is Role.CELL_VOLTAGE]
    assert not r.valid
    assert cellid.counters.errors["out_of_range"] == 1


def test_out_of_range_index_signal(cellid: Decoder) -> None:
    raw = bytearray(8)
    raw[0] = 0  # CellId range is 1..200
    raw[3] = 1
    with pytest.raises(FrameDecodeError, match="CellId raw value 0"):
        cellid.decode(0x400, bytes(raw), 0.0)


# --- the other styles: index from a signal, offset, scale, sign flip, several flags ----------


def test_index_from_signal_offset_scale_and_sign_flip(cellid: Decoder) -> None:
    db = cellid.dbcs.db
    data = encode(
        db,
        "CellReport",
        {"CellId": 17, "CellVoltage": 3312.4, "CellVoltageValid": 1, "ShuntCurrent": 42.5},
    )
    out = by_key(cellid.decode(0x400, data, 5.0))
    assert out[Role.CELL_VOLTAGE, 16].value == pytest.approx(3.3124)  # CellId 17 -> index 16
    assert out[Role.CELL_VOLTAGE, 16].valid
    assert out[Role.PACK_CURRENT, 0].value == pytest.approx(-42.5)  # discharge -> negative
    data = encode(
        db,
        "CellReport",
        {"CellId": 1, "CellVoltage": 3000, "CellVoltageValid": 0, "ShuntCurrent": -7},
    )
    out = by_key(cellid.decode(0x400, data, 6.0))
    assert not out[Role.CELL_VOLTAGE, 0].valid  # valid flag 0 -> invalid
    assert out[Role.PACK_CURRENT, 0].value == pytest.approx(7.0)


def test_value_offset_and_any_of_several_flags(cellid: Decoder) -> None:
    db = cellid.dbcs.db

    def temp(fault: int, open_wire: int) -> Reading:
        data = encode(
            db,
            "ModuleTemp",
            {"SensorNo": 9, "TempK": 298.2, "TempFault": fault, "TempOpenWire": open_wire},
        )
        (r,) = cellid.decode(0x401, data, 1.0)
        return r

    r = temp(0, 0)
    assert (r.role, r.index, r.valid) == (Role.CELL_TEMPERATURE, 9, True)
    assert r.value == pytest.approx(25.05)
    assert not temp(1, 0).valid
    assert not temp(0, 1).valid


def test_index_offset_on_a_name_pattern(tmp_path: Path) -> None:
    # A second string of cells on the same message set: cells 0.. become 100..
    profile = tmp_path / "second.toml"
    profile.write_text(
        f'name = "second"\ndbc = ["{BMS_DBC}"]\n'
        "[[signals]]\nrole = 'cell_voltage'\nmessage = 'BMS_CellVoltages'\n"
        "signal = 'CellVoltage_{index:03d}'\nindex_offset = 100\nscale = 0.001\n"
    )
    dec = load_decoder(CanConfig(profile=str(profile)))
    values: dict[str, float] = {"CellVoltages_Mux": 0}
    values.update({f"CellVoltage_{i:03d}": 3000 + i for i in range(4)})
    values.update({f"CellVoltage_{i:03d}_invalidFlag": 0 for i in range(4)})
    out = dec.decode(0x100, encode(dec.dbcs.db, "BMS_CellVoltages", values), 0.0)
    assert [(r.index, round(r.value, 4)) for r in out] == [
        (100, 3.0),
        (101, 3.001),
        (102, 3.002),
        (103, 3.003),
    ]


# --- foxBMS 2 ---------------------------------------------------------------------------------


def test_foxbms_golden_frames(foxbms_dbc: Path) -> None:
    dec = load_decoder(CanConfig(profile="foxbms", dbc=(str(foxbms_dbc),)))
    db = cantools.database.load_file(foxbms_dbc, strict=True)

    volts: dict[str, float] = {"f_CellVoltages_Mux": 5}
    for k, i in enumerate(range(20, 24)):
        volts[f"CellVoltage_{i:03d}"] = 3100 + 10 * k
        volts[f"CellVoltage_{i:03d}_invalidFlag"] = 0 if i == 22 else 1  # DBC: 0 = Invalid
    out = by_key(dec.decode(0x250, encode(db, "f_CellVoltages", volts), 1.0))
    assert [out[Role.CELL_VOLTAGE, i].value for i in range(20, 24)] == pytest.approx(
        [3.10, 3.11, 3.12, 3.13]
    )
    assert [out[Role.CELL_VOLTAGE, i].valid for i in range(20, 24)] == [True, True, False, True]

    temps: dict[str, float] = {"f_CellTemperatures_Mux": 1}
    for k, i in enumerate(range(6, 12)):
        temps[f"CellTemperature_{i:03d}"] = -10 + 7 * k
        temps[f"CellTemperature_{i:03d}_invalidFlag"] = 1
    out = by_key(dec.decode(0x260, encode(db, "f_CellTemperatures", temps), 1.0))
    assert [out[Role.CELL_TEMPERATURE, i].value for i in range(6, 12)] == [-10, -3, 4, 11, 18, 25]

    ivt = {
        "IVT_ID_Result_I": 0,
        "IVT_MsgCount_Result_I": 1,
        "IVT_Result_I_OCS": 0,
        "IVT_Result_I_Channel_Error": 0,
        "IVT_Result_I_Measurement_Error": 0,
        "IVT_Result_I_System_Error": 0,
        "IVT_Result_I": 25_000,  # foxBMS: positive = discharge
    }
    (cur,) = dec.decode(0x521, encode(db, "CS_IsabellenhuetteIvtString0Curr", ivt), 1.0)
    assert cur.role is Role.PACK_CURRENT
    assert cur.value == pytest.approx(-25.0)
    assert cur.valid
    ivt["IVT_Result_I_Measurement_Error"] = 1
    (cur,) = dec.decode(0x521, encode(db, "CS_IsabellenhuetteIvtString0Curr", ivt), 1.0)
    assert not cur.valid

    p0 = {"Current": 0, "BatteryVoltage": 712.3, "BusVoltage": 0, "Power": 0}
    (pv,) = dec.decode(0x233, encode(db, "f_PackValuesP0", p0), 1.0)
    assert pv.role is Role.PACK_VOLTAGE
    assert pv.value == pytest.approx(712.3)


# --- transmit ---------------------------------------------------------------------------------


def test_balancing_command_encodes_per_cell_flags(bms: Decoder) -> None:
    bleed = [False] * 70
    for i in (0, 5, 55, 56, 69):
        bleed[i] = True
    frames = bms.encode_balancing(bleed)
    assert len(frames) == 2  # cells 0..55 and 56..111; groups without a pack cell are not sent
    msg = bms.dbcs.db.get_message_by_name("GW_BalancingCommand")
    on: set[int] = set()
    for f in frames:
        assert (f.arbitration_id, f.extended) == (0x140, False)
        for name, value in msg.decode(f.data, decode_choices=False).items():
            if name.startswith("BalancingCommand_") and name[-3:].isdigit() and value:
                on.add(int(name[-3:]))
    assert on == {0, 5, 55, 56, 69}


def test_balancing_frames_follow_every_change(bms: Decoder) -> None:
    """Frames of unchanged groups are reused; a changed flag is always in the frames sent."""
    msg = bms.dbcs.db.get_message_by_name("GW_BalancingCommand")

    def flags_on(frames: list[OutFrame]) -> set[int]:
        on: set[int] = set()
        for f in frames:
            for name, value in msg.decode(f.data, decode_choices=False).items():
                if name.startswith("BalancingCommand_") and name[-3:].isdigit() and value:
                    on.add(int(name[-3:]))
        return on

    bleed = [False] * 70
    first = bms.encode_balancing(bleed)
    assert flags_on(first) == set()
    bleed[60] = True
    second = bms.encode_balancing(bleed)
    assert flags_on(second) == {60}
    assert second[0] == first[0]  # only the changed group differs
    assert second[1] != first[1]
    bleed[60] = False
    bleed[3] = True
    assert flags_on(bms.encode_balancing(bleed)) == {3}
    bleed[3] = False
    assert bms.encode_balancing(bleed) == first


def test_encode_checks_the_dbc(bms: Decoder) -> None:
    f = bms.encode(
        "GW_Heartbeat",
        {
            "Counter": 7,
            "Mode": 1,
            "WorstSeverity": 0,
            "ChargeLimit": 100.5,
            "DischargeLimit": 0,
            "BalancingCells": 3,
        },
    )
    decoded = bms.dbcs.db.get_message_by_name("GW_Heartbeat").decode(f.data)
    assert decoded["Counter"] == 7
    assert decoded["ChargeLimit"] == pytest.approx(100.5)
    with pytest.raises(FrameError, match="NoSuchMessage"):
        bms.encode("NoSuchMessage", {})
    with pytest.raises(FrameError, match="GW_Heartbeat"):
        bms.encode("GW_Heartbeat", {"Counter": 7})  # missing signals
    with pytest.raises(FrameError, match="GW_Heartbeat"):
        bms.encode(
            "GW_Heartbeat",
            {
                "Counter": 300,  # 8 bits, max 255
                "Mode": 1,
                "WorstSeverity": 0,
                "ChargeLimit": 0,
                "DischargeLimit": 0,
                "BalancingCells": 0,
            },
        )


# --- profiles that do not match their DBC ---------------------------------------------------


def _profile(tmp_path: Path, body: str) -> CanConfig:
    path = tmp_path / "p.toml"
    path.write_text(f'name = "p"\ndbc = ["{BMS_DBC}"]\n{body}')
    return CanConfig(profile=str(path))


def test_profile_naming_a_missing_message_names_both(tmp_path: Path) -> None:
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'pack_current'\nmessage = 'BMS_Nope'\nsignal = 'PackCurrent'\n",
    )
    with pytest.raises(ConfigError) as e:
        load_decoder(cfg)
    text = str(e.value)
    assert "BMS_Nope" in text
    assert "bms.dbc" in text
    assert "p.toml" in text


def test_profile_naming_a_missing_signal_names_both(tmp_path: Path) -> None:
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'pack_current'\nmessage = 'BMS_PackValues'\nsignal = 'PackAmps'\n",
    )
    with pytest.raises(
        ConfigError, match=r"'PackAmps' is not in message 'BMS_PackValues'.*bms\.dbc"
    ):
        load_decoder(cfg)


def test_profile_pattern_matching_nothing_and_missing_flag(tmp_path: Path) -> None:
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'cell_voltage'\nmessage = 'BMS_CellVoltages'\n"
        "signal = 'CellVolt_{index:03d}'\n",
    )
    with pytest.raises(ConfigError, match=r"'CellVolt_\{index:03d\}' matches no signal"):
        load_decoder(cfg)
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'cell_voltage'\nmessage = 'BMS_CellVoltages'\n"
        "signal = 'CellVoltage_{index:03d}'\ninvalid_flag = 'CellVoltage_{index:03d}_bad'\n",
    )
    with pytest.raises(ConfigError, match="'CellVoltage_000_bad' is not in message"):
        load_decoder(cfg)


def test_profile_flag_in_another_mux_group_is_rejected(tmp_path: Path) -> None:
    # Cell 0's value with cell 4's flag: they never travel in the same frame.
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'cell_voltage'\nmessage = 'BMS_CellVoltages'\n"
        "signal = 'CellVoltage_000'\ninvalid_flag = 'CellVoltage_004_invalidFlag'\n",
    )
    with pytest.raises(ConfigError, match="not in the same multiplexed frame"):
        load_decoder(cfg)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("[[signals]]\nrole = 'cell_volts'\nmessage = 'M'\nsignal = 'S'\n", r"signals\.0\.role"),
        ("[[signals]]\nrole = 'cell_voltage'\nmessage = 'M'\nsignal = 'S'\nscal = 2\n", "scal"),
        ("[[signals]]\nrole = 'cell_voltage'\nmessage = 'M'\nsignal = 'S_{cell}'\n", "cell"),
        ("signals = []\n", r"signals"),
        ("[[signals]\n", "not valid TOML"),
    ],
)
def test_bad_profile_keys_are_named(tmp_path: Path, body: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as e:
        load_decoder(_profile(tmp_path, body))
    assert "p.toml" in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_shipped_profile_and_missing_profile_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such shipped profile.*bms, foxbms"):
        load_decoder(CanConfig(profile="victron"))
    # The setting that led to the file is named, as for can.dbc (README, "Configuration").
    with pytest.raises(ConfigError, match=r"^can\.profile: profile .*absent\.toml: cannot read"):
        load_decoder(CanConfig(profile=str(tmp_path / "absent.toml")))


def test_foxbms_profile_without_dbc_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match=r"set can\.dbc"):
        load_decoder(CanConfig(profile="foxbms"))


@settings(max_examples=60, deadline=None)
@given(
    group=st.integers(0, 127),
    mv=st.lists(st.integers(0, 8191), min_size=4, max_size=4),
    flags=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_any_voltage_frame_round_trips(
    bms: Decoder, group: int, mv: list[int], flags: list[bool]
) -> None:
    values: dict[str, float] = {"CellVoltages_Mux": group}
    for k in range(4):
        i = 4 * group + k
        values[f"CellVoltage_{i:03d}"] = mv[k]
        values[f"CellVoltage_{i:03d}_invalidFlag"] = int(flags[k])
    out = bms.decode(0x100, encode(bms.dbcs.db, "BMS_CellVoltages", values), 7.0)
    assert [r.index for r in out] == [4 * group + k for k in range(4)]
    for r, m, flagged in zip(out, mv, flags, strict=True):
        if m == 8191 and not flagged:
            # All ones of the unsigned 13-bit signal: a sentinel, "no measurement".
            assert math.isnan(r.value)
        else:
            assert round(r.value * 1000) == m
    assert [not r.valid for r in out] == flags


def test_pack_larger_than_the_profile_is_a_config_error(bms: Decoder, foxbms_dbc: Path) -> None:
    bms.check_pack(512, 256)  # the whole default message set
    fox = load_decoder(CanConfig(profile="foxbms", dbc=(str(foxbms_dbc),)))
    fox.check_pack(216, 180)  # what the foxBMS 2 DBC carries
    with pytest.raises(
        ConfigError, match=r"pack\.cells \(=220\).*'foxbms'.*index 216 \(and 3 more\)"
    ):
        fox.check_pack(220, 4)
    with pytest.raises(ConfigError, match=r"pack\.temp_sensors \(=181\).*cell_temperature"):
        fox.check_pack(16, 181)


def test_profile_without_current_cannot_complete_a_pack(tmp_path: Path, cellid: Decoder) -> None:
    cellid.check_pack(300, 16)  # indices from CellId: only the bus can tell
    cfg = _profile(
        tmp_path,
        "[[signals]]\nrole = 'cell_voltage'\nmessage = 'BMS_CellVoltages'\n"
        "signal = 'CellVoltage_{index:03d}'\nscale = 0.001\n",
    )
    with pytest.raises(ConfigError, match="maps no pack_current"):
        load_decoder(cfg).check_pack(16, 0)
