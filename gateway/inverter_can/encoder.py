"""What each battery-CAN frame says: the protocol profiles and the DBC encoding.

``FrameEncoder`` turns a ``ControlOutput`` and the ``BatteryRequests`` of the same step into the
signal values of each message and encodes them with the generated DBCs (``dbc/inverter_lv.dbc``,
``dbc/inverter_hv.dbc``); there are no byte offsets here. Which frames go out at a step is
``gateway.inverter_can.frames.InverterOutput``. Pure apart from the one-time DBC load.
"""

from __future__ import annotations

import importlib.resources
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import cantools
from cantools.database.can import Database, Message, Signal

from gateway.canbus.decode import OutFrame
from gateway.core.cells import cell_sum_v, extremes
from gateway.core.model import BatteryRequests, ControlOutput, GatewayMode
from gateway.errors import FrameError
from gateway.inverter_can.alarms import hv_flags, pylon_flags, sma_pairs
from gateway.inverter_can.config import InverterCanConfig, InverterProtocol

__all__ = [
    "HV_SYSTEM_INFO",
    "LIMIT_MESSAGES",
    "PROFILES",
    "BatteryIdentity",
    "FrameEncoder",
    "load_inverter_dbc",
]

_LV_COMMON = ("LV_Limits", "LV_SocSoh", "LV_Measurements", "LV_Requests", "LV_ManufacturerName")

#: The messages each protocol sends (in this order), every ``period_s`` (HV: on each poll).
PROFILES: dict[InverterProtocol, tuple[str, ...]] = {
    InverterProtocol.PYLON: (*_LV_COMMON, "LV_ProtectionAlarms", "LV_InstalledCapacity"),
    InverterProtocol.SMA: (*_LV_COMMON, "LV_AlarmsWarnings", "LV_BatteryInfo"),
    InverterProtocol.VICTRON: (
        *_LV_COMMON,
        "LV_AlarmsWarnings",
        "LV_BatteryInfo",
        "LV_ModuleCounts",
        "LV_CellExtremes",
        "LV_MinCellVoltageId",
        "LV_MaxCellVoltageId",
        "LV_MinCellTemperatureId",
        "LV_MaxCellTemperatureId",
        "LV_InstalledCapacity",
    ),
    InverterProtocol.PYLON_HV: (
        "HV_PackValues",
        "HV_Limits",
        "HV_CellVoltages",
        "HV_CellTemperatures",
        "HV_Status",
        "HV_ModuleVoltages",
        "HV_ModuleTemperatures",
        "HV_Forbidden",
        "HV_FaultExtension",
    ),
}

#: Pylontech HV answer to the 0x4200 poll with command 2 (system equipment information).
HV_SYSTEM_INFO = ("HV_Versions", "HV_SystemInfo", "HV_Name1", "HV_Name2")

#: Sent at once (between periods) when a limit is cut or an enable flag drops.
LIMIT_MESSAGES: dict[bool, tuple[str, ...]] = {
    False: ("LV_Limits", "LV_Requests"),
    True: ("HV_Limits", "HV_Forbidden"),
}

_FORBIDDEN = 0xAA  # Pylontech HV 0x4280: charge/discharge forbidden mark
_REST_A = 0.5  # HV basic status: below this the pack is idle


@cache
def load_inverter_dbc(high_voltage: bool) -> Database:
    """The shipped LV or HV DBC (loaded once, strict)."""
    name = "inverter_hv.dbc" if high_voltage else "inverter_lv.dbc"
    ref = importlib.resources.files("gateway") / "data" / "dbc" / name
    with importlib.resources.as_file(ref) as path:
        db = cantools.database.load_file(path, strict=True)
    if not isinstance(db, Database):
        raise FrameError(f"{name} is not a CAN database")
    return db


