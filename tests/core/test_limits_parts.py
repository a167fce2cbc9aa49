"""The limits' parts on their own: the ramp, the picking of a winner, the resolved tables."""

from __future__ import annotations

import pytest

from gateway.core.limits_config import LIMITS_DEFAULTS, LimitsConfig, LimitTables
from gateway.core.limits_ramp import Ramp, pick_max, pick_min
from gateway.core.model import LimitTerm, TermKind
from gateway.core.pack import PackConfig
from gateway.core.tables import Table


def test_the_ramp_cuts_at_once_holds_then_rises_at_its_rate() -> None:
    ramp = Ramp(rate_per_s=5.0, hold_s=10.0, start=0.0)
    ramp.last_cut_s = 0.0
    assert ramp.step(100.0, 0.0) == 0.0
    assert ramp.step(100.0, 9.0) == 0.0  # inside the hold
    assert ramp.step(100.0, 11.0) == 10.0  # 2 s at 5 A/s (the hold ended at 10 s)
    assert ramp.step(100.0, 12.0) == 15.0
    assert ramp.step(3.0, 13.0) == 3.0  # a cut applies in the same step
    assert ramp.step(100.0, 20.0) == 3.0  # and restarts the hold
    assert ramp.step(100.0, 24.0) == 23.0  # past it: the rate over this step's 4 s


def test_a_small_dip_inside_the_deadband_does_not_restart_the_hold() -> None:
    ramp = Ramp(rate_per_s=1.0, hold_s=30.0, start=50.0, deadband=5.0)
    assert ramp.step(48.0, 100.0) == 48.0  # 2 A down: cut, but no new hold
    assert ramp.step(50.0, 101.0) == 49.0  # rises again at once
    assert ramp.step(40.0, 102.0) == 40.0  # 9 A down: a new hold
    assert ramp.step(50.0, 120.0) == 40.0


def test_rearm_restarts_the_hold_even_at_the_same_value() -> None:
    ramp = Ramp(rate_per_s=10.0, hold_s=5.0, start=0.0)
    ramp.step(0.0, 0.0, rearm=True)
    assert ramp.step(100.0, 4.0) == 0.0
    ramp.step(0.0, 4.5, rearm=True)  # a fault term still holds the limit
    assert ramp.step(100.0, 9.0) == 0.0
    assert ramp.step(100.0, 10.0) == 10.0


def test_a_ramp_without_a_start_starts_at_its_first_target() -> None:
    ramp = Ramp(rate_per_s=0.1, hold_s=10.0, start=None)
    assert ramp.step(55.2, 0.0) == 55.2


def test_the_first_of_equal_terms_wins() -> None:
    a = LimitTerm("bulk", 13.8, TermKind.PHASE)
    b = LimitTerm("max", 13.8, TermKind.CONFIGURED)
    c = LimitTerm("cell_high", 14.0)
    assert pick_min([a, b, c]) is a
    assert pick_min([c, b, a]) is b
    assert pick_max([a, b, c]) is c
    assert pick_max([a, b]) is a


def test_unset_tables_take_the_chemistry_defaults_and_own_ones_win() -> None:
    nmc = PackConfig(chemistry="nmc")
    tables = LimitsConfig().tables(nmc)
    xs, ys = LIMITS_DEFAULTS["nmc"]["charge_cell"]  # type: ignore[misc]
    assert tables.charge_cell(xs[1]) == pytest.approx(ys[1])
    assert tables.cvl_cell_v == LIMITS_DEFAULTS["nmc"]["cvl_cell_v"]
    own = LimitsConfig(
        charge_cell_v=(3.40, 3.50), charge_cell_fraction=(1.0, 0.0), cvl_cell_v=3.50
    ).tables(PackConfig())
    assert own.charge_cell(3.45) == pytest.approx(0.5)
    assert own.cvl_cell_v == 3.50
    assert own.dvl_cell_v == LIMITS_DEFAULTS["lfp"]["dvl_cell_v"]  # still the default


def test_the_config_names_the_bad_key() -> None:
    with pytest.raises(ValueError, match="charge_cell_v and charge_cell_fraction must be set"):
        LimitsConfig(charge_cell_v=(3.4, 3.5))
    with pytest.raises(ValueError, match=r"charge_cell_fraction \(=\(1.0, 1.5\)\)"):
        LimitsConfig(charge_cell_v=(3.4, 3.5), charge_cell_fraction=(1.0, 1.5))
    with pytest.raises(ValueError, match=r"ramp_hold_s\n.*less than or equal to 3600"):
        LimitsConfig(ramp_hold_s=7200.0)
    flat = Table.of((0.0, 1.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="dvl_cell_v"):
        LimitTables(
            charge_cell=flat,
            discharge_cell=flat,
            charge_temp=flat,
            discharge_temp=flat,
            charge_soc=flat,
            discharge_soc=flat,
            imbalance=flat,
            imbalance_start_cell_v=3.4,
            cvl_cell_v=3.0,
            dvl_cell_v=3.2,
        )
