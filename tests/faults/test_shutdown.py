"""Stopping ``bms-gateway run`` whatever the broker does: SIGTERM in the same loop turn as a
broker failure (the loop held with SIGSTOP so both land together), a second signal, the state
written every time."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from gateway.state_store import load_document
from tests.faults.conftest import SCALE
from tests.faults.proc import Daemon, limits_a, start_daemon
from tests.mqtt.conftest import Mosquitto


def _connected(d: Daemon, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "MQTT connected" in d.output() or "MQTT link to" in d.output():
            return
        time.sleep(0.05)
    raise AssertionError(d.output())


def test_sigterm_during_broker_failure_stops_within_5_s(tmp_path: Path, broker: Mosquitto) -> None:
    tries = 4 * SCALE
    times: list[float] = []
    for i in range(tries):
        work = tmp_path / f"try{i}"
        work.mkdir()
        d = start_daemon(work, mqtt_port=broker.port)
        try:
            d.wait_modbus()
            _connected(d)
            # Hold the loop, fail the broker and ask for the stop: both are seen in one turn.
            d.signal(signal.SIGSTOP)
            broker.stop()
            d.signal(signal.SIGTERM)
            time.sleep(0.05 * (i % 3))
            d.signal(signal.SIGCONT)
            took = d.wait_exit(10.0)
        finally:
            d.kill()
            broker.start()
        out = d.output()
        assert took is not None, f"try {i}: no exit within 10 s\n{out}"
        assert took < 5.0, (i, took)
        assert d.proc.returncode == 0, out
        assert "gateway stopped" in out
        # The state is written on the way out, safety part included.
        assert load_document(d.state_path).safety is not None, out
        times.append(took)
    (tmp_path / "shutdown.json").write_text(json.dumps({"tries": tries, "times_s": times}))


def test_second_signal_forces_the_exit(tmp_path: Path, broker: Mosquitto) -> None:
    d = start_daemon(tmp_path, mqtt_port=broker.port)
    try:
        d.wait_modbus()
        _connected(d)
        assert limits_a(d.modbus_port) == (0.0, 0.0)
        d.signal(signal.SIGSTOP)
        broker.stop()
        d.signal(signal.SIGTERM)
        d.signal(signal.SIGCONT)
        time.sleep(0.05)
        d.signal(signal.SIGTERM)
        took = d.wait_exit(10.0)
    finally:
        d.kill()
    out = d.output()
    assert took is not None, out
    assert took < 5.0
    # Either the second signal forced the exit, or the stop had already finished by then.
    assert "second signal: forcing exit" in out or "gateway stopped" in out
    # The final state write, if the second signal interrupted it, finishes in its thread.
    assert load_document(d.state_path).safety is not None, out
