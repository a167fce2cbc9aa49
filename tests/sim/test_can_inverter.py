"""The battery-CAN inverter simulator obeys limits, enable flags and the force-charge request
(frames built from the published layouts by hand here, independent of the gateway's DBC)."""

from __future__ import annotations

import struct

import can
import pytest

from gateway.sim.can_inverter import CanInverterSim, decode_frame


def _lv(frame_id: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=frame_id, is_extended_id=False, data=data)


def _hv(frame_id: int, data: bytes) -> can.Message:
    return can.Message(arbitration_id=frame_id, is_extended_id=True, data=data)


def _limits_351(ccl: float, dcl: float) -> bytes:
    return struct.pack("<HhhH", 552, round(ccl * 10), round(dcl * 10), 464)


def test_lv_sim_follows_limits_enable_flags_and_force_charge() -> None:
    want = [40.0]
    sim = CanInverterSim("pylon", demand_a=lambda _t: want[0], force_charge_a=15.0)
    assert sim.current_a(0.0) == 0.0  # no limit heard yet: leave the battery alone
    sim.handle(_lv(0x351, _limits_351(25.0, 30.0)))
    assert sim.current_a(0.0) == pytest.approx(25.0)  # follows CCL
    want[0] = -50.0
    assert sim.current_a(0.0) == pytest.approx(-30.0)  # follows DCL
    sim.handle(_lv(0x35C, bytes([0x80, 0])))  # charge enabled, discharge not
    assert sim.current_a(0.0) == 0.0
    sim.handle(_lv(0x35C, bytes([0x80 | 0x20, 0])))  # + force charge I
    assert sim.current_a(0.0) == pytest.approx(15.0)  # charges though the house wants power
    sim.handle(_lv(0x35C, bytes([0x20, 0])))  # force charge, but charge not enabled
    assert sim.current_a(0.0) == 0.0
    assert [(c, d) for _t, c, d in sim.limit_log] == [(25.0, 30.0), (25.0, 0.0), (0.0, 0.0)]


def test_hv_sim_reads_offsets_and_forbidden_marks() -> None:
    sim = CanInverterSim("pylon-hv", demand_a=lambda _t: -20.0)
    # CVL 400 V, DVL 300 V, CCL 25 A, DCL 12 A (sent as -12 A), raw = (A + 3000) * 10.
    sim.handle(_hv(0x4220, struct.pack("<HHHH", 4000, 3000, 30250, 29880)))
    assert (sim.ccl_a, sim.dcl_a) == (pytest.approx(25.0), pytest.approx(12.0))
    assert sim.current_a(0.0) == pytest.approx(-12.0)
    sim.handle(_hv(0x4280, bytes([0, 0xAA, 0, 0, 0, 0, 0, 0])))
    assert sim.current_a(0.0) == 0.0
    sim.handle(_hv(0x4250, bytes([0x08, 0, 0, 0, 0, 0, 0, 0])))  # force charge request
    assert sim.force_charge
    assert sim.current_a(0.0) == pytest.approx(10.0)
    sim.handle(_lv(0x351, _limits_351(99.0, 99.0)))  # an 11-bit frame: not HV, ignored
    assert sim.ccl_a == pytest.approx(25.0)


def test_short_frames_are_counted_not_decoded() -> None:
    sim = CanInverterSim("sma")
    sim.handle(_lv(0x351, b"\x14\x02"))
    assert sim.errors == 1
    assert sim.ccl_a is None
    with pytest.raises(ValueError, match="layout needs 8"):
        decode_frame(False, 0x351, b"\x14\x02")
