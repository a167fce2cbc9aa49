"""Pure tests of the model 802 map: the gateway as a battery (models 1 and 802)."""

from __future__ import annotations

import struct

import pytest
import sunspec2.device as ss_device
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.model import Alarm, Severity
from gateway.sunspec.config import SunSpecConfig
from gateway.sunspec.layout import SUNS_MARKER, from_raw, to_raw
from gateway.sunspec.model802 import (
    BatteryInfo,
    BatteryMap,
    LinkState,
    ScaleFactors,
    battery_points,
)
from tests.sunspec.helpers import make_output

OVERVOLTAGE = Alarm("cell_overvoltage", Severity.ALARM, "cell 3 at 3.71 V", 0.0, latched=True)
HOT_WARNING = Alarm("discharge_overtemperature", Severity.WARNING, "sensor 1 at 56 degC", 0.0)


def _decode_with_pysunspec2(model_id: int, regs: list[int]) -> ss_device.Model:
    """pysunspec2's own decoder, as an independent reader of our encoding."""
    return ss_device.Model(model_id, data=struct.pack(f">{len(regs)}H", *regs))


def test_802_encoding_reads_back_through_pysunspec2() -> None:
    bmap = BatteryMap(BatteryInfo())
    out = make_output()
    lay = bmap.battery
    regs = lay.encode(battery_points(out, bmap.info, bmap.sf, LinkState(hb=7), lay))
    m = _decode_with_pysunspec2(802, regs)
    assert m.ID.value == 802
    assert m.L.value == lay.length
    assert m.AChaMax.cvalue == pytest.approx(80.0)
    assert m.ADisChaMax.cvalue == pytest.approx(95.5)
    assert m.VMax.cvalue == pytest.approx(56.8)
    assert m.VMin.cvalue == pytest.approx(44.0)
    assert m.SoC.cvalue == pytest.approx(63.4)
    assert m.SoH.cvalue == pytest.approx(97.2)
    assert m.V.cvalue == pytest.approx(53.1)
    assert m.A.cvalue == pytest.approx(12.5)
    assert m.W.cvalue == pytest.approx(664.0)  # 663.75 W: W_SF fitted to the pack, 1 W
    assert m.CellVMax.cvalue == pytest.approx(3.45)
    assert m.CellVMaxStr.value == 1
    assert m.CellVMaxMod.value == 1
    assert m.CellVMin.cvalue == pytest.approx(3.29)
    assert m.CellVAvg.cvalue == pytest.approx(3.3375, abs=0.001)
    assert m.Hb.value == 7
    assert m.ChaSt.value == lay.symbol("ChaSt", "CHARGING")
    assert m.State.value == lay.symbol("State", "CONNECTED")
    assert m.Typ.value == lay.symbol("Typ", "LITHIUM_ION")


