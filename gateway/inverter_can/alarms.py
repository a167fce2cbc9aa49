"""The one table from the gateway's alarm codes to the battery-CAN alarm bits.

Each code (``gateway.core.protection.ALARMS``) names, per protocol, the DBC signal its ALARM level
sets and the one its WARNING level sets (``None``: the protocol has no bit for that level):

* Pylontech LV 0x359: ``Prot*`` flags ("protection", the trip level) and ``Warn*`` flags (the
  protocol calls them "alarm", the warning level);
* SMA/Victron 0x35A: the item whose ``Alarm<item>`` / ``Warning<item>`` bit pair goes to 01;
  ``General`` is set as well whenever any alarm (warning) is active;
* Pylontech HV 0x4250: ``Protect*`` (trip level), ``Alarm*`` (warning level) and ``Error*`` bits.

``python -m gateway.inverter_can.alarms`` prints the table as Markdown (docs/INVERTER_CAN.md
carries it; a test keeps the two equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.core.model import AlarmReport, Severity

__all__ = ["ALARM_BITS", "SMA_ACTIVE", "SMA_NOT_SUPPORTED", "SMA_OK", "AlarmBits", "markdown"]

#: 0x35A bit-pair values (SMA "Connecting batteries with external BMS").
SMA_ACTIVE = 1
SMA_OK = 2
SMA_NOT_SUPPORTED = 3


@dataclass(frozen=True, slots=True)
class AlarmBits:
    """Where one alarm code shows on each protocol (DBC signal names, or 0x35A item names)."""

    pylon_alarm: str
    pylon_warning: str | None
    sma_item: str
    hv_alarm: str
    hv_warning: str | None


ALARM_BITS: dict[str, AlarmBits] = {
    "cell_overvoltage": AlarmBits(
        "ProtCellOvervoltage", "WarnCellHighVoltage", "HighVoltage", "ProtectBHV", "AlarmBHV"
    ),
    "cell_undervoltage": AlarmBits(
        "ProtCellUndervoltage", "WarnCellLowVoltage", "LowVoltage", "ProtectBLV", "AlarmBLV"
    ),
    "charge_overtemperature": AlarmBits(
        "ProtCellOvertemperature",
        "WarnCellHighTemperature",
        "HighTempCharge",
        "ProtectCHT",
        "AlarmCHT",
    ),
    "charge_undertemperature": AlarmBits(
        "ProtCellUndertemperature",
        "WarnCellLowTemperature",
        "LowTempCharge",
        "ProtectCLT",
        "AlarmCLT",
    ),
    "discharge_overtemperature": AlarmBits(
        "ProtCellOvertemperature", "WarnCellHighTemperature", "HighTemp", "ProtectDHT", "AlarmDHT"
    ),
    "discharge_undertemperature": AlarmBits(
        "ProtCellUndertemperature", "WarnCellLowTemperature", "LowTemp", "ProtectDLT", "AlarmDLT"
    ),
    "overcurrent_charge": AlarmBits(
        "ProtChargeOvercurrent",
        "WarnChargeHighCurrent",
        "HighChargeCurrent",
        "ProtectCOCA",
        "AlarmCOCA",
    ),
    "overcurrent_discharge": AlarmBits(
        "ProtDischargeOvercurrent",
        "WarnDischargeHighCurrent",
        "HighCurrent",
        "ProtectDOCA",
        "AlarmDOCA",
    ),
    "voltage_imbalance": AlarmBits("ProtSystemError", None, "CellImbalance", "ErrorOther", None),
    "temperature_imbalance": AlarmBits("ProtSystemError", None, "General", "ErrorOther", None),
    # SoC low trips nothing in the gateway (the DCL taper does the work): warning bits only.
    "soc_low": AlarmBits(
        "WarnCellLowVoltage", "WarnCellLowVoltage", "LowVoltage", "AlarmPLV", "AlarmPLV"
    ),
    "stale_data": AlarmBits(
        "ProtSystemError", "WarnInternalCommFail", "BmsInternal", "ErrorInternalComm", None
    ),
    "communication_loss": AlarmBits(
        "ProtSystemError",
        "WarnInternalCommFail",
        "BmsInternal",
        "ErrorInternalComm",
        "ErrorInternalComm",
    ),
    "configuration": AlarmBits("ProtSystemError", None, "BmsInternal", "ErrorOther", None),
    # A reading no healthy cell or sensor can show: the BMS's measurement, not the cells.
    "measurement_fault": AlarmBits("ProtSystemError", None, "BmsInternal", "ErrorOther", None),
    "inverter_overcharge": AlarmBits(
        "ProtChargeOvercurrent",
        "WarnChargeHighCurrent",
        "HighChargeCurrent",
        "ProtectCOCA",
        "AlarmCOCA",
    ),
    "inverter_overdischarge": AlarmBits(
        "ProtDischargeOvercurrent",
        "WarnDischargeHighCurrent",
        "HighCurrent",
        "ProtectDOCA",
        "AlarmDOCA",
    ),
}

#: 0x35A items the gateway monitors (the rest are reported "not supported").
SMA_SUPPORTED = frozenset({"General"} | {b.sma_item for b in ALARM_BITS.values()})


def _levels(report: AlarmReport) -> list[tuple[AlarmBits, Severity]]:
    out = []
    for a in report.active:
        bits = ALARM_BITS.get(a.code)
        if bits is not None:
            out.append((bits, a.severity))
    return out


def pylon_flags(report: AlarmReport) -> dict[str, int]:
    """The 0x359 flags set by ``report`` (signal name -> 1)."""
    flags: dict[str, int] = {}
    for bits, sev in _levels(report):
        name = bits.pylon_alarm if sev >= Severity.ALARM else bits.pylon_warning
        if name is not None:
            flags[name] = 1
    return flags


def sma_pairs(report: AlarmReport, items: tuple[str, ...]) -> dict[str, int]:
    """Every 0x35A ``Alarm<item>``/``Warning<item>`` pair for ``report``."""
    pairs: dict[str, int] = {}
    for item in items:
        ok = SMA_OK if item in SMA_SUPPORTED else SMA_NOT_SUPPORTED
        pairs[f"Alarm{item}"] = ok
        pairs[f"Warning{item}"] = ok
    for bits, sev in _levels(report):
        prefix = "Alarm" if sev >= Severity.ALARM else "Warning"
        pairs[f"{prefix}{bits.sma_item}"] = SMA_ACTIVE
        pairs[f"{prefix}General"] = SMA_ACTIVE
    return pairs


def hv_flags(report: AlarmReport) -> dict[str, int]:
    """The 0x4250 error, alarm and protection flags set by ``report``."""
    flags: dict[str, int] = {}
    for bits, sev in _levels(report):
        name = bits.hv_alarm if sev >= Severity.ALARM else bits.hv_warning
        if name is not None:
            flags[name] = 1
    return flags


def markdown() -> str:
    """The table as Markdown, one row per alarm code."""
    rows = [
        "| Alarm code | Pylontech LV 0x359 alarm | 0x359 warning | SMA/Victron 0x35A item "
        "| Pylontech HV 0x4250 alarm | 0x4250 warning |",
        "|---|---|---|---|---|---|",
    ]
    for code, b in ALARM_BITS.items():
        rows.append(
            f"| `{code}` | `{b.pylon_alarm}` | {_cell(b.pylon_warning)} | `{b.sma_item}` "
            f"| `{b.hv_alarm}` | {_cell(b.hv_warning)} |"
        )
    return "\n".join(rows) + "\n"


def _cell(name: str | None) -> str:
    return "-" if name is None else f"`{name}`"


if __name__ == "__main__":
    print(markdown(), end="")
