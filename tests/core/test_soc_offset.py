"""The count's arithmetic: the learned current offset, the signed gain and capacity parts, and
the reported sigma capped by the count's."""

from __future__ import annotations

import math

import pytest

from gateway.core.chemistry import Chemistry, get_chemistry
from gateway.core.pack import PackConfig
from gateway.core.soc import SocConfig, SocEstimator
from gateway.core.soc_cell import CellState, Tuning
from gateway.core.soc_correct import FULL_VAR
from gateway.core.soc_offset import BIAS_Q_MAX, learn_load_bias, learn_offset
from gateway.core.soc_predict import predict
from gateway.core.soc_report import ReportFigures, relative_sigma
from tests.core.test_soc_cell import Q, cell_at, step_of
from tests.core.test_soc_cell import setup as lfp_setup

HOUR = 3600.0


def setup(**cfg: float) -> tuple[Chemistry, Tuning]:
    return lfp_setup("lfp", **cfg)


def run(cell: CellState, tune: Tuning, current_a: float, hours: float, dt_s: float = 60.0) -> None:
    for _ in range(round(hours * HOUR / dt_s)):
        predict(cell, step_of(current_a, dt_s), tune, 0.0, 1.0)


def test_offset_is_learned_between_trusted_points_and_corrects_the_count() -> None:
    chem, tune = setup()
    cell = cell_at(chem, 100.0, 0.5)
    # A 0.1 A offset on 100 Ah at rest for 48 h: the count climbs 4.8 points.
    run(cell, tune, 0.1, 48.0)
    assert 4.7 < cell.count_soc_pct - 100.0 < 4.9
    var0 = cell.off_var
    assert learn_offset(cell, tune, 100.0, FULL_VAR)
    # Most of it learned, its sigma well below the prior (0.2 A).
    assert 0.05 < cell.off_c * Q < 0.15
    assert math.sqrt(cell.off_var) < 0.5 * math.sqrt(var0)
    cell.soc_pct = 100.0
    cell.restart_count(FULL_VAR)
    run(cell, tune, 0.1, 48.0)
    # The learned offset is subtracted: the count drifts less than half as far.
    assert abs(cell.count_soc_pct - 100.0) < 2.4


def test_a_learned_offset_grows_the_sigma_more_slowly() -> None:
    chem, tune = setup()

    def growth(cell: CellState) -> float:
        cell.p00 = 1.0
        cell.rc = cell.sc = cell.sg = cell.si = cell.sx = 0.0
        run(cell, tune, 0.0, 24.0)
        return math.sqrt(cell.sc * cell.sc)

    prior = cell_at(chem, 60.0, 1.0)
    learned = cell_at(chem, 60.0, 1.0)
    learned.off_var = (0.0005) ** 2
    g_prior, g_learned = growth(prior), growth(learned)
    assert g_prior == pytest.approx(100.0 * 0.002 * 24.0, rel=1e-6)
    assert g_learned < 0.35 * g_prior  # 0.0005 C learned, plus what came back in a day


def test_a_residual_beyond_the_gate_teaches_nothing() -> None:
    chem, tune = setup()
    cell = cell_at(chem, 60.0, 1.0)
    run(cell, tune, 0.0, 10.0)
    # A restored SoC 30 points off: not an offset.
    assert not learn_offset(cell, tune, 30.0, FULL_VAR)
    assert cell.off_c == 0.0
    assert math.isinf(cell.off_var) or cell.off_var == tune.offset_var_c2


def test_the_counts_gain_and_capacity_parts_follow_the_net_charge() -> None:
    chem, tune = setup(count_drift_pct_per_sqrt_h=0.0, current_offset_sigma_c=0.0)
    cell = cell_at(chem, 10.0, 0.5)
    run(cell, tune, 20.0, 4.0)  # +80 points
    mid = math.sqrt(cell.count_err_var)
    run(cell, tune, -20.0, 4.0)  # back to where it started
    end = math.sqrt(cell.count_err_var)
    # Gain (1 %) and capacity (2 %) errors over 80 points: about 2.4 points at the top ...
    assert mid > 2.0
    # ... and back to the start's 0.5 after the round trip (they cancel, as the errors do).
    assert end < 0.6
    # The bound on the corrections (``count_var``) keeps every step's part, whatever its sign.
    assert math.sqrt(cell.count_var) > mid


