"""The publisher against a real mosquitto on loopback, watched by a separate aiomqtt client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from gateway.core.model import Command, CommandResult, SetUserCurrentCap
from gateway.mqtt.config import MqttConfig
from gateway.mqtt.payloads import AlarmsPayload, CellsPayload, StatePayload
from gateway.mqtt.publisher import MqttPublisher, backoff_s
from tests.clock import Clock
from tests.mqtt.conftest import HOST, Collector, Mosquitto, on_topic, payload_json
from tests.mqtt.outputs import OVERVOLTAGE, make_output

REPO = Path(__file__).resolve().parents[2]


def fast(port: int, **kw: Any) -> MqttConfig:
    """Settings with test-speed rates and backoff."""
    base: dict[str, Any] = {
        "enabled": True,
        "host": HOST,
        "port": port,
        "state_interval_s": 0.1,
        "cells_interval_s": 0.2,
        "reconnect_max_s": 0.2,
        "heartbeat_s": 1.0,
        "keepalive_s": 5,
        "timeout_s": 2.0,
    }
    base.update(kw)
    return MqttConfig(**base)


class Recorder:
    """An ``on_command`` that records what it is given."""

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def __call__(self, cmd: Command) -> CommandResult:
        self.commands.append(cmd)
        if isinstance(cmd, SetUserCurrentCap) and cmd.charge_a == 13.0:
            raise RuntimeError("a bug behind on_command")
        return CommandResult(True, f"applied {type(cmd).__name__}")


@contextlib.asynccontextmanager
async def running(pub: MqttPublisher) -> AsyncIterator[MqttPublisher]:
    """Run ``pub.run()`` for the duration of the block, then cancel it."""
    task = asyncio.create_task(pub.run(), name="test.publisher")
    try:
        yield pub
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def disc_filter(prefix: str, gateway_id: str) -> str:
    return f"{prefix}/+/bmsgw_{gateway_id}/+/config"


async def test_publishes_every_topic_well_formed_and_retains_the_right_ones(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    base = f"bms/{gateway_id}"
    async with Collector(
        mosquitto.port, f"{base}/#", disc_filter("homeassistant", gateway_id)
    ) as c:
        pub = MqttPublisher(fast(mosquitto.port), gateway_id, Recorder())
        pub.event("start", version="test")
        pub.publish_output(make_output(seq=7, alarms=(OVERVOLTAGE,), bleed=(2,)))
        async with running(pub):
            avail = await c.wait(on_topic(f"{base}/availability", None))
            assert avail.payload == b"online"
            state = await c.wait(on_topic(f"{base}/state"))
            s = StatePayload.model_validate_json(state.payload)  # type: ignore[arg-type]
            assert (s.seq, s.gateway_id, s.ccl_a.winner, s.ccl_a.value) == (
                7,
                gateway_id,
                "temperature",
                80.0,
            )
            cells = CellsPayload.model_validate_json(
                (await c.wait(on_topic(f"{base}/cells"))).payload
            )  # type: ignore[arg-type]
            assert cells.count == 16
            assert cells.balancing[2]
            alarms = AlarmsPayload.model_validate_json(
                (await c.wait(on_topic(f"{base}/alarms"))).payload
            )  # type: ignore[arg-type]
            assert [a.code for a in alarms.active] == ["cell_overvoltage"]
            bal = payload_json(await c.wait(on_topic(f"{base}/balancing")))
            assert bal["actions"][0]["cell"] == 2
            ev = payload_json(await c.wait(on_topic(f"{base}/events")))
            assert (ev["event"], ev["data"]) == ("start", {"version": "test"})
            # Periodic: state keeps coming without new outputs.
            await c.wait(lambda m: len(c.on(f"{base}/state")) >= 3)
            # Discovery: 28 pack entities + 3 per cell (16) + 1 per sensor (4).
            await c.wait(lambda m: sum("/config" in x.topic.value for x in c.messages) >= 80)

            # A new subscriber gets the retained topics: availability, alarms, balancing, configs.
            async with Collector(
                mosquitto.port, f"{base}/#", disc_filter("homeassistant", gateway_id)
            ) as late:
                await late.wait(lambda m: sum(x.retain for x in late.messages) >= 83)
                retained = {m.topic.value for m in late.messages if m.retain}
                assert {f"{base}/availability", f"{base}/alarms", f"{base}/balancing"} <= retained
                assert f"{base}/state" not in retained
                assert f"{base}/cells" not in retained
                configs = [m for m in late.messages if m.topic.value.endswith("/config")]
                assert len(configs) == 80
                soc = next(m for m in configs if "/soc/" in m.topic.value)
                cfg = payload_json(soc)
                assert cfg["state_topic"] == f"{base}/state"
                assert cfg["device"]["identifiers"] == [f"bmsgw_{gateway_id}"]
            pub.event("stop", reason="test")  # then cancelled, as the supervisor does
        # A clean stop flushes the queue, then says "offline" itself (a clean disconnect sends no
        # last will).
        await c.wait(lambda m: m.topic.value == f"{base}/availability" and m.payload == b"offline")
    names = [payload_json(m)["event"] for m in c.on(f"{base}/events")]
    assert names == ["start", "stop"]
    last = c.messages[-1]
    assert (last.topic.value, last.payload) == (f"{base}/availability", b"offline")


async def test_alarm_changes_go_out_at_once_not_at_the_state_rate(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    base = f"bms/{gateway_id}"
    cfg = fast(mosquitto.port, state_interval_s=600.0, cells_interval_s=600.0, discovery=False)
    clock = Clock()  # the publisher's rates count on it: the state is due only when it moves
    async with Collector(mosquitto.port, f"{base}/alarms", f"{base}/state") as c:
        pub = MqttPublisher(cfg, gateway_id, Recorder(), clock=clock)
        pub.publish_output(make_output(seq=1))
        async with running(pub):
            await c.wait(on_topic(f"{base}/alarms", lambda d: d["active"] == []))
            pub.publish_output(make_output(seq=2, alarms=(OVERVOLTAGE,)))
            pub.publish_output(make_output(seq=3, alarms=(OVERVOLTAGE,)))  # no change: no message
            pub.publish_output(make_output(seq=4))
            await c.wait(on_topic(f"{base}/alarms", lambda d: d["seq"] == 4))
            seqs = [payload_json(m)["seq"] for m in c.on(f"{base}/alarms")]
            assert seqs == [1, 2, 4]
            assert all(m.retain is False for m in c.on(f"{base}/alarms"))  # live delivery
            await c.wait(on_topic(f"{base}/state"))
            # An alarm change wakes the publisher; a state it sent then would arrive before
            # the next change, sent on the next wake.
            pub.publish_output(make_output(seq=5, alarms=(OVERVOLTAGE,)))
            await c.wait(on_topic(f"{base}/alarms", lambda d: d["seq"] == 5))
            pub.publish_output(make_output(seq=6))
            await c.wait(on_topic(f"{base}/alarms", lambda d: d["seq"] == 6))
            assert len(c.on(f"{base}/state")) == 1  # the state waits for its period
            clock.now_s += 600.0
            pub.publish_output(make_output(seq=7, alarms=(OVERVOLTAGE,)))
            await c.wait(on_topic(f"{base}/state", lambda d: d["seq"] == 7))
            assert len(c.on(f"{base}/state")) == 2  # due once the period has passed


async def test_discovery_resent_on_ha_birth_and_removed_when_disabled(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    ha = f"ha{gateway_id}"  # a discovery prefix of this test's own
    configs = disc_filter(ha, gateway_id)
    out = make_output(cells=2, sensors=1)
    per_cell = 25 + 2 * 3 + 1
    async with Collector(mosquitto.port, configs, f"{ha}/status") as c:
        pub = MqttPublisher(fast(mosquitto.port, discovery_prefix=ha), gateway_id, Recorder())
        pub.publish_output(out)
        async with running(pub):
            await c.wait(lambda m: len(c.messages) >= per_cell)
            await c.publish(f"{ha}/status", "online")
            await c.wait(lambda m: len(c.messages) >= 2 * per_cell + 1)
            # A pack that grows a cell gets its entities without waiting for a reconnect.
            pub.publish_output(make_output(cells=3, sensors=1))
            await c.wait(lambda m: m.topic.value.endswith("/cell_003_voltage/config"))
        assert all(m.payload for m in c.messages if m.topic.value.endswith("/config"))

        off = MqttPublisher(
            fast(mosquitto.port, discovery_prefix=ha, discovery=False), gateway_id, Recorder()
        )
        off.publish_output(make_output(cells=3, sensors=1))
        async with running(off):
            await c.wait(lambda m: sum(x.payload == b"" for x in c.messages) >= per_cell + 3)
    # Nothing retained is left under the discovery prefix for this gateway.
    async with Collector(mosquitto.port, configs, f"bms/{gateway_id}/availability") as late:
        await late.wait(on_topic(f"bms/{gateway_id}/availability", None))
        await asyncio.sleep(0.3)
        assert [m.topic.value for m in late.messages if m.topic.value.endswith("/config")] == []


async def test_commands_are_validated_and_answered(mosquitto: Mosquitto, gateway_id: str) -> None:
    base = f"bms/{gateway_id}"
    token = "token-1234"
    rec = Recorder()
    cfg = fast(mosquitto.port, commands=True, command_token=token, discovery=False)
    async with Collector(mosquitto.port, f"{base}/cmd/result") as c:
        pub = MqttPublisher(cfg, gateway_id, rec)
        pub.publish_output(make_output())
        async with running(pub):
            await asyncio.sleep(0)  # let it connect; commands before that are simply not seen

            async def ask(name: str, payload: str, *, retain: bool = False) -> dict[str, Any]:
                n = len(c.messages)
                await c.publish(f"{base}/cmd/{name}", payload, retain=retain)
                await c.wait(lambda m: len(c.messages) > n, timeout_s=5.0)
                reply: dict[str, Any] = payload_json(c.messages[n])
                assert reply["command"] == name
                return reply

            # Wait until the publisher is subscribed: retry a harmless command until answered.
            for _ in range(50):
                n = len(c.messages)
                await c.publish(f"{base}/cmd/reset_alarms", json.dumps({"id": "hello"}))
                with contextlib.suppress(AssertionError):
                    await c.wait(lambda m, n=n: len(c.messages) > n, timeout_s=0.2)
                    break
            rec.commands.clear()
            c.messages.clear()

            ok = await ask("current_cap", json.dumps({"id": "a1", "token": token, "charge_a": 50}))
            assert (ok["accepted"], ok["id"], ok["message"]) == (
                True,
                "a1",
                "applied SetUserCurrentCap",
            )
            # Higher than the computed CCL (80 A): a valid cap; the controller applies min().
            up = await ask("current_cap", json.dumps({"token": token, "charge_a": 5000.0}))
            assert up["accepted"]
            bad = [
                ("current_cap", json.dumps({"token": token, "charge_a": -5})),
                ("current_cap", '{"token": "' + token + '", "charge_a": NaN}'),
                ("current_cap", json.dumps({"token": token, "discharge_a": 1e9})),
                ("current_cap", "{oops"),
                ("current_cap", json.dumps({"token": "wrong", "charge_a": 5})),
                ("balancing_mode", json.dumps({"token": token, "mode": "turbo"})),
                ("launch", json.dumps({"token": token})),
            ]
            for name, payload in bad:
                reply = await ask(name, payload)
                assert not reply["accepted"], (name, payload)
                assert reply["message"].startswith("rejected: ")
            # A retained command is delivered live once (acted on, as sent)...
            live = await ask("reset_alarms", json.dumps({"token": token, "id": "r"}), retain=True)
            assert (live["accepted"], live["id"]) == (True, "r")
            crash = await ask("current_cap", json.dumps({"token": token, "charge_a": 13.0}))
            assert (crash["accepted"], crash["message"]) == (
                False,
                "failed: internal error (RuntimeError)",
            )
            # Still alive and answering after all that.
            mode = await ask("balancing_mode", json.dumps({"token": token, "mode": "off"}))
            assert mode["accepted"]
        # ...but never replayed: a new connection gets it with the retain flag and refuses it.
        n = len(c.messages)
        async with running(MqttPublisher(cfg, gateway_id, rec)):
            replay = payload_json(await c.wait(lambda m: len(c.messages) > n))
        await c.publish(f"{base}/cmd/reset_alarms", b"", retain=True)  # clear it (none listening)
    assert (replay["accepted"], replay["id"]) == (False, "r")
    assert replay["message"] == "rejected: retained commands are ignored"
    caps = [(type(x).__name__, getattr(x, "charge_a", None)) for x in rec.commands]
    assert caps == [
        ("SetUserCurrentCap", 50.0),
        ("SetUserCurrentCap", 5000.0),
        ("ResetAlarms", None),
        ("SetUserCurrentCap", 13.0),
        ("SetBalancingMode", None),
    ]


async def test_commands_are_refused_when_disabled(mosquitto: Mosquitto, gateway_id: str) -> None:
    base = f"bms/{gateway_id}"
    rec = Recorder()
    async with Collector(mosquitto.port, f"{base}/cmd/result", f"{base}/availability") as c:
        pub = MqttPublisher(fast(mosquitto.port, discovery=False), gateway_id, rec)
        async with running(pub):
            await c.wait(on_topic(f"{base}/availability", None))
            await asyncio.sleep(0.2)  # subscribed right after "online"
            await c.publish(f"{base}/cmd/reset_alarms", json.dumps({"id": "z"}))
            reply = payload_json(await c.wait(on_topic(f"{base}/cmd/result")))
    # Not decoded with commands off, so the id is not echoed.
    assert (reply["accepted"], reply["id"]) == (False, None)
    assert reply["message"] == "rejected: unauthorised: commands are disabled"
    assert rec.commands == []


async def test_reconnects_after_broker_restart_and_reports_drops(
    private_mosquitto: Mosquitto, gateway_id: str
) -> None:
    broker = private_mosquitto
    base = f"bms/{gateway_id}"
    cfg = fast(broker.port, queue_size=4, discovery=False)
    watcher = Collector(broker.port, f"{base}/#", identifier=f"watch-{gateway_id}")
    async with watcher as c:
        pub = MqttPublisher(cfg, gateway_id, Recorder())
        pub.publish_output(make_output(seq=1))
        async with running(pub):
            await c.wait(on_topic(f"{base}/state", lambda d: d["seq"] == 1))
            broker.stop()
            for _ in range(100):  # the publisher notices (reader gets EOF) within ms
                if not pub.status.connected:
                    break
                await asyncio.sleep(0.05)
            assert not pub.status.connected
            # While away: new output, an alarm change, and more events than the queue holds.
            pub.publish_output(make_output(seq=2, alarms=(OVERVOLTAGE,)))
            for i in range(10):
                pub.event("tick", i=i)
            assert pub.status.queued == 4
            # A stand-in control loop keeps its pace while the publisher fails to reconnect
            # (connects run in a worker thread; nothing here waits for the broker).
            ticks = 0

            async def control() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(control())
            await asyncio.sleep(0.3)  # a few failed reconnects
            ticker.cancel()
            assert ticks >= 5  # of about 30: the loop was never blocked for long
            broker.start()
            await c.reconnect()
            recovered = await c.wait(
                on_topic(f"{base}/events", lambda d: d["event"] == "mqtt_link_recovered")
            )
            await c.wait(on_topic(f"{base}/state", lambda d: d["seq"] == 2))
            await c.wait(on_topic(f"{base}/alarms", lambda d: d["seq"] == 2))
    data = payload_json(recovered)["data"]
    # The queue held 4 of: the alarm change and 10 ticks -> 7 dropped, the oldest first.
    assert data["dropped"] == 7
    events = [payload_json(m) for m in c.on(f"{base}/events")]
    assert [e["event"] for e in events[:2]] == ["mqtt_link_lost", "mqtt_link_recovered"]
    assert events[0]["data"]["reason"]
    assert events[0]["time"] < events[1]["time"]
    assert data["down_s"] > 0.3
    sent = [payload_json(m)["data"]["i"] for m in c.on(f"{base}/events") if b'"tick"' in m.payload]
    assert sent == [6, 7, 8, 9]
    assert pub.status.events_dropped == 7
    assert pub.status.reconnects >= 1


async def test_last_will_says_offline_when_the_gateway_is_killed(
    mosquitto: Mosquitto, gateway_id: str
) -> None:
    base = f"bms/{gateway_id}"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    script = REPO / "tests" / "mqtt" / "publisher_proc.py"
    async with Collector(mosquitto.port, f"{base}/availability", f"{base}/state") as c:
        proc = subprocess.Popen(  # noqa: ASYNC220 (started once; the loop is not needed meanwhile)
            [sys.executable, str(script), str(mosquitto.port), gateway_id],
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
        )
        try:
            await c.wait(on_topic(f"{base}/state"), timeout_s=15.0)
            assert c.on(f"{base}/availability")[-1].payload == b"online"
            proc.send_signal(signal.SIGKILL)
            proc.wait(5.0)
            offline = await c.wait(
                lambda m: m.topic.value == f"{base}/availability" and m.payload == b"offline"
            )
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert offline.payload == b"offline"


def test_backoff_is_jittered_exponential_and_capped() -> None:
    for attempt in (1, 3, 10, 50):
        bound = 1.5 ** min(10, attempt)
        delays = [backoff_s(attempt, 100.0) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        assert len(set(delays)) == 200  # jittered, not a fixed schedule
        assert max(delays) > bound / 2  # and it does grow with the attempt
    capped = [backoff_s(50, 2.0) for _ in range(200)]
    assert max(capped) == 2.0
    assert min(capped) < 2.0


async def test_broker_lost_in_the_middle_of_a_big_discovery(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path)  # no persistence: after the restart only new retained exist
    broker.start()
    try:
        cfg = fast(broker.port)
        pub = MqttPublisher(cfg, "big", Recorder())
        pub.publish_output(make_output(cells=512, sensors=256))
        configs = disc_filter("homeassistant", "big")
        async with running(pub):
            async with Collector(broker.port, configs) as c:
                await c.wait(lambda m: len(c.messages) >= 50)  # discovery under way
                broker.stop()
            broker.start()
            # The new connection sends the whole discovery again. (QoS 0: mosquitto queues at
            # most 1,000 QoS 1 messages for a subscriber and drops the rest.)
            async with Collector(broker.port, configs, qos=0) as late:
                await late.wait(lambda m: len(late.messages) >= 1820, timeout_s=15.0)
                await asyncio.sleep(0.2)
                assert len({m.topic.value for m in late.messages}) == 1820
            assert "unhandled errors" not in pub.status.last_error
    finally:
        broker.stop()
