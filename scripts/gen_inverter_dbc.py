"""Generate the battery-to-inverter CAN DBCs with cantools: ``dbc/inverter_lv.dbc`` and
``dbc/inverter_hv.dbc``.

Run: ``.venv/bin/python scripts/gen_inverter_dbc.py`` (writes both and checks they load strictly).
``tests/inverter_can/test_dbc.py`` fails when the shipped files differ from what this writes.

Sources of the layouts (public descriptions; all little-endian, "Intel" byte order):

* LV, 11-bit, 500 kbit/s: the Pylontech "CAN bus protocol" for US2000/US3000 (0x351, 0x355,
  0x356, 0x359, 0x35C, 0x35E, inverter keep-alive 0x305), the SMA Sunny Island "Connecting
  batteries with external BMS" technical information (0x35A alarm/warning bit pairs, 0x35F) and
  Victron's CAN-bus BMS description (0x372-0x377, 0x379), as implemented by diyBMS
  (stuartpittaway/diyBMSv4ESP32), JK-BMSToPylontechCAN and REC's SMA manual.
* HV, 29-bit, 500 kbit/s: the Pylontech Force-H / "high voltage CAN-bus protocol" as published
  by Deye (V1.17) and Sermatec (V1.1): the inverter polls 0x4200, the battery answers
  0x4210-0x4290 (command 0) or 0x7310-0x7340 (command 2). Currents carry an offset of -3000 A
  (raw 30000 = 0 A); the discharge limit is a negative current.
"""

from __future__ import annotations

from pathlib import Path

import cantools
from cantools.database import Database, Message, Node, Signal
from cantools.database.conversion import BaseConversion

DBC_DIR = Path(__file__).resolve().parent.parent / "dbc"
LV_OUT = DBC_DIR / "inverter_lv.dbc"
HV_OUT = DBC_DIR / "inverter_hv.dbc"

BAT = "BAT"  # the gateway, speaking as the battery
INV = "INV"

# SMA/Victron 0x35A items, in bit-pair order (alarms in bytes 0-3, warnings in bytes 4-7).
SMA_ITEMS = (
    "General",
    "HighVoltage",
    "LowVoltage",
    "HighTemp",
    "LowTemp",
    "HighTempCharge",
    "LowTempCharge",
    "HighCurrent",
    "HighChargeCurrent",
    "Contactor",
    "ShortCircuit",
    "BmsInternal",
    "CellImbalance",
)

# Pylontech HV 0x4250 alarm and protection bits (bit k of each 16-bit word).
HV_BITS = ("BLV", "BHV", "PLV", "PHV", "CLT", "CHT", "DLT", "DHT", "COCA", "DOCA", "MLV", "MHV")
HV_ERRORS = (
    "VoltSensor",
    "TempSensor",
    "InternalComm",
    "InputOvervoltage",
    "InputReversal",
    "Relay",
    "Damage",
    "Other",
)


def sig(
    name: str,
    start: int,
    length: int,
    *,
    signed: bool = False,
    scale: float = 1,
    offset: float = 0,
    minimum: float | None = None,
    maximum: float | None = None,
    unit: str | None = None,
    receiver: str = INV,
    comment: str | None = None,
) -> Signal:
    if minimum is None or maximum is None:
        lo = -(2 ** (length - 1)) if signed else 0
        hi = 2 ** (length - 1) - 1 if signed else 2**length - 1
        minimum = lo * scale + offset if minimum is None else minimum
        maximum = hi * scale + offset if maximum is None else maximum
    return Signal(
        name=name,
        start=start,
        length=length,
        byte_order="little_endian",
        is_signed=signed,
        conversion=BaseConversion.factory(scale=scale, offset=offset),
        minimum=round(minimum, 6),
        maximum=round(maximum, 6),
        unit=unit,
        receivers=[receiver],
        comment=comment,
    )


def flag(name: str, bit: int, comment: str | None = None, receiver: str = INV) -> Signal:
    return sig(name, bit, 1, minimum=0, maximum=1, receiver=receiver, comment=comment)


def chars(prefix: str = "Char") -> list[Signal]:
    return [sig(f"{prefix}{i}", 8 * i, 8, minimum=0, maximum=255) for i in range(8)]


