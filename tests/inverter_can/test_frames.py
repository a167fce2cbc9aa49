"""The wire layouts: known frames from the public protocol descriptions, the generated DBCs, the
alarm-code to bit table, and the protocol profiles."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest

from gateway.core.model import Alarm, AlarmReport, Severity
from gateway.core.protection import ALARMS
from gateway.inverter_can.alarms import ALARM_BITS, SMA_ACTIVE, SMA_OK, markdown
from gateway.inverter_can.config import InverterCanConfig, InverterProtocol
from gateway.inverter_can.frames import PROFILES, BatteryIdentity, FrameEncoder, load_inverter_dbc
from gateway.sim.can_inverter import decode_frame
from tests.conftest import REPO
from tests.inverter_can.outputs import output, requests

FIXTURE_FILE = REPO / "tests" / "fixtures" / "inverter_can" / "known_frames.toml"
FIXTURE: list[tuple[bool, int, str, dict[str, float]]] = [
    (f["family"] == "hv", f["id"], f["payload"], f["values"])
    for f in tomllib.loads(FIXTURE_FILE.read_text(encoding="utf-8"))["frame"]
]

# The same frames through the gateway's generated DBC: message name and signal values.
DBC_VIEW: dict[int, tuple[str, dict[str, str]]] = {
    0x351: ("LV_Limits", {"cvl_v": "ChargeVoltageLimit", "ccl_a": "ChargeCurrentLimit",
                          "dcl_a": "DischargeCurrentLimit", "dvl_v": "DischargeVoltageLimit"}),
    0x355: ("LV_SocSoh", {"soc_pct": "SoC", "soh_pct": "SoH"}),
    0x356: ("LV_Measurements", {"voltage_v": "BatteryVoltage", "current_a": "BatteryCurrent",
                                "temp_c": "BatteryTemperature"}),
    0x359: ("LV_ProtectionAlarms", {"modules": "ModuleCount", "token_p": "TokenP",
                                    "token_n": "TokenN"}),
    0x35C: ("LV_Requests", {"charge_enable": "ChargeEnable", "discharge_enable": "DischargeEnable",
                            "force_charge_i": "ForceChargeRequestI",
                            "force_charge_ii": "ForceChargeRequestII",
                            "full_charge": "FullChargeRequest"}),
    0x4210: ("HV_PackValues", {"voltage_v": "PackVoltage", "current_a": "PackCurrent",
                               "temp_c": "BmsTemperature", "soc_pct": "SoC", "soh_pct": "SoH"}),
    0x4220: ("HV_Limits", {"cvl_v": "ChargeCutoffVoltage", "dvl_v": "DischargeCutoffVoltage",
                           "ccl_a": "MaxChargeCurrent"}),
    0x4280: ("HV_Forbidden", {"charge_forbidden": "ChargeForbidden",
                              "discharge_forbidden": "DischargeForbidden"}),
}  # fmt: skip


@pytest.mark.parametrize(
    ("hv", "frame_id", "payload", "expected"), FIXTURE, ids=[f"{f[1]:#x}-{f[2]}" for f in FIXTURE]
)
def test_fixture_frames_decode_to_the_documented_values(
    hv: bool, frame_id: int, payload: str, expected: dict[str, float]
) -> None:
    data = bytes.fromhex(payload)
    sim = decode_frame(hv, frame_id, data)
    for key, value in expected.items():
        assert sim[key] == pytest.approx(value, abs=1e-6), key
    name, names = DBC_VIEW[frame_id]
    msg = load_inverter_dbc(hv).get_message_by_name(name)
    assert msg.frame_id == frame_id
    assert bool(msg.is_extended_frame) == hv
    decoded = msg.decode(data, decode_choices=False)
    for key, signal in names.items():
        assert decoded[signal] == pytest.approx(expected[key], abs=1e-6), signal


def test_hv_discharge_limit_is_a_negative_current_in_the_dbc() -> None:
    msg = load_inverter_dbc(True).get_message_by_name("HV_Limits")
    assert msg.decode(bytes.fromhex("A00FB80B2A763674"))["MaxDischargeCurrent"] == pytest.approx(
        -25.0
    )


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen", REPO / "scripts" / "gen_inverter_dbc.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_shipped_dbcs_are_what_the_generator_writes(tmp_path: Path) -> None:
    gen = _generator()
    for messages, shipped in ((gen.lv_messages(), gen.LV_OUT), (gen.hv_messages(), gen.HV_OUT)):
        out = tmp_path / shipped.name
        gen.write(out, messages)
        assert out.read_text() == shipped.read_text(), f"{shipped.name} is stale: run the script"


def test_lv_and_hv_id_ranges() -> None:
    lv = {m.frame_id for m in load_inverter_dbc(False).messages}
    assert {0x351, 0x355, 0x356, 0x359, 0x35A, 0x35C, 0x35E, 0x35F, 0x379} <= lv
    assert set(range(0x372, 0x378)) <= lv
    assert {0x305, 0x307} <= lv
    hv = load_inverter_dbc(True).messages
    assert all(m.is_extended_frame for m in hv)
    assert {m.frame_id for m in hv} == {
        0x4200,
        *range(0x4210, 0x42A0, 0x10),
        *range(0x7310, 0x7350, 0x10),
    }


@pytest.mark.parametrize("protocol", [p for p in InverterProtocol if p is not InverterProtocol.OFF])
def test_every_profile_message_encodes(protocol: InverterProtocol) -> None:
    enc = FrameEncoder(protocol, BatteryIdentity(capacity_ah=100.0))
    frames = enc.frames(output(), requests())
    assert len(frames) == len(PROFILES[protocol])
    assert all(f.extended == protocol.high_voltage for f in frames)


def test_values_out_of_range_are_clipped_not_wrapped() -> None:
    enc = FrameEncoder(InverterProtocol.PYLON, BatteryIdentity(capacity_ah=100.0))
    frame = enc.encode("LV_Limits", {"ChargeCurrentLimit": 1e6, "ChargeVoltageLimit": -5})
    v = decode_frame(False, 0x351, frame.data)
    assert v["ccl_a"] == pytest.approx(3276.7)
    assert v["cvl_v"] == 0.0


# --- the alarm table -----------------------------------------------------------------------------


def _report(code: str, severity: Severity) -> AlarmReport:
    return AlarmReport(active=(Alarm(code, severity, "test", 0.0),))


def _decoded(protocol: InverterProtocol, report: AlarmReport) -> dict[str, float]:
    enc = FrameEncoder(protocol, BatteryIdentity(capacity_ah=100.0))
    out = output(alarms=report)
    values: dict[str, float] = {}
    for f in enc.frames(out, requests()):
        msg = enc.db.get_message_by_frame_id(f.arbitration_id)
        values.update(msg.decode(f.data, decode_choices=False))
    return values


def test_every_alarm_code_has_a_row() -> None:
    assert set(ALARM_BITS) == set(ALARMS)


@pytest.mark.parametrize("code", sorted(ALARMS))
@pytest.mark.parametrize("severity", [Severity.WARNING, Severity.ALARM])
def test_every_alarm_code_reaches_its_bit(code: str, severity: Severity) -> None:
    bits = ALARM_BITS[code]
    report = _report(code, severity)
    alarm = severity is Severity.ALARM
    clear_pylon = _decoded(InverterProtocol.PYLON, AlarmReport())
    pylon = _decoded(InverterProtocol.PYLON, report)
    name = bits.pylon_alarm if alarm else bits.pylon_warning
    set_bits = {k for k, v in pylon.items() if k.startswith(("Prot", "Warn")) and v}
    assert set_bits == ({name} if name else set())
    assert not any(v for k, v in clear_pylon.items() if k.startswith(("Prot", "Warn")))

    sma = _decoded(InverterProtocol.SMA, report)
    prefix = "Alarm" if alarm else "Warning"
    assert sma[f"{prefix}{bits.sma_item}"] == SMA_ACTIVE
    assert sma[f"{prefix}General"] == SMA_ACTIVE
    other = "Warning" if alarm else "Alarm"
    assert sma[f"{other}{bits.sma_item}"] == SMA_OK

    hv = _decoded(InverterProtocol.PYLON_HV, report)
    name = bits.hv_alarm if alarm else bits.hv_warning
    set_bits = {k for k, v in hv.items() if k.startswith(("Protect", "Alarm", "Error")) and v}
    assert set_bits == ({name} if name else set())


def test_docs_carry_the_alarm_table() -> None:
    doc = (REPO / "docs" / "INVERTER_CAN.md").read_text(encoding="utf-8")
    assert markdown() in doc, "docs/INVERTER_CAN.md: run python -m gateway.inverter_can.alarms"


def test_settings_bounds() -> None:
    with pytest.raises(ValueError, match="period_s"):
        InverterCanConfig(period_s=0.1)
    with pytest.raises(ValueError, match="force_charge_soc_pct"):
        InverterCanConfig(force_charge_soc_pct=20, force_charge_clear_soc_pct=10)
    assert InverterCanConfig().bitrate == 500_000
    assert InverterCanConfig().protocol is InverterProtocol.OFF
