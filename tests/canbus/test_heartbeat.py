"""``GW_Heartbeat`` signal values (``gateway.canbus.heartbeat``), encoded with ``dbc/bms.dbc``."""

from __future__ import annotations

import dataclasses

import pytest

from gateway.canbus.config import CanConfig
from gateway.canbus.decode import load_decoder
from gateway.canbus.heartbeat import heartbeat_signals
from gateway.core.model import Alarm, AlarmReport, Severity
from tests.inverter_can.outputs import output


@pytest.mark.parametrize(
    ("mode", "code"), [("starting", 0), ("normal", 1), ("fault", 2), ("stale", 3), ("odd", 2)]
)
def test_mode_codes_are_the_dbc_ones_and_an_unknown_mode_is_a_fault(mode: str, code: int) -> None:
    out = dataclasses.replace(output(), mode=mode)
    assert heartbeat_signals(out, 7)["Mode"] == code


def test_limits_alarms_and_balancing_cells() -> None:
    worst = AlarmReport(active=(Alarm("cell_overvoltage", Severity.ALARM, "x", 1.0),))
    out = output(ccl_a=80.0, dcl_a=9000.0, alarms=worst, bleed=(2, 5, 7))
    sig = heartbeat_signals(out, 255)
    assert sig["Counter"] == 255
    assert sig["ChargeLimit"] == 80.0
    assert sig["DischargeLimit"] == 6553.5  # the signal's top, not a wrapped value
    assert sig["WorstSeverity"] == int(Severity.ALARM)
    assert sig["BalancingCells"] == 3


def test_the_values_encode_with_the_dbc() -> None:
    decoder = load_decoder(CanConfig())
    frame = decoder.encode("GW_Heartbeat", heartbeat_signals(output(bleed=(1,)), 3))
    assert len(frame.data) == 8
