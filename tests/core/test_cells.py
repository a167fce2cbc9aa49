"""core/cells.py: the one cell-extreme helper and the one cell sum, and who uses them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.core.cells import cell_sum_v, extremes
from gateway.core.energy import pack_power_w
from gateway.core.model import PackSnapshot
from tests.core.packdata import snapshot

_VALUE = st.one_of(st.none(), st.floats(2.0, 4.5, allow_nan=False))


def test_extremes_skip_unknown_values_and_give_0_based_indices() -> None:
    assert extremes((3.3, 3.1, 3.5, 3.2)) == (3.1, 1, 3.5, 2)
    assert extremes((None, 3.4, None, 3.2)) == (3.2, 3, 3.4, 1)
    assert extremes([3.3]) == (3.3, 0, 3.3, 0)  # any sequence, a list too
    assert extremes((None, None)) is None
    assert extremes(()) is None


def test_extremes_name_the_first_cell_of_a_tie() -> None:
    # Quantised readings tie often (1 mV steps); the first cell wins both ends, as every
    # consumer (limits, protection, the view, battery CAN) reports it.
    assert extremes((3.2, 3.4, 3.2, 3.4)) == (3.2, 0, 3.4, 1)
    assert extremes((None, 3.4, 3.4, None, 3.2, 3.2)) == (3.2, 4, 3.4, 1)


@given(st.lists(_VALUE, max_size=40))
def test_extremes_agree_with_a_plain_scan(values: list[float | None]) -> None:
    known = [(v, i) for i, v in enumerate(values) if v is not None]
    got = extremes(values)
    if not known:
        assert got is None
        return
    lo = min(v for v, _ in known)
    hi = max(v for v, _ in known)
    first_lo = next(i for v, i in known if v == lo)
    first_hi = next(i for v, i in known if v == hi)
    assert got == (lo, first_lo, hi, first_hi)


def test_cell_sum_needs_every_cell() -> None:
    assert cell_sum_v((3.3, 3.2, 3.1)) == pytest.approx(9.6)
    assert cell_sum_v((3.3, None, 3.1)) is None
    assert cell_sum_v(()) is None


def test_cell_sum_is_exactly_rounded_whatever_the_order() -> None:
    # ``sum`` gives 0.9999999999999999 here; the one helper gives the exact 1.0 in any order.
    cells = (0.1,) * 10
    assert sum(cells) != 1.0
    assert cell_sum_v(cells) == 1.0
    mixed = (1e16, 3.3, -1e16, 3.2)
    assert cell_sum_v(mixed) == math.fsum(mixed) == cell_sum_v(tuple(reversed(mixed)))


def test_the_snapshot_and_its_consumers_use_the_same_extremes_and_sum() -> None:
    snap = snapshot((3.30, 3.35, 3.28, 3.35), (24.0, 26.0), current_a=10.0)
    assert (snap.min_cell_v, snap.max_cell_v) == (3.28, 3.35)
    # No measured pack voltage: the snapshot carries the cell sum, and the power uses it.
    assert snap.pack_voltage_v == cell_sum_v(snap.cell_voltage_v)
    power = pack_power_w(snap, 2.0, 5.0)
    assert power is not None
    assert power == pytest.approx(10.0 * math.fsum((3.30, 3.35, 3.28, 3.35)))


def test_unknown_cells_have_no_extremes_and_no_power_from_the_cells() -> None:
    snap = PackSnapshot(
        t_s=0.0,
        cell_voltage_v=(None, None),
        cell_voltage_age_s=(None, None),
        cell_temp_c=(None,),
        cell_temp_age_s=(None,),
        current_a=5.0,
        current_age_s=0.0,
        pack_voltage_v=None,
        pack_voltage_age_s=None,
        balancing_active=(False, False),
        complete=False,
    )
    assert snap.min_cell_v is None
    assert snap.max_cell_v is None
    assert pack_power_w(snap, 2.0, 5.0) is None
