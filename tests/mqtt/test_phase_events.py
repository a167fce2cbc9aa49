"""Charge-phase transitions as ``charge_phase`` events on a real mosquitto.

A gateway on a virtual CAN bus, with a simulated pack near the top, goes bulk -> absorption ->
float while ``state`` is sent once a minute: both transitions arrive on ``events`` with their
reasons, which ``state`` alone would have lost. A flapping phase machine is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

import can

from gateway.app import Gateway
from gateway.core.kinds import ChargePhase
from gateway.core.model import ChargeState
from gateway.mqtt.payloads import EventPayload
from gateway.mqtt.publisher import MqttPublisher
from gateway.phase_events import PER_WINDOW, WINDOW_S, PhaseEvents
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from tests.mqtt.conftest import Collector, Mosquitto, on_topic, payload_json
from tests.mqtt.outputs import make_output
from tests.mqtt.test_publisher import Recorder, fast, running

SPEED = 20.0


def _settings(tmp_path: Path, channel: str, port: int, gid: str) -> Settings:
    return Settings.model_validate(
        {
            "can": {"interface": "virtual", "channel": channel},
            "control": {"gateway_id": gid},
            "state": {"path": str(tmp_path / "estimator.json")},
            # Balancing off and a short tail hold: the absorption ends a few seconds after the
            # charge stops. ``state`` once a minute: two transitions fall between two states.
            "balancing": {"mode": "off"},
            "charge": {"tail_hold_s": 5.0},
            "mqtt": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": port,
                "state_interval_s": 60.0,
                "discovery": False,
            },
        }
    )


def _events(c: Collector, topic: str) -> list[dict[str, Any]]:
    return [d for d in map(payload_json, c.on(topic)) if d["event"] == "charge_phase"]


async def test_every_transition_of_a_gateway_is_an_event_with_its_reason(
    tmp_path: Path, mosquitto: Mosquitto, gateway_id: str
) -> None:
    channel = f"phase-test-{uuid.uuid4().hex}"
    m0 = time.monotonic()
    gw = Gateway(
        _settings(tmp_path, channel, mosquitto.port, gateway_id),
        clock=lambda: (time.monotonic() - m0) * SPEED,
    )
    sim = PackSim(PackSimConfig(cells=16, initial_soc_pct=99.0), seed=4)
    sim_bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    topic = f"bms/{gateway_id}/events"

    def current_a(t_s: float) -> float:
        # Charge until the gateway says absorption (the top), then rest: the current tapers.
        out = gw.latest
        at_top = out is not None and out.charge is not None and out.charge.phase != "bulk"
        return 0.0 if at_top else 20.0

    async def drive() -> None:
        # From the gateway's first step on: it sees the phase before the data (bulk, "start").
        while gw.latest is None:  # noqa: ASYNC110 - polls state the gateway owns
            await asyncio.sleep(0.01)
        await run_sim_on_bus(sim_bus, sim, speed=SPEED, current_source=current_a)

    async with Collector(mosquitto.port, topic) as c:
        run = asyncio.create_task(gw.run(stop, extra=[drive]))
        try:
            await c.wait(on_topic(topic, lambda d: d["data"].get("phase") == "float"), 60.0)
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(run, 10.0)
            sim_bus.shutdown()
        events = _events(c, topic)
    for ev in events:
        EventPayload.model_validate(ev)
        assert ev["gateway_id"] == gateway_id
        assert ev["time"] is not None
    # No state message came between them: only the events tell both reasons.
    assert [(e["data"]["previous"], e["data"]["phase"]) for e in events] == [
        ("bulk", "absorption"),
        ("absorption", "float"),
    ]
    absorb, settle = (e["data"] for e in events)
    assert absorb["reason"].startswith("top reached")
    assert "full charge" in absorb["reason"]
    assert absorb["full_charge_requested"] is True
    assert absorb["full_charge_reason"] == "no full charge on record"
    assert settle["reason"].startswith("absorbed")
    assert settle["full_charge_requested"] is False
    assert settle["t_s"] > absorb["t_s"]
    assert absorb["suppressed"] == settle["suppressed"] == 0


def _flap(seq: int, t_s: float) -> Any:
    phase = ChargePhase.FLOAT if seq % 2 else ChargePhase.BULK
    charge = ChargeState(phase, f"flap {seq}", t_s, 53.6, False, "", False, None)
    return dataclasses.replace(make_output(seq=seq, t_s=t_s), charge=charge)


async def test_a_flapping_phase_is_bounded_and_the_drops_counted(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    topic = f"bms/{gateway_id}/events"
    cfg = fast(mosquitto.port, state_interval_s=600.0, cells_interval_s=600.0, discovery=False)
    async with Collector(mosquitto.port, topic) as c:
        pub = MqttPublisher(cfg, gateway_id, Recorder())
        phases = PhaseEvents(pub.event)
        # A transition every control step (10 Hz) for 10 s: 100 transitions, one window.
        for seq in range(101):
            phases.after_step(_flap(seq, 1000.0 + 0.1 * seq))
        # The next window: one more transition, carrying the count of those held back.
        phases.after_step(_flap(101, 1000.0 + WINDOW_S + 1.0))
        async with running(pub):
            await c.wait(on_topic(topic, lambda d: d["data"]["reason"] == "flap 101"))
        events = _events(c, topic)
    assert [e["data"]["reason"] for e in events] == [
        *(f"flap {i}" for i in range(1, PER_WINDOW + 1)),
        "flap 101",
    ]
    assert [e["data"]["suppressed"] for e in events] == [0] * PER_WINDOW + [100 - PER_WINDOW]
    assert phases.suppressed == 0
    assert phases.suppressed_total == 100 - PER_WINDOW
