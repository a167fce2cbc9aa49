"""Pure tests of the client mode's storage control: model 124 and model 702, both ways."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.sunspec.storage_control import (
    limits_from_124,
    limits_from_702,
    setpoints_124,
    setpoints_702,
)


@given(
    ccl=st.floats(0.0, 2000.0),
    dcl=st.floats(0.0, 2000.0),
    volts=st.floats(40.0, 1000.0),
    max_w=st.floats(1000.0, 100_000.0),
)
def test_124_setpoints_never_exceed_the_request(
    ccl: float, dcl: float, volts: float, max_w: float
) -> None:
    in_raw, out_raw = setpoints_124(ccl, dcl, volts, max_w, -2)
    acc_c, acc_d = limits_from_124(in_raw, out_raw, -2, max_w, volts)
    assert acc_c is not None
    assert acc_d is not None
    assert acc_c <= ccl + 1e-6
    assert acc_d <= dcl + 1e-6
    # Within one step (0.01 % of WChaMax) of the request, or capped at 100 %.
    assert acc_c >= min(ccl, max_w / volts) - max_w / volts * 1e-4 - 1e-6


def test_124_unknown_voltage_fails_safe() -> None:
    assert setpoints_124(50.0, 50.0, None, 5000.0, -1) == (0, 0)
    assert setpoints_124(50.0, 50.0, 51.2, 0.0, -1) == (0, 0)


def test_702_round_trip() -> None:
    cha, dis = setpoints_702(50.0, 20.0, 50.0, 0)
    assert (cha, dis) == (2500, 1000)
    assert limits_from_702(cha, dis, 0, 50.0) == (pytest.approx(50.0), pytest.approx(20.0))
    assert setpoints_702(50.0, 20.0, None, 0) == (0, 0)