@dataclass(frozen=True, slots=True)
class BatteryIdentity:
    """What the battery says about itself (static for a run)."""

    capacity_ah: float
    manufacturer: str = "PYLON"
    modules: int = 1
    firmware_version: int = 0  # major << 8 | minor
    cells: int = 16
    nominal_cell_v: float = 3.2
    name: str = "bms-gateway"

    @classmethod
    def from_config(
        cls,
        config: InverterCanConfig,
        *,
        capacity_ah: float,
        version: str = "0.0",
        cells: int = 16,
        nominal_cell_v: float = 3.2,
    ) -> BatteryIdentity:
        """From the ``[inverter_can]`` settings, the pack and the ``major.minor`` version."""
        parts = [int(p) for p in version.split(".")[:2] if p.isdigit()] + [0, 0]
        return cls(
            capacity_ah=capacity_ah,
            manufacturer=config.manufacturer,
            modules=config.modules,
            firmware_version=(parts[0] & 0xFF) << 8 | (parts[1] & 0xFF),
            cells=cells,
            nominal_cell_v=nominal_cell_v,
        )


def _chars(text: str) -> dict[str, float]:
    raw = text.encode("ascii", errors="replace")[:8].ljust(8, b" ")
    return {f"Char{i}": b for i, b in enumerate(raw)}


def _numbered_extremes(values: Sequence[float | None]) -> tuple[float, int, float, int]:
    """``(lowest, its number, highest, its number)`` of the known values, numbered from 1;
    zeros when none is known (the snapshot holds no NaN: a sentinel is a fault, no value)."""
    ext = extremes(values)
    if ext is None:
        return 0.0, 0, 0.0, 0
    lo, i_lo, hi, i_hi = ext
    return lo, i_lo + 1, hi, i_hi + 1


_SignalPlan = tuple[str, float, float, float, float, bool]  # name, lo, hi, scale, offset, whole


def _plan(s: Signal) -> _SignalPlan:
    lo = s.minimum if s.minimum is not None else -math.inf
    hi = s.maximum if s.maximum is not None else math.inf
    return (s.name, lo, hi, float(s.scale), float(s.offset), not s.conversion.is_float)


