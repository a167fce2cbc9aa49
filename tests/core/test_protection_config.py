"""The protection catalogue, chemistry defaults and settings section on their own (pure)."""

from __future__ import annotations

from dataclasses import fields

import pytest

from gateway.core.pack import PackConfig
from gateway.core.protection import Protection
from gateway.core.protection.alarms import ALARMS, LATCHING_DEFAULT
from gateway.core.protection.config import ProtectionConfig, ProtectionThresholds
from gateway.core.protection.defaults import C_RATE_KEYS, PROTECTION_DEFAULTS

PACK4 = PackConfig(cells=4, temp_sensors=2)


# --- alarms: the catalogue -------------------------------------------------------------------


def test_catalogue_codes_match_their_keys_and_every_latch_is_a_known_code() -> None:
    assert all(spec.code == code for code, spec in ALARMS.items())
    assert set(LATCHING_DEFAULT) <= set(ALARMS)
    assert "measurement_fault" not in LATCHING_DEFAULT
    assert ProtectionConfig().latching == LATCHING_DEFAULT


def test_which_limits_an_alarm_cuts() -> None:
    assert ALARMS["cell_overvoltage"].cuts_charge
    assert not ALARMS["cell_overvoltage"].cuts_discharge
    assert ALARMS["cell_undervoltage"].cuts_discharge
    assert not ALARMS["cell_undervoltage"].cuts_charge
    assert not ALARMS["soc_low"].cuts_charge
    assert not ALARMS["soc_low"].cuts_discharge
    near_top = [c for c, s in ALARMS.items() if s.charge_cut_near_top_only]
    assert near_top == ["voltage_imbalance"]


# --- defaults: per chemistry -----------------------------------------------------------------


def test_every_chemistry_defaults_the_same_thresholds_and_each_is_a_threshold() -> None:
    names = {f.name for f in fields(ProtectionThresholds)}
    keys = {chem: set(d) for chem, d in PROTECTION_DEFAULTS.items()}
    assert keys["lfp"] == keys["nmc"]
    assert keys["lfp"] <= names
    # The pack voltage mismatch defaults scale with the cell count instead.
    assert names - keys["lfp"] == {
        "pack_voltage_mismatch_warning_v",
        "pack_voltage_mismatch_alarm_v",
    }
    assert keys["lfp"] >= C_RATE_KEYS


@pytest.mark.parametrize("chemistry", sorted(PROTECTION_DEFAULTS))
def test_defaults_resolve_in_order(chemistry: str) -> None:
    pack = PackConfig(cells=16, chemistry=chemistry, capacity_ah=280.0)
    th = ProtectionConfig().resolve(pack)  # check() runs inside: order and bounds hold
    d = PROTECTION_DEFAULTS[chemistry]
    assert th.overcurrent_charge_alarm_a == pytest.approx(d["overcurrent_charge_alarm_a"] * 280.0)
    assert th.cell_overvoltage_alarm_v == d["cell_overvoltage_alarm_v"]
    assert th.pack_voltage_mismatch_warning_v == pytest.approx(0.05 * 16)
    assert th.pack_voltage_mismatch_alarm_v == pytest.approx(0.20 * 16)


# --- config: the settings section and its resolved thresholds -------------------------------


def test_defaults_per_chemistry_and_override_keeps_the_rest() -> None:
    lfp = Protection(ProtectionConfig(), PACK4).thresholds
    nmc = Protection(ProtectionConfig(), PackConfig(cells=4, chemistry="nmc")).thresholds
    assert lfp.cell_overvoltage_alarm_v == PROTECTION_DEFAULTS["lfp"]["cell_overvoltage_alarm_v"]
    assert nmc.cell_overvoltage_alarm_v == PROTECTION_DEFAULTS["nmc"]["cell_overvoltage_alarm_v"]
    assert lfp.overcurrent_charge_alarm_a == pytest.approx(1.3 * 100.0)
    own = Protection(ProtectionConfig(cell_overvoltage_alarm_v=3.62), PACK4).thresholds
    assert own.cell_overvoltage_alarm_v == 3.62
    assert own.cell_overvoltage_warning_v == lfp.cell_overvoltage_warning_v


def test_thresholds_out_of_order_name_the_keys() -> None:
    with pytest.raises(ValueError, match=r"cell_overvoltage_warning_v.*cell_overvoltage_alarm_v"):
        Protection(ProtectionConfig(cell_overvoltage_warning_v=3.70), PACK4)
    with pytest.raises(ValueError, match="latching"):
        ProtectionConfig(latching=("no_such_alarm",))


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("cell_overvoltage_alarm_v", 12.0, r"protection.cell_overvoltage_alarm_v \(=12.0\)"),
        ("stale_alarm_s", 4000.0, r"protection.stale_alarm_s \(=4000.0\) must be within"),
        ("charge_temp_max_alarm_c", -80.0, "protection.charge_temp_max_alarm_c"),
        ("disobedience_margin_fraction", 1.5, "protection.disobedience_margin_fraction"),
    ],
)
def test_a_value_out_of_its_unit_bounds_names_the_key(key: str, value: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ProtectionConfig(**{key: value})


def test_cross_field_rules_name_both_keys() -> None:
    with pytest.raises(ValueError, match="measurement_fault clears by itself"):
        ProtectionConfig(latching=("measurement_fault",))
    with pytest.raises(ValueError, match=r"soc_low_alarm_pct.*soc_low_warning_pct"):
        ProtectionConfig(soc_low_warning_pct=5.0, soc_low_alarm_pct=5.0)
    with pytest.raises(ValueError, match=r"disobedience_warning_s.*disobedience_alarm_s"):
        ProtectionConfig(disobedience_warning_s=60.0, disobedience_alarm_s=60.0)


def test_unknown_key_is_an_error() -> None:
    with pytest.raises(ValueError, match="no_such_key"):
        ProtectionConfig(no_such_key=1.0)  # type: ignore[call-arg]
