"""The loop closed over python-can virtual buses: BMS frames -> Gateway -> battery CAN ->
simulated inverter, which decodes with its own copy of the published layouts and draws current.

One run per protocol family: a healthy pack (the inverter charges), one cell over its maximum
voltage (CCL = 0 sent from the very step that computed it, the inverter stops charging), the BMS
falls silent (the step that sees stale data sends DCL = 0 and both enable flags down), and the
inverter's keep-alive stops (event ``inverter_link_lost``, ``negotiation.keepalive`` false).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can
import cantools
import pytest

from gateway.app import Gateway
from gateway.core.model import ControlOutput
from gateway.settings import Settings
from gateway.sim.can_inverter import CanInverterSim
from tests.conftest import BMS_DBC

CELLS = 16
SENSORS = 4


class _Recorder(Gateway):
    """The daemon's Gateway, recording events and what each step sent to the inverter."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.events: list[str] = []
        self.steps: list[tuple[ControlOutput, int]] = []  # (output, inverter frames sent by it)

    def event(self, name: str, **data: Any) -> None:
        self.events.append(name)
        super().event(name, **data)

    def step(self) -> ControlOutput:
        link = self.inverter_can
        assert link is not None
        before = link.stats.tx_frames
        out = super().step()
        self.steps.append((out, link.stats.tx_frames - before))
        del self.steps[:-2000]
        return out


