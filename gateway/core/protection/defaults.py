"""Chemistry defaults of the protection thresholds, for every threshold left unset."""

from __future__ import annotations

__all__ = ["C_RATE_KEYS", "PROTECTION_DEFAULTS"]

# Chemistry defaults for every threshold left unset. Currents are C-rates (times capacity_ah).
# LFP: cells rated 2.5..3.65 V, charge 0..55 degC, discharge -20..60 degC (typical prismatic
# datasheets). NMC: 3.0..4.2 V, charge 0..45 degC, discharge -20..60 degC.
PROTECTION_DEFAULTS: dict[str, dict[str, float]] = {
    "lfp": {
        "cell_overvoltage_warning_v": 3.55,
        "cell_overvoltage_alarm_v": 3.65,
        "cell_undervoltage_warning_v": 2.80,
        "cell_undervoltage_alarm_v": 2.50,
        "voltage_hysteresis_v": 0.05,
        "charge_temp_min_warning_c": 0.0,
        "charge_temp_min_alarm_c": -5.0,
        "charge_temp_max_warning_c": 50.0,
        "charge_temp_max_alarm_c": 55.0,
        "discharge_temp_min_warning_c": -10.0,
        "discharge_temp_min_alarm_c": -20.0,
        "discharge_temp_max_warning_c": 55.0,
        "discharge_temp_max_alarm_c": 60.0,
        "temp_hysteresis_c": 2.0,
        "overcurrent_charge_warning_a": 1.1,
        "overcurrent_charge_alarm_a": 1.3,
        "overcurrent_discharge_warning_a": 1.1,
        "overcurrent_discharge_alarm_a": 1.5,
        "current_hysteresis_a": 0.05,
        "voltage_imbalance_warning_v": 0.10,
        "voltage_imbalance_alarm_v": 0.30,
        "voltage_imbalance_hysteresis_v": 0.02,
        "temp_imbalance_warning_c": 8.0,
        "temp_imbalance_alarm_c": 15.0,
    },
    "nmc": {
        "cell_overvoltage_warning_v": 4.20,
        "cell_overvoltage_alarm_v": 4.25,
        "cell_undervoltage_warning_v": 3.10,
        "cell_undervoltage_alarm_v": 3.00,
        "voltage_hysteresis_v": 0.05,
        "charge_temp_min_warning_c": 0.0,
        "charge_temp_min_alarm_c": -5.0,
        "charge_temp_max_warning_c": 45.0,
        "charge_temp_max_alarm_c": 50.0,
        "discharge_temp_min_warning_c": -15.0,
        "discharge_temp_min_alarm_c": -20.0,
        "discharge_temp_max_warning_c": 55.0,
        "discharge_temp_max_alarm_c": 60.0,
        "temp_hysteresis_c": 2.0,
        "overcurrent_charge_warning_a": 0.8,
        "overcurrent_charge_alarm_a": 1.0,
        "overcurrent_discharge_warning_a": 2.0,
        "overcurrent_discharge_alarm_a": 2.5,
        "current_hysteresis_a": 0.05,
        "voltage_imbalance_warning_v": 0.10,
        "voltage_imbalance_alarm_v": 0.25,
        "voltage_imbalance_hysteresis_v": 0.02,
        "temp_imbalance_warning_c": 8.0,
        "temp_imbalance_alarm_c": 15.0,
    },
}

C_RATE_KEYS: frozenset[str] = frozenset(
    (
        "overcurrent_charge_warning_a",
        "overcurrent_charge_alarm_a",
        "overcurrent_discharge_warning_a",
        "overcurrent_discharge_alarm_a",
        "current_hysteresis_a",
    )
)
"""Thresholds given as C-rates: the resolved value is the default times ``capacity_ah``."""