def test_reported_sigma_is_capped_by_the_count() -> None:
    chem, _ = setup()
    cell = cell_at(chem, 60.0, 1.0)
    cell.sb = 6.0  # a large load bias taken in by corrections
    cell.p00 = 4.0
    # The count since the last trusted point: sigma 1, the estimate 2 points from it.
    cell.count_soc_pct = 58.0
    cell.count_rand_var = 1.0
    assert cell.sigma_pct() == pytest.approx(math.sqrt(1.0 + 4.0))
    # A count far from the estimate: the filter's sigma stands.
    cell.count_soc_pct = 40.0
    assert cell.sigma_pct() == pytest.approx(math.sqrt(4.0 + 36.0))
    cell.count_soc_pct = math.nan
    assert cell.sigma_pct() == pytest.approx(math.sqrt(4.0 + 36.0))


def test_the_learned_offset_is_saved_and_restored() -> None:
    chem = get_chemistry("lfp")
    pack = PackConfig(cells=2, chemistry="lfp", capacity_ah=Q)
    est = SocEstimator(SocConfig(), pack, chem)
    est.cells[0].off_c = 0.001
    est.cells[0].off_var = 1e-6
    state = est.export_state()
    est2 = SocEstimator(SocConfig(), pack, chem)
    est2.restore(state)
    assert est2.cells[0].off_c == 0.001
    assert est2.cells[0].off_var == 1e-6
    assert math.isinf(est2.cells[1].off_var)
    # A state written before the offset was learned restores the prior.
    del state["current_offset_c"], state["current_offset_var"]
    est2.restore(state)
    assert est2.cells[0].off_c == 0.0


def test_a_restored_offset_or_resistance_never_exceeds_what_could_be_learned() -> None:
    # A state written under other settings, or edited, may hold an offset of 0.9 C (the file
    # format allows +-1 C): used, it would run the count down 90 % an hour.
    chem = get_chemistry("lfp")
    pack = PackConfig(cells=2, chemistry="lfp", capacity_ah=Q)
    est = SocEstimator(SocConfig(), pack, chem)
    est.cells[0].off_c, est.cells[0].off_var = 0.9, 1e-6
    est.cells[1].off_c, est.cells[1].off_var = -0.001, 1e-6
    est.cells[0].r0_ohm_25c = 50.0 * chem.r0_ohm(Q)
    state = est.export_state()
    cfg = SocConfig(current_offset_sigma_c=0.002, resistance_factor_max=2.0)
    est2 = SocEstimator(cfg, pack, chem)
    notes = est2.restore(state)
    assert est2.cells[0].off_c == pytest.approx(0.006)  # 3 prior sigmas
    assert est2.cells[1].off_c == -0.001  # within: kept
    assert len(notes) == 1
    assert "soc.current_offset_sigma_c" in notes[0]
    assert est2.cells[0].r0_ohm_25c == pytest.approx(2.0 * chem.r0_ohm(Q))
    # With offset learning off the saved offset is not applied at all.
    est3 = SocEstimator(SocConfig(current_offset_sigma_c=0.0), pack, chem)
    est3.restore(state)
    assert [c.off_c for c in est3.cells] == [0.0, 0.0]
    assert all(math.isinf(c.off_var) for c in est3.cells)
    assert est3.restore(est3.export_state()) == []


def test_resistance_bounds_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="resistance_factor_min"):
        SocConfig(resistance_factor_min=2.0, resistance_factor_max=1.0)


def test_the_count_cap_keeps_the_cells_own_relative_sigma() -> None:
    chem, _ = setup()
    cells = [cell_at(chem, 60.0, 1.0) for _ in range(3)]
    for c in cells:
        # The filter: 3 points common (offset), 1 point the cell's own; the count: 1.5 points.
        c.sc = 3.0
        c.p00 = 9.0 + 1.0
        c.count_soc_pct = c.soc_pct
        c.count_rand_var = 1.5**2
    rel = relative_sigma(cells)
    assert all(r == pytest.approx(1.0) for r in rel)  # the own part, not zero
    rep = ReportFigures(3, Q).refresh(cells, 0, 3)
    assert rep is not None
    for e in rep.cells:
        assert e.soc_sigma_pct == pytest.approx(1.5)  # capped by the count
        assert e.soc_rel_sigma_pct == pytest.approx(1.0)
    # Never above the reported sigma.
    for c in cells:
        c.count_rand_var = 0.5**2
    assert all(r == pytest.approx(0.5) for r in relative_sigma(cells))