def test_cell_module_numbers_follow_cells_per_module() -> None:
    cells = tuple([3.3] * 40)
    cells = (*cells[:33], 3.5, *cells[34:])
    cells = (*cells[:5], 3.1, *cells[6:])
    bmap = BatteryMap(BatteryInfo(cells_per_module=8))
    p = battery_points(make_output(cells_v=cells), bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["CellVMaxMod"] == 33 // 8 + 1
    assert p["CellVMinMod"] == 5 // 8 + 1


def test_image_starts_with_suns_and_ends_with_end_model() -> None:
    bmap = BatteryMap(BatteryInfo(), base=50000)
    img = bmap.image(None, LinkState())
    assert tuple(img[:2]) == SUNS_MARKER
    assert img[2:4] == [1, 66]
    assert img[bmap.battery_address - 50000] == 802
    assert img[-2:] == [0xFFFF, 0]
    assert len(img) == bmap.size


def test_no_step_yet_publishes_zero_limits_and_initializing() -> None:
    bmap = BatteryMap(BatteryInfo())
    p = battery_points(None, bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["AChaMax"] == 0
    assert p["ADisChaMax"] == 0
    assert p["State"] == bmap.battery.symbol("State", "INITIALIZING")
    assert p.get("SoC") is None  # not implemented = unknown, never a made-up value


@pytest.mark.parametrize(
    "link", [LinkState(ctrl_hb=3, ctrl_hb_lost=True), LinkState(disconnect=True, set_op=2)]
)
def test_lost_heartbeat_or_disconnect_zeroes_limits(link: LinkState) -> None:
    bmap = BatteryMap(BatteryInfo())
    p = battery_points(make_output(alarms=(OVERVOLTAGE,)), bmap.info, bmap.sf, link, bmap.battery)
    assert p["AChaMax"] == 0
    assert p["ADisChaMax"] == 0
    evt1 = p["Evt1"]
    assert isinstance(evt1, int)
    assert evt1 & (1 << 9)  # the protection's alarms stay visible
    assert bool(evt1 & 1) == link.ctrl_hb_lost


def test_evt1_comes_from_the_alarm_report() -> None:
    bmap = BatteryMap(BatteryInfo())
    out = make_output(alarms=(OVERVOLTAGE, HOT_WARNING))
    p = battery_points(out, bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["Evt1"] == (1 << 9) | (1 << 2)  # OVER_VOLT_ALARM, OVER_TEMP_WARNING


@pytest.mark.parametrize(
    ("current", "ccl", "dcl", "soc", "expected"),
    [
        (20.0, 50.0, 50.0, 50.0, "CHARGING"),
        (-20.0, 50.0, 50.0, 50.0, "DISCHARGING"),
        (0.0, 0.0, 0.0, 50.0, "OFF"),
        (0.0, 0.0, 50.0, 100.0, "FULL"),
        (0.0, 50.0, 0.0, 0.0, "EMPTY"),
        (0.1, 50.0, 50.0, 50.0, "HOLDING"),
    ],
)
def test_charge_status(current: float, ccl: float, dcl: float, soc: float, expected: str) -> None:
    bmap = BatteryMap(BatteryInfo())
    out = make_output(current_a=current, ccl_a=ccl, dcl_a=dcl, soc_pct=soc)
    p = battery_points(out, bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["ChaSt"] == bmap.battery.symbol("ChaSt", expected)


def test_discharge_positive_sign_option() -> None:
    bmap = BatteryMap(BatteryInfo(charge_positive=False))
    p = battery_points(make_output(current_a=10.0), bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["A"] == -100


@given(
    volts=st.floats(0.0, 1000.0),
    amps=st.floats(-2000.0, 2000.0),
    limit=st.floats(0.0, 2000.0),
)
def test_envelope_values_fit_without_overflow(volts: float, amps: float, limit: float) -> None:
    sf = ScaleFactors()
    for value, factor, ptype, step in (
        (volts, sf.v, "uint16", 0.1),
        (amps, sf.a, "int16", 0.1),
        (limit, sf.amax, "uint16", 0.1),
        (volts * amps, sf.w, "int16", 100.0),
    ):
        raw = to_raw(value, factor, ptype)
        assert raw is not None, (value, factor, ptype)
        back = from_raw(raw, factor)
        assert back is not None
        assert abs(back - value) <= step / 2 + 1e-6


def test_ratings_fit_a_large_pack() -> None:
    info = BatteryInfo(
        capacity_ah=2000.0, nominal_voltage_v=1000.0, max_charge_a=2000.0, max_discharge_a=2000.0
    )
    bmap = BatteryMap(info)
    p = battery_points(make_output(), info, bmap.sf, LinkState(), bmap.battery)
    assert from_raw(p["WHRtg"], bmap.sf.wh_rtg) == pytest.approx(2e6, rel=1e-3)
    assert from_raw(p["WChaRteMax"], bmap.sf.w_rtg) == pytest.approx(2e6, rel=1e-3)
    assert from_raw(p["AHRtg"], bmap.sf.ah_rtg) == pytest.approx(2000.0)


def test_battery_info_from_config() -> None:
    cfg = SunSpecConfig(serial="X1", cells_per_module=8)
    info = BatteryInfo.from_config(cfg, cells=16, nominal_cell_v=3.2, capacity_ah=280.0)
    assert info.nominal_voltage_v == pytest.approx(51.2)
    assert info.serial == "X1"
    assert info.cells_per_module == 8


def test_limits_round_toward_safety() -> None:
    bmap = BatteryMap(BatteryInfo())
    out = make_output(ccl_a=0.475, dcl_a=12.39, cvl_v=56.87, dvl_v=43.21)
    p = battery_points(out, bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert p["AChaMax"] == 4  # 0.4 A, not 0.5 A
    assert p["ADisChaMax"] == 123
    assert p["VMax"] == 568
    assert p["VMin"] == 433
    exact = battery_points(make_output(ccl_a=0.3), bmap.info, bmap.sf, LinkState(), bmap.battery)
    assert exact["AChaMax"] == 3  # an exact step stays where it is


@given(ccl=st.floats(0.0, 2000.0), dvl=st.floats(1.0, 1000.0))
def test_published_limits_never_exceed_the_computed_ones(ccl: float, dvl: float) -> None:
    bmap = BatteryMap(BatteryInfo())
    p = battery_points(
        make_output(ccl_a=ccl, dvl_v=dvl), bmap.info, bmap.sf, LinkState(), bmap.battery
    )
    published = from_raw(p["AChaMax"], bmap.sf.amax)
    vmin = from_raw(p["VMin"], bmap.sf.v)
    assert published is not None
    assert vmin is not None
    assert ccl - 0.1 - 1e-6 <= published <= ccl + 1e-6
    assert dvl - 1e-6 <= vmin <= dvl + 0.1 + 1e-6


@pytest.mark.parametrize(
    ("cells", "max_a", "w_sf", "a_sf"),
    [
        (16, 100.0, 0, -1),  # 5.1 kW: power to 1 W
        (16, 600.0, 0, -1),  # 30.7 kW: still 1 W (int16 reaches 32,767 W)
        (110, 100.0, 1, -1),  # 35.2 kW: 10 W
        (16, 2000.0, 1, 0),  # 102 kW: 10 W, and 4,000 A of over-current range needs 1 A
    ],
)
def test_scale_factors_are_fitted_to_the_pack(
    cells: int, max_a: float, w_sf: int, a_sf: int
) -> None:
    info = BatteryInfo(nominal_voltage_v=cells * 3.2, max_charge_a=max_a, max_discharge_a=max_a)
    sf = BatteryMap(info).sf
    rating_w = cells * 3.2 * max_a
    assert sf.w == w_sf, rating_w
    assert sf.a == a_sf
    # The whole range reads without overflow at that resolution.
    assert to_raw(rating_w, sf.w, "int16") is not None
    assert to_raw(-2.0 * max_a, sf.a, "int16") is not None
    assert to_raw(max_a, sf.amax, "uint16") is not None
    assert to_raw(1.5 * cells * 3.2, sf.v, "uint16") is not None