def msg(
    frame_id: int,
    name: str,
    length: int,
    signals: list[Signal],
    comment: str,
    *,
    sender: str = BAT,
    extended: bool = False,
    cycle_time: int | None = 1000,
) -> Message:
    return Message(
        frame_id=frame_id,
        name=name,
        length=length,
        signals=signals,
        senders=[sender],
        is_extended_frame=extended,
        cycle_time=cycle_time,
        comment=comment,
    )


def lv_messages() -> list[Message]:
    sma = []
    for k, item in enumerate(SMA_ITEMS):
        sma.append(sig(f"Alarm{item}", 2 * k, 2, minimum=0, maximum=3))
        sma.append(sig(f"Warning{item}", 32 + 2 * k, 2, minimum=0, maximum=3))
    return [
        msg(
            0x351,
            "LV_Limits",
            8,
            [
                sig("ChargeVoltageLimit", 0, 16, scale=0.1, unit="V", comment="CVL"),
                sig("ChargeCurrentLimit", 16, 16, signed=True, scale=0.1, unit="A", comment="CCL"),
                sig(
                    "DischargeCurrentLimit",
                    32,
                    16,
                    signed=True,
                    scale=0.1,
                    unit="A",
                    comment="DCL",
                ),
                sig("DischargeVoltageLimit", 48, 16, scale=0.1, unit="V", comment="DVL"),
            ],
            "Charge voltage, charge and discharge current limits, discharge voltage (CVL CCL DCL "
            "DVL)",
        ),
        msg(
            0x355,
            "LV_SocSoh",
            4,
            [
                sig("SoC", 0, 16, unit="%", minimum=0, maximum=100),
                sig("SoH", 16, 16, unit="%", minimum=0, maximum=100),
            ],
            "State of charge and state of health",
        ),
        msg(
            0x356,
            "LV_Measurements",
            6,
            [
                sig("BatteryVoltage", 0, 16, signed=True, scale=0.01, unit="V"),
                sig(
                    "BatteryCurrent",
                    16,
                    16,
                    signed=True,
                    scale=0.1,
                    unit="A",
                    comment="positive = charging",
                ),
                sig("BatteryTemperature", 32, 16, signed=True, scale=0.1, unit="degC"),
            ],
            "Battery voltage, current and temperature",
        ),
        msg(
            0x359,
            "LV_ProtectionAlarms",
            7,
            [
                flag("ProtCellOvervoltage", 1),
                flag("ProtCellUndervoltage", 2),
                flag("ProtCellOvertemperature", 3),
                flag("ProtCellUndertemperature", 4),
                flag("ProtDischargeOvercurrent", 7),
                flag("ProtChargeOvercurrent", 8),
                flag("ProtSystemError", 11),
                flag("WarnCellHighVoltage", 17),
                flag("WarnCellLowVoltage", 18),
                flag("WarnCellHighTemperature", 19),
                flag("WarnCellLowTemperature", 20),
                flag("WarnDischargeHighCurrent", 23),
                flag("WarnChargeHighCurrent", 24),
                flag("WarnInternalCommFail", 27),
                sig("ModuleCount", 32, 8),
                sig("TokenP", 40, 8, comment="'P' (0x50)"),
                sig("TokenN", 48, 8, comment="'N' (0x4E)"),
            ],
            "Pylontech protection (alarm level) and alarm (warning level) flags, module count",
        ),
        msg(
            0x35A,
            "LV_AlarmsWarnings",
            8,
            sma,
            "SMA/Victron alarm and warning bit pairs: 1 active, 2 ok, 3 not supported",
        ),
        msg(
            0x35C,
            "LV_Requests",
            2,
            [
                flag("FullChargeRequest", 3),
                flag("ForceChargeRequestII", 4),
                flag("ForceChargeRequestI", 5),
                flag("DischargeEnable", 6),
                flag("ChargeEnable", 7),
            ],
            "Charge and discharge enable, force-charge and full-charge requests",
        ),
        msg(0x35E, "LV_ManufacturerName", 8, chars(), "Manufacturer name, 8 ASCII characters"),
        msg(
            0x35F,
            "LV_BatteryInfo",
            8,
            [
                sig("BatteryModel", 0, 16),
                sig("HardwareVersion", 16, 16),
                sig("OnlineCapacity", 32, 16, unit="Ah"),
                sig("FirmwareVersion", 48, 16),
            ],
            "Battery model, versions and online capacity",
        ),
        msg(
            0x372,
            "LV_ModuleCounts",
            8,
            [
                sig("ModulesOnline", 0, 16),
                sig("ModulesBlockingCharge", 16, 16),
                sig("ModulesBlockingDischarge", 32, 16),
                sig("ModulesOffline", 48, 16),
            ],
            "Module counts: online, blocking charge, blocking discharge, offline",
        ),
        msg(
            0x373,
            "LV_CellExtremes",
            8,
            [
                sig("MinCellVoltage", 0, 16, scale=0.001, unit="V"),
                sig("MaxCellVoltage", 16, 16, scale=0.001, unit="V"),
                sig("MinCellTemperature", 32, 16, offset=-273.15, unit="degC", comment="1 K"),
                sig("MaxCellTemperature", 48, 16, offset=-273.15, unit="degC", comment="1 K"),
            ],
            "Lowest and highest cell voltage and temperature",
        ),
        msg(0x374, "LV_MinCellVoltageId", 8, chars(), "Name of the lowest cell (ASCII)"),
        msg(0x375, "LV_MaxCellVoltageId", 8, chars(), "Name of the highest cell (ASCII)"),
        msg(0x376, "LV_MinCellTemperatureId", 8, chars(), "Name of the coldest sensor (ASCII)"),
        msg(0x377, "LV_MaxCellTemperatureId", 8, chars(), "Name of the hottest sensor (ASCII)"),
        msg(
            0x379,
            "LV_InstalledCapacity",
            2,
            [sig("InstalledCapacity", 0, 16, unit="Ah")],
            "Installed capacity",
        ),
        msg(
            0x305,
            "INV_KeepAlive",
            8,
            [sig("Payload", 0, 64, receiver=BAT)],
            "Inverter keep-alive (Pylontech: all zero, every second)",
            sender=INV,
        ),
        msg(
            0x307,
            "INV_Identification",
            8,
            [sig("Payload", 0, 64, receiver=BAT)],
            "Inverter identification (Victron: 'VIC' in bytes 4-6), counts as keep-alive",
            sender=INV,
        ),
    ]