class _Bms:
    """Sends a 16-cell pack's frames (bms.dbc) every 20 ms while ``on``."""

    def __init__(self, channel: str) -> None:
        self.db = cantools.database.load_file(str(BMS_DBC))
        self.channel = channel
        self.cells_mv = [3300] * CELLS
        self.on = True

    def frames(self) -> list[can.Message]:
        out = []
        cv = self.db.get_message_by_name("BMS_CellVoltages")
        for g in range(CELLS // 4):
            sig: dict[str, float] = {"CellVoltages_Mux": g}
            for i in range(g * 4, g * 4 + 4):
                sig[f"CellVoltage_{i:03d}"] = self.cells_mv[i]
                sig[f"CellVoltage_{i:03d}_invalidFlag"] = 0
            out.append(
                can.Message(arbitration_id=cv.frame_id, data=cv.encode(sig), is_extended_id=False)
            )
        ct = self.db.get_message_by_name("BMS_CellTemperatures")
        temps: dict[str, float] = {"CellTemperatures_Mux": 0}
        for i in range(SENSORS):
            temps[f"CellTemperature_{i:03d}"] = 25.0
            temps[f"CellTemperature_{i:03d}_invalidFlag"] = 0
        out.append(
            can.Message(arbitration_id=ct.frame_id, data=ct.encode(temps), is_extended_id=False)
        )
        pv = self.db.get_message_by_name("BMS_PackValues")
        pack = {
            "PackCurrent": 0.0,
            "PackVoltage": sum(self.cells_mv) / 1000.0,
            "PackCurrent_invalidFlag": 0,
            "PackVoltage_invalidFlag": 0,
        }
        out.append(
            can.Message(arbitration_id=pv.frame_id, data=pv.encode(pack), is_extended_id=False)
        )
        return out

    async def run(self) -> None:
        bus = can.Bus(interface="virtual", channel=self.channel)
        try:
            while True:
                if self.on:
                    for m in self.frames():
                        bus.send(m)
                await asyncio.sleep(0.02)
        finally:
            bus.shutdown()


async def _until(cond: Callable[[], bool], what: str, timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        assert loop.time() < end, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("protocol", ["pylon", "sma", "victron", "pylon-hv"])
async def test_inverter_obeys_cut_stale_and_keepalive_loss(protocol: str, tmp_path: Path) -> None:
    tag = f"{os.getpid()}-{protocol}"
    settings = Settings(
        pack={"cells": CELLS, "temp_sensors": SENSORS, "chemistry": "lfp"},
        can={"interface": "virtual", "channel": f"bms-{tag}"},
        inverter_can={
            "protocol": protocol,
            "interface": "virtual",
            "channel": f"inv-{tag}",
            "keepalive_timeout_s": 0.5,
        },
        limits={"ramp_hold_s": 0.0, "ramp_a_per_s": 1e6},
        timeouts={"current_timeout_s": 0.5, "cell_voltage_timeout_s": 0.5},
        state={"path": str(tmp_path / "estimator.json")},
    )
    gw = _Recorder(settings)
    bms = _Bms(settings.can.channel)
    # The inverter wants to charge 30 A and, later, to discharge: only the battery limits it.
    want = [30.0]
    sim = CanInverterSim(
        protocol, channel=settings.inverter_can.channel, keepalive_period_s=0.1,
        demand_a=lambda _t: want[0],
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, extra=[bms.run, sim.run]))
    try:
        await _until(lambda: (sim.charge_limit_a or 0.0) > 0.0, "a charge limit above 0 A")
        assert sim.current_a(0.0) == pytest.approx(30.0)
        await _until(lambda: "inverter_link_up" in gw.events, "the keep-alive to be heard")
        if protocol == "pylon-hv":  # the system-information poll was answered too
            await _until(lambda: 0x7320 in sim.values, "the HV system information")
            assert sim.values[0x7320]["series_cells"] == CELLS

        # One cell over its maximum voltage: CCL is cut, and sent from the same step.
        n = len(gw.steps)
        bms.cells_mv[5] = 3700
        await _until(lambda: sim.charge_limit_a == 0.0, "the inverter to stop charging")
        cut = next((o, sent) for o, sent in gw.steps[n:] if o.limits.ccl_a.value == 0.0)
        assert cut[1] > 0, "the step that cut CCL sent nothing to the inverter"
        assert sim.current_a(0.0) == 0.0
        assert sim.ccl_a == 0.0
        assert not sim.charge_enable
        assert sim.discharge_enable

        # The BMS falls silent: the first stale step sends DCL = 0 and drops both flags.
        want[0] = -30.0
        await _until(lambda: sim.current_a(0.0) == pytest.approx(-30.0), "discharging")
        n = len(gw.steps)
        bms.on = False
        await _until(lambda: not sim.discharge_enable, "the discharge enable to drop")
        stale = next((o, sent) for o, sent in gw.steps[n:] if o.limits.dcl_a.value == 0.0)
        assert stale[0].limits.ccl_a.value == 0.0
        assert stale[1] > 0, "the stale step sent nothing to the inverter"
        assert sim.dcl_a == 0.0
        assert sim.current_a(0.0) == 0.0
        assert not sim.charge_enable

        # The inverter's keep-alive stops: the link is reported lost; frames keep going out.
        sim.heartbeat = False
        await _until(lambda: "inverter_link_lost" in gw.events, "inverter_link_lost", 10.0)
        assert gw.latest is not None
        assert gw.latest.negotiation is not None
        assert gw.latest.negotiation.keepalive is False
        assert gw.latest.negotiation.connected  # still broadcasting: disobedience still checked
        frames = sim.frames
        await _until(lambda: sim.frames > frames, "frames after the keep-alive loss", 5.0)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@pytest.mark.parametrize("protocol", ["pylon", "sma", "pylon-hv"])
async def test_an_empty_pack_asks_to_be_charged_and_the_inverter_does(
    protocol: str, tmp_path: Path
) -> None:
    tag = f"{os.getpid()}-fc-{protocol}"
    settings = Settings(
        pack={"cells": CELLS, "temp_sensors": SENSORS, "chemistry": "lfp"},
        can={"interface": "virtual", "channel": f"bms-{tag}"},
        inverter_can={"protocol": protocol, "interface": "virtual", "channel": f"inv-{tag}"},
        limits={"ramp_hold_s": 0.0, "ramp_a_per_s": 1e6},
        state={"path": str(tmp_path / "estimator.json")},
    )
    gw = _Recorder(settings)
    bms = _Bms(settings.can.channel)
    bms.cells_mv = [2780] * CELLS  # LFP, below the 2.9 V force-charge threshold: DCL = 0
    sim = CanInverterSim(
        protocol, channel=settings.inverter_can.channel, keepalive_period_s=0.1,
        force_charge_a=10.0, demand_a=lambda _t: -20.0,  # the house wants power
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(gw.run(stop, extra=[bms.run, sim.run]))
    try:
        await _until(lambda: sim.force_charge, "the force-charge request")
        await _until(lambda: sim.ccl_a is not None and sim.ccl_a > 0, "a charge limit")
        assert not sim.discharge_enable
        assert sim.current_a(0.0) == pytest.approx(10.0)  # charging, not feeding the house
        link = gw.inverter_can
        assert link is not None
        assert link.output.requests is not None
        assert link.output.requests.force_charge
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)