def _biased(chem: Chemistry, sb: float, err: float) -> CellState:
    """A cell at 60 % +- 0.5 carrying a load bias ``sb`` (%), ``err`` points above the truth."""
    cell = cell_at(chem, 60.0 + err, 0.5)
    cell.sb = sb
    return cell


def filter_var(cell: CellState) -> float:
    """The filter's reported variance (the count's cap aside)."""
    return cell.p00 + cell.bias_var()


def test_load_bias_the_trusted_points_do_not_see_shrinks_the_sigma() -> None:
    chem, tune = setup()
    cell = _biased(chem, 6.0, 0.2)
    before = filter_var(cell)
    assert cell.bias_m == 1.0
    assert before == pytest.approx(0.25 + 36.0)
    # Three trusted points find the estimate within its filter sigma: the bias did not hold.
    for _ in range(3):
        cell.soc_pct = 60.2
        assert learn_load_bias(cell, tune, 60.0, FULL_VAR)
    # The claim (weight 3) against about 3 informative points that found none of it.
    assert 0.45 < cell.bias_m < 0.55
    assert filter_var(cell) < 0.55 * before
    # The evidence fades back towards the claim (15 days; the estimator fades it every step).
    for _ in range(15 * 144):
        cell.bias.fade(600.0, tune.bias_memory_s, tune.bias_prior_weight)
    assert 0.65 < cell.bias_m < 0.85


def test_load_bias_the_trusted_points_see_grows_the_sigma() -> None:
    chem, tune = setup()
    cell = _biased(chem, 3.0, 9.0)
    # The error is three times the claimed bias: honest means a larger sigma, bounded per point.
    assert learn_load_bias(cell, tune, 60.0, FULL_VAR)
    assert 1.0 < cell.bias_m <= BIAS_Q_MAX
    assert filter_var(cell) > 0.25 + 9.0


def test_a_point_where_the_bias_cannot_show_teaches_little() -> None:
    chem, tune = setup()
    # No bias carried: nothing to learn.
    cell = _biased(chem, 0.0, 0.0)
    assert not learn_load_bias(cell, tune, 60.0, FULL_VAR)
    assert cell.bias_m == 1.0
    # A bias small against the filter's own variance: the point weighs little.
    cell = _biased(chem, 0.3, 0.0)
    cell.p00 = 4.0
    assert learn_load_bias(cell, tune, 60.0, FULL_VAR)
    assert cell.bias_m > 0.99


def test_full_charge_tests_the_load_bias() -> None:
    chem, tune = setup()
    cell = cell_at(chem, 99.8, 0.5)
    cell.sb = 5.0
    run(cell, tune, 0.0, 1.0)
    learn_offset(cell, tune, 100.0, FULL_VAR)
    assert cell.bias_m < 0.9


def test_the_largest_bias_since_the_last_trusted_point_is_tested() -> None:
    chem, tune = setup()
    cell = cell_at(chem, 60.0, 0.5)
    # On the plateau the estimate carries 6 points of bias ...
    cell.sb = 6.0
    run(cell, tune, 0.0, 1.0)
    # ... then corrections on a steep part move it by 3 points and leave a small bias.
    cell.soc_pct += 3.0
    cell.sb = 0.5
    run(cell, tune, 0.0, 1.0)
    # The trusted point agrees with the count: the estimate of the moment it carried 6 points
    # was right, so the 6 points did not hold (now, 3 points off with 0.5 claimed, is not the
    # informative moment).
    assert learn_load_bias(cell, tune, cell.count_soc_pct, FULL_VAR)
    assert cell.bias_m < 0.8
    # The same, but the trusted point finds the count 6 points off: the bias held.
    cell = cell_at(chem, 60.0, 0.5)
    cell.sb = 6.0
    run(cell, tune, 0.0, 1.0)
    cell.sb = 0.5
    assert learn_load_bias(cell, tune, cell.count_soc_pct - 6.0, FULL_VAR)
    assert cell.bias_m > 0.95
