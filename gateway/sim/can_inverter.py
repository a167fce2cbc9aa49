"""Battery-CAN inverter simulators (Pylontech LV and HV, SMA Sunny Island, Victron GX).

The simulator decodes what the battery sends with its **own copy** of the published frame layouts
(``LV_LAYOUT``/``HV_LAYOUT`` below, plain ``struct``), not with the gateway's DBCs, so a test that
closes the loop through it checks the generated DBCs against the protocol descriptions too.
Sources: the Pylontech LV CAN protocol (0x351/0x355/0x356/0x359/0x35C, keep-alive 0x305), SMA
Sunny Island external-BMS technical information (0x35A bit pairs), Victron's CAN-bus BMS frames,
and the Pylontech HV protocol as published by Deye/Sermatec (0x4200 poll, 0x4210-0x4290; currents
offset by -3000 A at 0.1 A, temperatures by -100 degC at 0.1 degC). All little-endian.

Behaviour, like the inverters it plays: it follows CCL/DCL; charge (discharge) enable = 0 (HV:
the 0xAA forbidden marks) means 0 A that way; a force-charge request makes it charge at
``force_charge_a`` (within CCL) whatever PV and load want; before it has heard any limit it leaves
the battery alone (0 A). It sends its keep-alive (LV 0x305 every second) or polls (HV 0x4200
every second: command 2, system information, first and every tenth time, else command 0) unless
``heartbeat`` is False.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

import can

from gateway.sim.follower import LimitFollower, PvLoadProfile

__all__ = ["HV_LAYOUT", "LV_LAYOUT", "CanInverterSim", "FrameLayout", "decode_frame"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FrameLayout:
    """One published frame: a struct format and (name, scale, offset) per unpacked field."""

    name: str
    fmt: str
    fields: tuple[tuple[str, float, float], ...]


LV_LAYOUT: dict[int, FrameLayout] = {
    0x351: FrameLayout(
        "limits",
        "<HhhH",
        (("cvl_v", 0.1, 0.0), ("ccl_a", 0.1, 0.0), ("dcl_a", 0.1, 0.0), ("dvl_v", 0.1, 0.0)),
    ),
    0x355: FrameLayout("soc", "<HH", (("soc_pct", 1.0, 0.0), ("soh_pct", 1.0, 0.0))),
    0x356: FrameLayout(
        "measurements",
        "<hhh",
        (("voltage_v", 0.01, 0.0), ("current_a", 0.1, 0.0), ("temp_c", 0.1, 0.0)),
    ),
    # Protection bytes 0-1, alarm bytes 2-3, module count, 'P', 'N'.
    0x359: FrameLayout(
        "protection",
        "<HHBBB",
        (
            ("protection_bits", 1, 0),
            ("alarm_bits", 1, 0),
            ("modules", 1, 0),
            ("token_p", 1, 0),
            ("token_n", 1, 0),
        ),
    ),
    0x35A: FrameLayout("alarms", "<II", (("alarm_pairs", 1, 0), ("warning_pairs", 1, 0))),
    0x35C: FrameLayout("requests", "<B", (("request_bits", 1, 0),)),
    0x379: FrameLayout("capacity", "<H", (("installed_capacity_ah", 1.0, 0.0),)),
}

HV_LAYOUT: dict[int, FrameLayout] = {
    0x4210: FrameLayout(
        "pack",
        "<HHHBB",
        (
            ("voltage_v", 0.1, 0.0),
            ("current_a", 0.1, -3000.0),
            ("temp_c", 0.1, -100.0),
            ("soc_pct", 1.0, 0.0),
            ("soh_pct", 1.0, 0.0),
        ),
    ),
    0x4220: FrameLayout(
        "limits",
        "<HHHH",
        (
            ("cvl_v", 0.1, 0.0),
            ("dvl_v", 0.1, 0.0),
            ("ccl_a", 0.1, -3000.0),
            ("dcl_signed_a", 0.1, -3000.0),  # a discharge current: negative
        ),
    ),
    0x4230: FrameLayout(
        "cell_voltages",
        "<HHHH",
        (
            ("max_cell_v", 0.001, 0.0),
            ("min_cell_v", 0.001, 0.0),
            ("max_no", 1, 0),
            ("min_no", 1, 0),
        ),
    ),
    0x4250: FrameLayout(
        "status",
        "<BHBHH",
        (
            ("status_bits", 1, 0),
            ("cycle", 1, 0),
            ("errors", 1, 0),
            ("alarms", 1, 0),
            ("protect", 1, 0),
        ),
    ),
    0x7320: FrameLayout(
        "system_info",
        "<HBBHH",
        (
            ("series_cells", 1, 0),
            ("modules", 1, 0),
            ("cells_per_module", 1, 0),
            ("voltage_level_v", 1, 0),
            ("capacity_ah", 1, 0),
        ),
    ),
    0x4280: FrameLayout(
        "forbidden", "<BB", (("charge_forbidden", 1, 0), ("discharge_forbidden", 1, 0))
    ),
}

# 0x35C request bits (Pylontech): 7 charge enable, 6 discharge enable, 5/4 force charge I/II,
# 3 full charge.
_REQ_BITS = {
    "charge_enable": 7,
    "discharge_enable": 6,
    "force_charge_i": 5,
    "force_charge_ii": 4,
    "full_charge": 3,
}
_FORBIDDEN = 0xAA
_KEEPALIVE_ID = 0x305
_POLL_ID = 0x4200


def decode_frame(high_voltage: bool, frame_id: int, data: bytes) -> dict[str, float]:
    """Decode one battery frame with the published layout; {} for an id the sim does not read.

    Raises:
        ValueError: the frame is shorter than its layout.
    """
    layout = (HV_LAYOUT if high_voltage else LV_LAYOUT).get(frame_id)
    if layout is None:
        return {}
    size = struct.calcsize(layout.fmt)
    if len(data) < size:
        raise ValueError(f"0x{frame_id:X}: {len(data)} bytes, layout needs {size}")
    raw = struct.unpack_from(layout.fmt, data)
    values = {
        name: r * scale + off for r, (name, scale, off) in zip(raw, layout.fields, strict=True)
    }
    if not high_voltage and frame_id == 0x35C:
        bits = int(values.pop("request_bits"))
        values.update({k: float(bits >> b & 1) for k, b in _REQ_BITS.items()})
    if high_voltage and frame_id == 0x4220:
        values["dcl_a"] = -values.pop("dcl_signed_a")
    if high_voltage and frame_id == 0x4250:
        bits = int(values["status_bits"])
        values["basic_status"] = float(bits & 0x7)
        values["force_charge"] = float(bits >> 3 & 1)
        values["full_charge"] = float(bits >> 4 & 1)
    return values


class CanInverterSim(LimitFollower):
    """A battery-CAN inverter on a python-can bus that obeys the battery's limits and flags.

    ``current_a(t_s)`` is the pack current it draws (positive = charging), usable as
    ``current_source`` of ``gateway.sim.emitter.run_sim_on_bus``. ``limit_log`` records
    ``(monotonic time, CCL, DCL)`` each time the limits it obeys change (bounded).
    """

    def __init__(
        self,
        protocol: str,
        *,
        interface: str = "virtual",
        channel: str = "inv0",
        keepalive_period_s: float = 1.0,
        force_charge_a: float = 10.0,
        profile: PvLoadProfile | None = None,
        nominal_voltage_v: float = 51.2,
        demand_a: Callable[[float], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(profile, nominal_voltage_v, demand_a)
        if protocol not in ("pylon", "sma", "victron", "pylon-hv"):
            raise ValueError(f"protocol (={protocol!r}) must be pylon, sma, victron or pylon-hv")
        self.protocol = protocol
        self.high_voltage = protocol == "pylon-hv"
        self.interface, self.channel = interface, channel
        self.keepalive_period_s = keepalive_period_s
        self.force_charge_a = force_charge_a
        self._clock = clock
        self.heartbeat = True
        self.frames = 0
        self.errors = 0
        self.keepalives_sent = 0
        self.values: dict[int, dict[str, float]] = {}  # last decoded value per frame id
        self.ccl_a: float | None = None  # as broadcast
        self.dcl_a: float | None = None
        self.charge_enable = True
        self.discharge_enable = True
        self.force_charge = False
        self.full_charge = False
        self.limit_log: list[tuple[float, float, float]] = []
        self.changed = asyncio.Event()

    # --- what it obeys -------------------------------------------------------------------------

    def _follow(self) -> None:
        if self.ccl_a is None or self.dcl_a is None:
            return
        ccl = self.ccl_a if self.charge_enable else 0.0
        dcl = self.dcl_a if self.discharge_enable else 0.0
        if (ccl, dcl) != (self.charge_limit_a, self.discharge_limit_a):
            self.charge_limit_a, self.discharge_limit_a = ccl, dcl
            self.limit_log.append((time.monotonic(), ccl, dcl))
            del self.limit_log[:-1000]
            self.changed.set()

    def wanted_a(self, t_s: float) -> float:
        """PV and load's current, or the force-charge current while the battery asks for it."""
        wanted = super().wanted_a(t_s)
        return max(wanted, self.force_charge_a) if self.force_charge else wanted

    def handle(self, msg: can.Message) -> None:
        """Decode one frame from the battery and follow it."""
        if msg.is_error_frame or msg.is_remote_frame:
            return
        if msg.is_extended_id != self.high_voltage:
            return
        try:
            v = decode_frame(self.high_voltage, msg.arbitration_id, bytes(msg.data))
        except ValueError:
            self.errors += 1
            return
        if not v:
            return
        self.frames += 1
        self.values[msg.arbitration_id] = v
        fid = msg.arbitration_id
        if fid in (0x351, 0x4220):
            self.ccl_a, self.dcl_a = max(0.0, v["ccl_a"]), max(0.0, v["dcl_a"])
        elif fid == 0x35C:
            self.charge_enable = bool(v["charge_enable"])
            self.discharge_enable = bool(v["discharge_enable"])
            self.force_charge = bool(v["force_charge_i"] or v["force_charge_ii"])
            self.full_charge = bool(v["full_charge"])
        elif fid == 0x4280:
            self.charge_enable = int(v["charge_forbidden"]) != _FORBIDDEN
            self.discharge_enable = int(v["discharge_forbidden"]) != _FORBIDDEN
        elif fid == 0x4250:
            self.force_charge = bool(v["force_charge"])
            self.full_charge = bool(v["full_charge"])
        elif fid in (0x356, 0x4210) and v["voltage_v"] > 0:
            self.voltage_v = v["voltage_v"]
        self._follow()

    # --- the bus -------------------------------------------------------------------------------

    def _keepalive(self) -> can.Message:
        if self.high_voltage:
            # System information (command 2) first and every tenth poll, else ensemble (0).
            command = 2 if self.keepalives_sent % 10 == 0 else 0
            data = bytes([command, 0, 0, 0, 0, 0, 0, 0])
            return can.Message(arbitration_id=_POLL_ID, is_extended_id=True, data=data)
        return can.Message(arbitration_id=_KEEPALIVE_ID, is_extended_id=False, data=bytes(8))

    async def run(self) -> None:
        """Listen and send the keep-alive until cancelled."""
        bus = can.Bus(interface=self.interface, channel=self.channel)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def pump() -> None:
            while not stop.is_set():
                try:
                    msg = bus.recv(0.05)
                except (can.CanError, OSError, ValueError):
                    return
                if msg is not None:
                    loop.call_soon_threadsafe(self.handle, msg)

        reader = asyncio.create_task(asyncio.to_thread(pump), name="sim.can_inverter.rx")
        try:
            while True:
                if self.heartbeat:
                    try:
                        bus.send(self._keepalive())
                        self.keepalives_sent += 1
                    except can.CanError as e:
                        log.debug("inverter sim: keep-alive not sent: %s", e)
                await asyncio.sleep(self.keepalive_period_s)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            bus.shutdown()
