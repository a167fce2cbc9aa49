"""Shared case ``stale-values-on-mqtt`` on a real mosquitto: stale values go out as null.

The BMS sends a complete data set (charging at 20 A, 13.2 V) for 20 s, then falls silent. The
case's log runs through the decoder and the controller; the outputs at t = 10 s (live) and at
t = 25 s (silent for 5 s) are published by the real publisher and read back by a subscriber.
"""

from __future__ import annotations

import pytest

from gateway.canbus.decode import load_decoder
from gateway.control import Controller
from gateway.mqtt.publisher import MqttPublisher
from gateway.replay import iter_log
from gateway.settings import load_settings
from tests.conftest import REPO
from tests.mqtt.conftest import Collector, Mosquitto, on_topic, payload_json
from tests.mqtt.test_publisher import running

CASE = REPO.parent / "shared" / "cases" / "stale-values-on-mqtt"


async def test_stale_current_and_power_are_null_on_mqtt(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    if not (CASE / "config.toml").is_file():
        pytest.skip(f"shared case not found at {CASE} (it lives in ../shared/cases)")
    settings = load_settings(CASE / "config.toml")
    decoder = load_decoder(settings.can)
    ctrl = Controller(settings)
    frames = list(iter_log(CASE / "pack.log"))
    t0 = frames[0].t_s
    outputs = {}
    pending = iter(frames)
    for k in (10.0, 25.0, 40.0):
        for f in pending:
            ctrl.ingest(decoder.decode(f.frame_id, f.data, f.t_s, f.extended))
            if f.t_s >= t0 + k - 0.2:
                break
        outputs[k] = ctrl.step(t0 + k)

    cfg = settings.mqtt.model_copy(update={"port": mosquitto.port, "state_interval_s": 0.1})
    topic = f"bms/{gateway_id}/state"
    async with Collector(mosquitto.port, topic) as c:
        pub = MqttPublisher(cfg, gateway_id, lambda cmd: None)  # type: ignore[arg-type,return-value]
        pub.publish_output(outputs[10.0])
        async with running(pub):
            live = payload_json(await c.wait(on_topic(topic)))
            assert live["current_a"] == pytest.approx(20.0)
            assert live["power_w"] == pytest.approx(264.0, rel=1e-3)
            assert live["complete"] is True
            for k in (25.0, 40.0):
                pub.publish_output(outputs[k])
                seq = outputs[k].seq
                state = payload_json(await c.wait(on_topic(topic, lambda p, s=seq: p["seq"] == s)))
                # The right value: from t = 25 s, current and power are unknown.
                assert state["current_a"] is None
                assert state["power_w"] is None
                assert state["complete"] is False
                assert state["ccl_a"]["value"] == 0.0
                assert state["dcl_a"]["value"] == 0.0
