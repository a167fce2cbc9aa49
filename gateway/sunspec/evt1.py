"""SunSpec model 802 ``Evt1``: the bit field of the battery's alarms, from the core's alarm codes.

The core names its alarms (``gateway.core.protection.ALARMS``); this adapter maps each code to
the ``Evt1`` symbol of its warning and of its alarm level. ``evt1_of`` builds the bit field of
an ``AlarmReport``: a warning sets its warning bit, an alarm its alarm bit and, while its
warning level holds too (``Alarm.warning_too``), the warning bit as well, so a client reading
only warnings still sees it. Codes without an ``Evt1`` meaning (the health trend warnings) set
no bit.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.core.model import AlarmReport, Severity

__all__ = ["ALARM_EVT1", "EVT1_BITS", "alarm_mask", "evt1_of", "warning_mask"]

# SunSpec model 802 ``Evt1`` symbols and bit numbers. These are pysunspec2's definition
# (sunspec2/models/json/model_802.json); tests/sunspec/test_evt1.py checks every name and number
# against that file, so this table cannot drift from it (and the hot path reads no file).
EVT1_BITS: Mapping[str, int] = {
    "COMMUNICATION_ERROR": 0,
    "OVER_TEMP_ALARM": 1,
    "OVER_TEMP_WARNING": 2,
    "UNDER_TEMP_ALARM": 3,
    "UNDER_TEMP_WARNING": 4,
    "OVER_CHARGE_CURRENT_ALARM": 5,
    "OVER_CHARGE_CURRENT_WARNING": 6,
    "OVER_DISCHARGE_CURRENT_ALARM": 7,
    "OVER_DISCHARGE_CURRENT_WARNING": 8,
    "OVER_VOLT_ALARM": 9,
    "OVER_VOLT_WARNING": 10,
    "UNDER_VOLT_ALARM": 11,
    "UNDER_VOLT_WARNING": 12,
    "UNDER_SOC_MIN_ALARM": 13,
    "UNDER_SOC_MIN_WARNING": 14,
    "VOLTAGE_IMBALANCE_WARNING": 17,
    "TEMPERATURE_IMBALANCE_ALARM": 18,
    "TEMPERATURE_IMBALANCE_WARNING": 19,
    "OTHER_ALARM": 25,
    "OTHER_WARNING": 26,
    "CONFIGURATION_ALARM": 28,
    "CONFIGURATION_WARNING": 29,
}

ALARM_EVT1: Mapping[str, tuple[str, str]] = {
    "cell_overvoltage": ("OVER_VOLT_WARNING", "OVER_VOLT_ALARM"),
    "cell_undervoltage": ("UNDER_VOLT_WARNING", "UNDER_VOLT_ALARM"),
    "charge_overtemperature": ("OVER_TEMP_WARNING", "OVER_TEMP_ALARM"),
    "charge_undertemperature": ("UNDER_TEMP_WARNING", "UNDER_TEMP_ALARM"),
    "discharge_overtemperature": ("OVER_TEMP_WARNING", "OVER_TEMP_ALARM"),
    "discharge_undertemperature": ("UNDER_TEMP_WARNING", "UNDER_TEMP_ALARM"),
    "overcurrent_charge": ("OVER_CHARGE_CURRENT_WARNING", "OVER_CHARGE_CURRENT_ALARM"),
    "overcurrent_discharge": ("OVER_DISCHARGE_CURRENT_WARNING", "OVER_DISCHARGE_CURRENT_ALARM"),
    "voltage_imbalance": ("VOLTAGE_IMBALANCE_WARNING", "OTHER_ALARM"),
    "temperature_imbalance": ("TEMPERATURE_IMBALANCE_WARNING", "TEMPERATURE_IMBALANCE_ALARM"),
    "soc_low": ("UNDER_SOC_MIN_WARNING", "UNDER_SOC_MIN_ALARM"),
    "stale_data": ("OTHER_WARNING", "COMMUNICATION_ERROR"),
    "communication_loss": ("COMMUNICATION_ERROR", "COMMUNICATION_ERROR"),
    "measurement_fault": ("OTHER_WARNING", "OTHER_ALARM"),
    "configuration": ("CONFIGURATION_WARNING", "CONFIGURATION_ALARM"),
    "inverter_overcharge": ("OVER_CHARGE_CURRENT_WARNING", "OVER_CHARGE_CURRENT_ALARM"),
    "inverter_overdischarge": ("OVER_DISCHARGE_CURRENT_WARNING", "OVER_DISCHARGE_CURRENT_ALARM"),
}
"""``Evt1`` symbols (warning level, alarm level) of every protection alarm code."""

# (warning mask, alarm mask) per code, computed once.
_MASKS: dict[str, tuple[int, int]] = {
    code: (1 << EVT1_BITS[warning], 1 << EVT1_BITS[alarm])
    for code, (warning, alarm) in ALARM_EVT1.items()
}


def warning_mask(code: str) -> int:
    """``Evt1`` mask of the warning level of ``code``; 0 for a code without an ``Evt1`` bit."""
    return _MASKS.get(code, (0, 0))[0]


def alarm_mask(code: str) -> int:
    """``Evt1`` mask of the alarm level of ``code``; 0 for a code without an ``Evt1`` bit."""
    return _MASKS.get(code, (0, 0))[1]


def evt1_of(report: AlarmReport) -> int:
    """The model 802 ``Evt1`` bit field of the active warnings and alarms of ``report``."""
    evt1 = 0
    for a in report.active:
        masks = _MASKS.get(a.code)
        if masks is None:
            continue
        if a.severity is Severity.ALARM:
            evt1 |= masks[1] | (masks[0] if a.warning_too else 0)
        elif a.severity is Severity.WARNING:
            evt1 |= masks[0]
    return evt1