class FrameEncoder:
    """Signal values of each battery-CAN message for one step, encoded with the DBC.

    Raises:
        FrameError: from ``encode``, when a message is missing from the DBC (a packaging bug).
    """

    def __init__(self, protocol: InverterProtocol, identity: BatteryIdentity) -> None:
        if protocol is InverterProtocol.OFF:
            raise ValueError("protocol 'off' sends nothing")
        self.protocol = protocol
        self.identity = identity
        self.high_voltage = protocol.high_voltage
        self.db = load_inverter_dbc(self.high_voltage)
        # Per message: the signals with their clip range and raw step, computed once.
        self._plans: dict[str, tuple[Message, list[_SignalPlan]]] = {
            m.name: (m, [_plan(s) for s in m.signals]) for m in self.db.messages
        }
        self.sma_items = (
            tuple(
                s.name[len("Alarm") :]
                for s in self.db.get_message_by_name("LV_AlarmsWarnings").signals
                if s.name.startswith("Alarm")
            )
            if not self.high_voltage
            else ()
        )

    def encode(self, name: str, values: Mapping[str, float]) -> OutFrame:
        """Encode ``name``; unset signals are 0 and every value is clipped into its range."""
        plan = self._plans.get(name)
        if plan is None:
            raise FrameError(f"message {name!r} is not in the inverter DBC")
        msg, signals = plan
        data: dict[str, float] = {}
        for sname, lo, hi, scale, offset, whole in signals:
            v = float(values.get(sname, 0.0))
            if not math.isfinite(v):
                v = 0.0
            if whole:
                # Whole raw steps, rounded rather than truncated (53.2 V, not 53.1).
                v = round((v - offset) / scale) * scale + offset
            data[sname] = min(max(v, lo), hi)
        try:
            payload = msg.encode(data, strict=True)
        except (cantools.database.EncodeError, KeyError, ValueError, TypeError) as e:
            raise FrameError(f"cannot encode {name}: {e}") from None
        return OutFrame(msg.frame_id, bool(msg.is_extended_frame), payload)

    def frames(
        self, out: ControlOutput, req: BatteryRequests, names: Sequence[str] | None = None
    ) -> list[OutFrame]:
        """The frames of ``names`` (default: the whole profile) for one step."""
        if names is not None and tuple(names) == LIMIT_MESSAGES[self.high_voltage]:
            values = self._limit_values(out, req)  # the cut path: only what it sends
        else:
            values = self.values(out, req)
        return [self.encode(n, values[n]) for n in (names or PROFILES[self.protocol])]

    # --- signal values -------------------------------------------------------------------------

    def values(self, out: ControlOutput, req: BatteryRequests) -> dict[str, dict[str, float]]:
        """Signal values of every message of the family for ``out`` (physical units)."""
        return self._hv(out, req) if self.high_voltage else self._lv(out, req)

    def system_info(self) -> list[OutFrame]:
        """The Pylontech HV answer to 0x4200 command 2: versions, cell counts, name."""
        ident = self.identity
        name = ident.name.encode("ascii", errors="replace")[:16].ljust(16, b"\0")
        values: dict[str, dict[str, float]] = {
            "HV_Versions": {
                "HardwareVersion": 1,
                "SoftwareVersionMajor": ident.firmware_version >> 8,
                "SoftwareVersionMinor": ident.firmware_version & 0xFF,
            },
            "HV_SystemInfo": {
                "SeriesCells": ident.cells,
                "ModulesInSeries": ident.modules,
                "CellsPerModule": ident.cells // ident.modules,
                "VoltageLevel": ident.cells * ident.nominal_cell_v,
                "CapacityAh": ident.capacity_ah,
            },
            "HV_Name1": {f"Char{i}": b for i, b in enumerate(name[:8])},
            "HV_Name2": {f"Char{i}": b for i, b in enumerate(name[8:])},
        }
        return [self.encode(n, values[n]) for n in HV_SYSTEM_INFO]

    def _limit_values(
        self, out: ControlOutput, req: BatteryRequests
    ) -> dict[str, dict[str, float]]:
        lim = out.limits
        if self.high_voltage:
            return {
                "HV_Limits": {
                    "ChargeCutoffVoltage": lim.cvl_v.value,
                    "DischargeCutoffVoltage": lim.dvl_v.value,
                    "MaxChargeCurrent": lim.ccl_a.value,
                    "MaxDischargeCurrent": -lim.dcl_a.value,
                },
                "HV_Forbidden": {
                    "ChargeForbidden": 0 if req.charge_enable else _FORBIDDEN,
                    "DischargeForbidden": 0 if req.discharge_enable else _FORBIDDEN,
                },
            }
        return {
            "LV_Limits": {
                "ChargeVoltageLimit": lim.cvl_v.value,
                "ChargeCurrentLimit": lim.ccl_a.value,
                "DischargeCurrentLimit": lim.dcl_a.value,
                "DischargeVoltageLimit": lim.dvl_v.value,
            },
            "LV_Requests": {
                "ChargeEnable": req.charge_enable,
                "DischargeEnable": req.discharge_enable,
                # Inverters differ in which force-charge bit they read: set both.
                "ForceChargeRequestI": req.force_charge,
                "ForceChargeRequestII": req.force_charge,
                "FullChargeRequest": req.full_charge,
            },
        }

    def _common(self, out: ControlOutput) -> dict[str, float]:
        pack = out.pack
        volts = pack.pack_voltage_v
        if volts is None:
            volts = cell_sum_v(pack.cell_voltage_v) or 0.0
        soc = out.soc
        tmax = _numbered_extremes(pack.cell_temp_c)[2]
        return {
            "volts": volts,
            "current": pack.current_a or 0.0,
            "temp": tmax,
            "soc": soc.soc_pct if soc is not None else 0.0,
            "soh": soc.soh_pct if soc is not None else 0.0,
        }

    def _lv(self, out: ControlOutput, req: BatteryRequests) -> dict[str, dict[str, float]]:
        pack, ident = out.pack, self.identity
        c = self._common(out)
        vmin, nvmin, vmax, nvmax = _numbered_extremes(pack.cell_voltage_v)
        tmin, ntmin, tmax, ntmax = _numbered_extremes(pack.cell_temp_c)
        online = ident.modules if pack.complete else 0
        return {
            **self._limit_values(out, req),
            "LV_SocSoh": {"SoC": c["soc"], "SoH": c["soh"]},
            "LV_Measurements": {
                "BatteryVoltage": c["volts"],
                "BatteryCurrent": c["current"],
                "BatteryTemperature": c["temp"],
            },
            "LV_ProtectionAlarms": {
                **pylon_flags(out.alarms),
                "ModuleCount": ident.modules,
                "TokenP": 0x50,
                "TokenN": 0x4E,
            },
            "LV_AlarmsWarnings": dict(sma_pairs(out.alarms, self.sma_items)),
            "LV_ManufacturerName": _chars(ident.manufacturer),
            "LV_BatteryInfo": {
                "OnlineCapacity": ident.capacity_ah * c["soh"] / 100.0,
                "FirmwareVersion": ident.firmware_version,
            },
            "LV_ModuleCounts": {
                "ModulesOnline": online,
                "ModulesBlockingCharge": 0 if req.charge_enable else ident.modules,
                "ModulesBlockingDischarge": 0 if req.discharge_enable else ident.modules,
                "ModulesOffline": ident.modules - online,
            },
            "LV_CellExtremes": {
                "MinCellVoltage": vmin,
                "MaxCellVoltage": vmax,
                "MinCellTemperature": tmin,
                "MaxCellTemperature": tmax,
            },
            "LV_MinCellVoltageId": _chars(f"Cell{nvmin}"),
            "LV_MaxCellVoltageId": _chars(f"Cell{nvmax}"),
            "LV_MinCellTemperatureId": _chars(f"Temp{ntmin}"),
            "LV_MaxCellTemperatureId": _chars(f"Temp{ntmax}"),
            "LV_InstalledCapacity": {"InstalledCapacity": ident.capacity_ah},
        }

    def _hv(self, out: ControlOutput, req: BatteryRequests) -> dict[str, dict[str, float]]:
        pack, ident = out.pack, self.identity
        c = self._common(out)
        vmin, nvmin, vmax, nvmax = _numbered_extremes(pack.cell_voltage_v)
        tmin, ntmin, tmax, ntmax = _numbered_extremes(pack.cell_temp_c)
        current = c["current"]
        if out.mode is GatewayMode.STARTING:
            status = 0  # sleep
        elif current > _REST_A:
            status = 1
        elif current < -_REST_A:
            status = 2
        else:
            status = 3
        module_v = c["volts"] / ident.modules
        return {
            "HV_PackValues": {
                "PackVoltage": c["volts"],
                "PackCurrent": current,
                "BmsTemperature": c["temp"],
                "SoC": c["soc"],
                "SoH": c["soh"],
            },
            **self._limit_values(out, req),
            "HV_CellVoltages": {
                "MaxCellVoltage": vmax,
                "MinCellVoltage": vmin,
                "MaxCellVoltageNo": nvmax,
                "MinCellVoltageNo": nvmin,
            },
            "HV_CellTemperatures": {
                "MaxCellTemperature": tmax,
                "MinCellTemperature": tmin,
                "MaxCellTemperatureNo": ntmax,
                "MinCellTemperatureNo": ntmin,
            },
            "HV_Status": {
                "BasicStatus": status,
                "ForceChargeRequest": req.force_charge,
                "BalanceChargeRequest": req.full_charge,
                **hv_flags(out.alarms),
            },
            # One measured string: each module is reported at the string's average.
            "HV_ModuleVoltages": {
                "MaxModuleVoltage": module_v,
                "MinModuleVoltage": module_v,
                "MaxModuleVoltageNo": 1,
                "MinModuleVoltageNo": 1,
            },
            "HV_ModuleTemperatures": {
                "MaxModuleTemperature": tmax,
                "MinModuleTemperature": tmin,
                "MaxModuleTemperatureNo": 1,
                "MinModuleTemperatureNo": 1,
            },
            "HV_FaultExtension": {},
        }
