"""The load-bias evidence pooled over a pack's cells: shared, faded once per step, saved."""

from __future__ import annotations

import pytest

from gateway.core.soc import SocEstimator
from gateway.core.soc_correct import FULL_VAR
from gateway.core.soc_offset import BIAS_Q_MAX, learn_load_bias
from tests.core.test_soc import EcmPack, drive, make


def started(cells: int = 3) -> SocEstimator:
    """An LFP estimator whose cells have all started (one step at rest)."""
    est, chem = make("lfp", cells=cells)
    drive(est, EcmPack(chem, [60.0] * cells, [100.0] * cells), [0.0])
    return est


def biased_test(est: SocEstimator, k: int) -> None:
    """Cell ``k`` carried 6 points of load bias and a trusted point finds it 0.2 off: the bias
    did not hold."""
    cell = est.cells[k]
    cell.sb = 6.0
    cell.p00 = 0.25
    cell.restart_count(cell.p00)
    assert learn_load_bias(cell, est._tune, cell.soc_pct - 0.2, FULL_VAR)


def test_a_trusted_point_on_one_cell_moves_every_cells_share() -> None:
    est = started()
    assert all(c.bias_m == 1.0 for c in est.cells)
    biased_test(est, 0)
    m = est.cells[0].bias_m
    assert m < 0.9
    # The model that makes the bias is the pack's: every cell carries the learned share.
    assert [c.bias_m for c in est.cells] == [m, m, m]
    for c in est.cells[1:]:
        c.sb = 6.0
        assert c.bias_var() == pytest.approx(m * 36.0)
    # A second cell's test adds to the same evidence.
    biased_test(est, 2)
    assert all(c.bias_m < m for c in est.cells)


def test_the_evidence_fades_once_per_step_whatever_the_cell_count() -> None:
    ms = []
    for n in (1, 8):
        est = started(n)
        biased_test(est, 0)
        pack = EcmPack(est.chemistry, [60.0] * n, [100.0] * n)
        drive(est, pack, [0.0] * 48, t0_s=1.0, dt_s=3600.0)
        ms.append(est.cells[-1].bias_m)
    # Faded for two days of fifteen, the same for 1 cell as for 8.
    assert ms[0] == pytest.approx(ms[1])
    assert 0.5 < ms[0] < 1.0


def test_the_pooled_evidence_is_saved_and_restored() -> None:
    est = started()
    biased_test(est, 1)
    state = est.export_state()
    assert state["load_bias_weight"] > 0.0
    est2 = started()
    assert est2.restore(state) == []
    assert [c.bias_m for c in est2.cells] == pytest.approx([est.cells[1].bias_m] * 3)
    # Restored, the cells still share one pool.
    biased_test(est2, 0)
    assert len({c.bias_m for c in est2.cells}) == 1
    assert est2.cells[2].bias_m < est.cells[1].bias_m


def test_a_state_without_the_evidence_starts_from_the_claim() -> None:
    est = started()
    biased_test(est, 1)
    state = est.export_state()
    del state["load_bias_weight"], state["load_bias_weighted_sq"]
    est2 = started()
    biased_test(est2, 0)
    est2.restore(state)
    assert all(c.bias_m == 1.0 and c.bias.w == 0.0 for c in est2.cells)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"load_bias_weight": -1.0}, "load_bias_weight"),
        ({"load_bias_weight": "2"}, "load_bias_weight"),
        ({"load_bias_weight": True}, "load_bias_weight"),
        ({"load_bias_weight": float("nan")}, "load_bias_weight"),
        ({"load_bias_weighted_sq": -0.1}, "load_bias_weighted_sq"),
        ({"load_bias_weighted_sq": None}, "load_bias_weighted_sq"),
        ({"load_bias_weight": 1.0, "load_bias_weighted_sq": BIAS_Q_MAX + 1.0}, "weighted_sq"),
    ],
)
def test_malformed_pooled_evidence_is_refused_and_changes_nothing(
    change: dict[str, object], message: str
) -> None:
    est = started()
    biased_test(est, 0)
    before = est.export_state()
    with pytest.raises(ValueError, match=message):
        est.restore({**before, **change})
    assert est.export_state() == before


def test_one_of_the_two_values_alone_is_refused() -> None:
    est = started()
    state = est.export_state()
    del state["load_bias_weighted_sq"]
    with pytest.raises(ValueError, match="load_bias_weighted_sq"):
        est.restore(state)
