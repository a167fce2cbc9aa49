"""Chemistry tables: the shipped PyBaMM tables, the OCV curve and its lookups."""

from __future__ import annotations

import math

import pytest

from gateway.core.chemistry import CHEMISTRIES, OcvTable, get_chemistry


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_shipped_tables_span_the_voltage_window(name: str) -> None:
    chem = get_chemistry(name)
    table = chem.ocv
    assert table.soc_pct[0] == 0.0
    assert table.soc_pct[-1] == 100.0
    assert len(table.soc_pct) > 50  # generated, not a hand-typed handful
    # 0 % is the end-of-discharge voltage; full is at or just below the end-of-charge voltage.
    assert table.voltage(0.0) == pytest.approx(chem.min_v, abs=0.01)
    assert chem.max_v - 0.06 <= table.voltage(100.0) <= chem.max_v
    assert chem.min_v < chem.nominal_v < chem.max_v
    assert "PyBaMM" in chem.source


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_ocv_lookup_inverts_where_the_curve_rises(name: str) -> None:
    table = get_chemistry(name).ocv
    for soc in (3.0, 10.0, 25.0, 50.0, 75.0, 90.0, 99.0):
        if table.slope(soc) > 1e-4:
            assert table.soc(table.voltage(soc)) == pytest.approx(soc, abs=0.05)


def test_lfp_is_flat_in_the_middle_and_nmc_is_not() -> None:
    lfp, nmc = get_chemistry("lfp").ocv, get_chemistry("nmc").ocv
    # Volts per percent over 40..70 %: LFP a fraction of a mV, NMC several mV.
    lfp_slope = (lfp.voltage(70.0) - lfp.voltage(40.0)) / 30.0
    nmc_slope = (nmc.voltage(70.0) - nmc.voltage(40.0)) / 30.0
    assert lfp_slope < 0.001
    assert nmc_slope > 0.005


@pytest.mark.parametrize("name", CHEMISTRIES)
def test_resistance_falls_with_temperature_and_scales_with_capacity(name: str) -> None:
    chem = get_chemistry(name)
    assert chem.r_temp_factor(25.0) == pytest.approx(1.0)
    assert chem.r0_ohm(100.0, 0.0) > chem.r0_ohm(100.0) > chem.r0_ohm(100.0, 40.0)
    # Outside the table the factor is clamped, never extrapolated to zero or below.
    assert chem.r_temp_factor(-40.0) == chem.r_temp_factor(0.0)
    assert chem.r0_ohm(200.0) == pytest.approx(chem.r0_ohm(100.0) / 2)
    assert chem.r1_ohm(50.0) > 0
    assert chem.tau1_s > 0


def test_unknown_chemistry_is_named() -> None:
    with pytest.raises(ValueError, match="'lead'"):
        get_chemistry("lead")


def test_table_invariants_are_enforced_on_construction() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        OcvTable((0.0, 0.0), (3.0, 3.1))
    with pytest.raises(ValueError, match="must not decrease"):
        OcvTable((0.0, 100.0), (3.0, 2.9))
    with pytest.raises(ValueError, match="one value per row"):
        OcvTable((0.0, 100.0), (3.0, 3.1), (0.1,))


def test_flat_stretch_lookup_returns_its_middle() -> None:
    table = OcvTable((0.0, 20.0, 80.0, 100.0), (3.0, 3.3, 3.3, 3.6))
    assert table.soc(3.3) == pytest.approx(50.0)
    assert table.slope(50.0) == 0.0
    assert math.isclose(table.soc(2.0), 0.0)
    assert math.isclose(table.soc(4.0), 100.0)
