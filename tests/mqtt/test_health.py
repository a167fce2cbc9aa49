"""Health trends end to end: history file -> analytics -> alarms and the ``health`` topic.

A simulated pack on a virtual CAN bus feeds the supervisor; its history file already holds a
fortnight in which cell 4 needed 1 Ah a day less bleeding than the others (a leak). On start the
recorder analyses it: the warning reaches the alarm output and MQTT without cutting any limit,
the ``health`` topic and its Home Assistant sensors appear, ``cmd/health`` publishes again, and
on stop the day so far is in the file.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import can

from gateway.app import Gateway
from gateway.core.model import Severity
from gateway.history import HistoryStore, local_day
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from tests.core.test_health import history
from tests.mqtt.conftest import Collector, Mosquitto

SPEED = 20.0


def _settings(tmp_path: Path, channel: str, port: int, gateway_id: str) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "state": s.state.model_copy(update={"path": str(tmp_path / "estimator.json")}),
            "control": s.control.model_copy(update={"gateway_id": gateway_id}),
            "mqtt": s.mqtt.model_copy(
                update={"enabled": True, "port": port, "discovery_cells": True, "commands": True}
            ),
        }
    )


async def test_leak_in_history_is_warned_and_published(
    tmp_path: Path, mosquitto: Mosquitto, gateway_id: str
) -> None:
    today = local_day(time.time())
    store = HistoryStore(tmp_path / "history.sqlite")
    for rec in history(14, leak_cell=3, seed=5, start_day=today - 14):
        store.write(rec)
    store.close()

    channel = f"health-{uuid.uuid4().hex}"
    settings = _settings(tmp_path, channel, mosquitto.port, gateway_id)
    m0 = time.monotonic()
    gw = Gateway(settings, clock=lambda: (time.monotonic() - m0) * SPEED)
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=60.0), 3)
    sim_bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    base = f"bms/{gateway_id}"
    disc = f"homeassistant/sensor/bmsgw_{gateway_id}/cell_004_self_discharge/config"

    async def drive_sim() -> None:
        await run_sim_on_bus(sim_bus, sim, speed=SPEED, current_source=ConstantProfile(5.0))

    async def scenario() -> None:
        async with Collector(
            mosquitto.port, f"{base}/health", f"{base}/alarms", f"{base}/cmd/result", disc
        ) as sub:
            msg = await sub.wait(lambda m: m.topic.value == f"{base}/health", 10)
            body = json.loads(msg.payload)  # type: ignore[arg-type]
            assert body["days"] == 14
            assert [(w["code"], w["cell"]) for w in body["warnings"]] == [
                ("cell_self_discharge", 3)
            ]
            assert 0.8 < body["self_discharge_pct_per_day"][3] < 1.2
            assert body["weakest"][0] == 3
            # Published like other alarms ...
            await sub.wait(
                lambda m: (
                    m.topic.value == f"{base}/alarms"
                    and any(
                        a["code"] == "cell_self_discharge"
                        for a in json.loads(m.payload)["active"]  # type: ignore[arg-type]
                    )
                ),
                10,
            )
            # ... with a Home Assistant sensor per cell reading the health topic.
            cfg = json.loads((await sub.wait(lambda m: m.topic.value == disc, 10)).payload)  # type: ignore[arg-type]
            assert cfg["state_topic"] == f"{base}/health"
            assert "self_discharge_pct_per_day[3]" in cfg["value_template"]
            # ... never cutting a limit: once data is complete the limits rise as without it.
            async with asyncio.timeout(15):
                while gw.latest is None or gw.latest.limits.ccl_a.value <= 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            out = gw.latest
            assert out.alarms.has("cell_self_discharge")
            assert out.alarms.worst is Severity.WARNING
            assert out.mode == "normal"
            assert "health" not in out.limits.ccl_a.winner
            # On request: a new report.
            n = len(sub.on(f"{base}/health"))
            await sub.publish(f"{base}/cmd/health", json.dumps({"id": "h1"}))
            reply = await sub.wait(lambda m: m.topic.value == f"{base}/cmd/result", 5)
            assert json.loads(reply.payload)["accepted"] is True  # type: ignore[arg-type]
            await sub.wait(lambda m: len(sub.on(f"{base}/health")) > n, 5)
        async with Collector(mosquitto.port, f"{base}/health") as late:  # retained
            assert (await late.wait(lambda m: True, 5)).retain
        stop.set()

    try:
        await gw.run(stop, extra=[drive_sim, scenario])
    finally:
        sim_bus.shutdown()
    store = HistoryStore(tmp_path / "history.sqlite")
    rec = store.day(today)
    store.close()
    assert rec is not None  # the day so far, written at stop
    assert len(rec.cells) == 16
    assert rec.pack.charge_in_ah > 0
    assert all(c.v_max_v > 3.0 for c in rec.cells)