def _hv_current(name: str, start: int, comment: str) -> Signal:
    return sig(name, start, 16, scale=0.1, offset=-3000, unit="A", comment=comment)


def _hv_temp(name: str, start: int) -> Signal:
    return sig(name, start, 16, scale=0.1, offset=-100, unit="degC")


def hv_messages() -> list[Message]:
    def ext(frame_id: int, name: str, signals: list[Signal], comment: str) -> Message:
        return msg(frame_id, name, 8, signals, comment, extended=True, cycle_time=None)

    status: list[Signal] = [
        sig("BasicStatus", 0, 3, comment="0 sleep, 1 charge, 2 discharge, 3 idle"),
        flag("ForceChargeRequest", 3),
        flag("BalanceChargeRequest", 4),
        sig("CyclePeriod", 8, 16),
    ]
    status += [flag(f"Error{e}", 24 + k) for k, e in enumerate(HV_ERRORS)]
    status += [flag(f"Alarm{b}", 32 + k) for k, b in enumerate(HV_BITS)]
    status += [flag(f"Protect{b}", 48 + k) for k, b in enumerate(HV_BITS)]
    return [
        msg(
            0x4200,
            "HV_InverterRequest",
            8,
            [sig("Command", 0, 8, receiver=BAT, comment="0 ensemble information, 2 system info")],
            "Inverter poll; the battery answers 0x4210-0x4290",
            sender=INV,
            extended=True,
        ),
        ext(
            0x4210,
            "HV_PackValues",
            [
                sig("PackVoltage", 0, 16, scale=0.1, unit="V"),
                _hv_current("PackCurrent", 16, "positive = charging"),
                _hv_temp("BmsTemperature", 32),
                sig("SoC", 48, 8, unit="%", minimum=0, maximum=100),
                sig("SoH", 56, 8, unit="%", minimum=0, maximum=100),
            ],
            "Pack voltage, current, temperature, SoC and SoH",
        ),
        ext(
            0x4220,
            "HV_Limits",
            [
                sig("ChargeCutoffVoltage", 0, 16, scale=0.1, unit="V", comment="CVL"),
                sig("DischargeCutoffVoltage", 16, 16, scale=0.1, unit="V", comment="DVL"),
                _hv_current("MaxChargeCurrent", 32, "CCL"),
                _hv_current("MaxDischargeCurrent", 48, "-DCL (a discharge current is negative)"),
            ],
            "Charge and discharge cutoff voltages and current limits",
        ),
        ext(
            0x4230,
            "HV_CellVoltages",
            [
                sig("MaxCellVoltage", 0, 16, scale=0.001, unit="V"),
                sig("MinCellVoltage", 16, 16, scale=0.001, unit="V"),
                sig("MaxCellVoltageNo", 32, 16),
                sig("MinCellVoltageNo", 48, 16),
            ],
            "Highest and lowest cell voltage and their cell numbers",
        ),
        ext(
            0x4240,
            "HV_CellTemperatures",
            [
                _hv_temp("MaxCellTemperature", 0),
                _hv_temp("MinCellTemperature", 16),
                sig("MaxCellTemperatureNo", 32, 16),
                sig("MinCellTemperatureNo", 48, 16),
            ],
            "Highest and lowest cell temperature and their sensor numbers",
        ),
        ext(0x4250, "HV_Status", status, "Basic status, requests, errors, alarms, protection"),
        ext(
            0x4260,
            "HV_ModuleVoltages",
            [
                sig("MaxModuleVoltage", 0, 16, scale=0.001, unit="V"),
                sig("MinModuleVoltage", 16, 16, scale=0.001, unit="V"),
                sig("MaxModuleVoltageNo", 32, 16),
                sig("MinModuleVoltageNo", 48, 16),
            ],
            "Highest and lowest module voltage and their module numbers",
        ),
        ext(
            0x4270,
            "HV_ModuleTemperatures",
            [
                _hv_temp("MaxModuleTemperature", 0),
                _hv_temp("MinModuleTemperature", 16),
                sig("MaxModuleTemperatureNo", 32, 16),
                sig("MinModuleTemperatureNo", 48, 16),
            ],
            "Highest and lowest module temperature and their module numbers",
        ),
        ext(
            0x4280,
            "HV_Forbidden",
            [
                sig("ChargeForbidden", 0, 8, comment="0xAA = charge forbidden"),
                sig("DischargeForbidden", 8, 8, comment="0xAA = discharge forbidden"),
            ],
            "Charge and discharge forbidden marks",
        ),
        ext(
            0x4290,
            "HV_FaultExtension",
            [sig("FaultExtension", 0, 8)],
            "Fault extension bits (self test, internal bus, ...)",
        ),
        # The answer to 0x4200 command 2 (system equipment information).
        ext(
            0x7310,
            "HV_Versions",
            [
                sig("HardwareVersion", 0, 8),
                sig("HardwareVersionMajor", 16, 8),
                sig("HardwareVersionMinor", 24, 8),
                sig("SoftwareVersionMajor", 32, 8),
                sig("SoftwareVersionMinor", 40, 8),
            ],
            "Hardware and software versions",
        ),
        ext(
            0x7320,
            "HV_SystemInfo",
            [
                sig("SeriesCells", 0, 16),
                sig("ModulesInSeries", 16, 8),
                sig("CellsPerModule", 24, 8),
                sig("VoltageLevel", 32, 16, unit="V"),
                sig("CapacityAh", 48, 16, unit="Ah"),
            ],
            "Series cells, modules, cells per module, voltage level, capacity",
        ),
        ext(0x7330, "HV_Name1", chars(), "Battery name, characters 1-8 (ASCII)"),
        ext(0x7340, "HV_Name2", chars(), "Battery name, characters 9-16 (ASCII)"),
    ]


def write(path: Path, messages: list[Message]) -> None:
    db = Database(messages=messages, nodes=[Node(BAT), Node(INV)], version="1.0")
    path.write_text(db.as_dbc_string(), encoding="utf-8")
    cantools.database.load_file(path, strict=True)
    print(f"wrote {path} ({len(messages)} messages)")


def main() -> None:
    write(LV_OUT, lv_messages())
    write(HV_OUT, hv_messages())


if __name__ == "__main__":
    main()
