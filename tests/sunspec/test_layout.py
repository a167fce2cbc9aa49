"""Pure tests of the SunSpec register layout: pysunspec2's definitions, encoding, scaling."""

from __future__ import annotations

import pytest
import sunspec2.device as ss_device
from hypothesis import given
from hypothesis import strategies as st

from gateway.sunspec.layout import RAW_RANGE, ModelLayout, encode_point, fit_sf, to_raw


@pytest.mark.parametrize("model_id", [1, 124, 702, 802])
def test_layout_length_matches_pysunspec2(model_id: int) -> None:
    lay = ModelLayout.from_definition(model_id)
    ref = ss_device.Model(model_id)
    assert lay.size == ref.len  # both count ID and L
    assert list(lay.points) == list(ref.points)


def test_unknown_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="model 9999"):
        ModelLayout.from_definition(9999)


def test_out_of_range_measurement_is_not_implemented_and_limit_clamps() -> None:
    assert to_raw(7000.0, -1, "uint16") is None  # 70,000 does not fit: unknown, not wrapped
    assert to_raw(7000.0, -1, "uint16", clamp=True) == 65534
    assert to_raw(float("nan"), -1) is None
    assert to_raw(None, -1) is None


def test_fit_sf_picks_the_finest_that_fits() -> None:
    assert fit_sf(100.0, finest=-1) == -1
    assert fit_sf(10_000.0, finest=-1) == 0
    assert fit_sf(2_000_000.0) == 2


@pytest.mark.parametrize("model_id", [124, 702, 802])
@given(data=st.data())
def test_fast_encoder_matches_pysunspec2_point_encoder(model_id: int, data: st.DataObject) -> None:
    lay = ModelLayout.from_definition(model_id)
    values: dict[str, int | None] = {}
    for p in list(lay.points.values())[2:]:
        lo, hi = RAW_RANGE.get(p.type, (0, 0))
        values[p.name] = data.draw(st.none() | st.integers(lo, hi), label=p.name)
    fast = lay.encode(values)
    slow = [model_id, lay.length]
    for p in list(lay.points.values())[2:]:
        slow += encode_point(p, values[p.name])
    assert fast == slow
    back = lay.decode(fast)
    assert all(back[n] == v for n, v in values.items() if v is not None)
