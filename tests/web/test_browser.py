"""The dashboard in a real browser (Debian's headless Chromium) from a running gateway.

A simulated pack on a virtual CAN bus feeds an in-process gateway that publishes to a real
mosquitto and serves the dashboard on loopback. Chromium loads the page; the test reads the DOM
(the cell count, the four limits and their winners), compares the limits with what the gateway
computed at the step the page shows and with what MQTT carried for the same steps, the charge
phase panel (phase, reason, full-charge request) against the same step, waits for a
live update (within 2 s), checks the page says its values are old when no new step comes, and
saves a screenshot as an artifact (``$ARTIFACTS_DIR`` or ``build/artifacts/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiomqtt
import can
import pytest

from gateway.app import Gateway
from gateway.core.health import HealthConfig, analyse
from gateway.core.model import ControlOutput
from gateway.mqtt.payloads import ChargePayload, LimitPayload
from gateway.settings import Settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from tests.conftest import REPO
from tests.core.test_health import Q, history
from tests.mqtt.conftest import Mosquitto
from tests.web.cdp import Browser, require_chromium
from tests.web.helpers import free_port

SPEED = 5.0
CELLS = 24
LIMITS = ("ccl_a", "dcl_a", "cvl_v", "dvl_v")


def _artifacts() -> Path:
    return Path(os.environ.get("ARTIFACTS_DIR", REPO / "build" / "artifacts"))


def _settings(tmp_path: Path, channel: str, broker_port: int, web_port: int, gid: str) -> Settings:
    s = Settings()
    return s.model_copy(
        update={
            "pack": s.pack.model_copy(update={"cells": CELLS, "temp_sensors": 6}),
            "can": s.can.model_copy(update={"interface": "virtual", "channel": channel}),
            "control": s.control.model_copy(update={"gateway_id": gid}),
            "state": s.state.model_copy(update={"path": str(tmp_path / "estimator.json")}),
            "mqtt": s.mqtt.model_copy(
                update={
                    "enabled": True,
                    "port": broker_port,
                    "state_interval_s": 0.2,
                    "discovery": False,
                }
            ),
            # No history file here: the page's empty state, then the report the test hands over.
            "health": s.health.model_copy(update={"enabled": False}),
            "web": s.web.model_copy(
                update={"enabled": True, "port": web_port, "push_interval_s": 0.5}
            ),
        }
    )


def _limits(out: ControlOutput) -> dict[str, tuple[float | None, str]]:
    lim = out.limits
    return {
        key: (p.value, p.winner)
        for key, p in (
            ("ccl_a", LimitPayload.of(lim.ccl_a)),
            ("dcl_a", LimitPayload.of(lim.dcl_a)),
            ("cvl_v", LimitPayload.of(lim.cvl_v)),
            ("dvl_v", LimitPayload.of(lim.dvl_v)),
        )
    }


_DOM = """JSON.stringify({
  seq: document.body.dataset.seq,
  updated: document.body.dataset.updated,
  live: document.body.dataset.live,
  stale_note: document.getElementById('stale-note').hidden ? null
    : document.getElementById('stale-note').textContent,
  cells: document.querySelectorAll('#cells .cell').length,
  limits: Object.fromEntries(['ccl', 'dcl', 'cvl', 'dvl'].map(n => [n, [
    document.getElementById(n + '-value').dataset.value,
    document.getElementById(n + '-winner').dataset.winner,
    document.querySelectorAll('#' + n + '-terms li').length]])),
  links: Array.from(document.querySelectorAll('#links li')).map(e => e.dataset.link),
  health_empty: !document.getElementById('health-empty').hidden,
  health_rows: Array.from(document.querySelectorAll('#health-cells tr')).map(
    e => [e.dataset.cell, e.lastChild.textContent]),
  charge: {
    phase: document.getElementById('charge-phase').dataset.phase,
    shown: document.getElementById('charge-phase').textContent,
    reason: document.getElementById('charge-reason').textContent,
    requested: document.getElementById('charge-full').dataset.requested,
    due: document.getElementById('charge-full').dataset.due,
    full: document.getElementById('charge-full').textContent,
    since: document.getElementById('charge-since').textContent,
  },
})"""


async def _dom(browser: Browser) -> dict[str, Any]:
    text = await browser.evaluate(_DOM)
    result: dict[str, Any] = json.loads(text)
    return result


@pytest.mark.slow
async def test_dashboard_in_chromium(tmp_path: Path, mosquitto: Mosquitto) -> None:
    chromium = require_chromium()
    gid = f"web{uuid.uuid4().hex[:8]}"
    channel = f"web-test-{uuid.uuid4().hex}"
    web_port = free_port()
    m0 = time.monotonic()
    gw = Gateway(
        _settings(tmp_path, channel, mosquitto.port, web_port, gid),
        clock=lambda: (time.monotonic() - m0) * SPEED,
    )
    # Every step's limits as the MQTT payload rounds them, by sequence number.
    steps: dict[int, dict[str, tuple[float | None, str]]] = {}
    charges: dict[int, ChargePayload] = {}  # and its charge phase, as MQTT carries it
    step = gw.step

    def recording_step() -> ControlOutput:
        out = step()
        steps[out.seq] = _limits(out)
        if out.charge is not None:
            charges[out.seq] = ChargePayload.of(out.charge)
        return out

    gw.step = recording_step  # type: ignore[method-assign]
    sim = PackSim(PackSimConfig(cells=CELLS, temp_sensors=6, initial_soc_pct=55.0), seed=2)
    sim_bus = can.Bus(interface="virtual", channel=channel)
    stop = asyncio.Event()
    mqtt_states: list[dict[str, Any]] = []

    async def drive() -> None:
        await run_sim_on_bus(sim_bus, sim, speed=SPEED, current_source=ConstantProfile(-15.0))

    async def listen() -> None:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(f"bms/{gid}/state")
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                mqtt_states.append(json.loads(m.payload))

    run = asyncio.create_task(gw.run(stop, extra=[drive, listen]))
    try:
        async with asyncio.timeout(10.0):
            while gw.web is None or not gw.web.serving or gw.latest is None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        async with Browser(chromium, tmp_path / "chromium") as browser:
            await browser.call("Page.enable")
            await browser.call("Page.navigate", url=f"http://127.0.0.1:{web_port}/")
            ready = "!!(document.getElementById('ccl-value') && document.body.dataset.seq)"
            async with asyncio.timeout(20.0):
                while not await browser.evaluate(ready):  # noqa: ASYNC110 - polls the page
                    await asyncio.sleep(0.1)
            dom = await _dom(browser)
            # Past the start-up hold: the limits have opened (ramp, then max).
            async with asyncio.timeout(30.0):
                while float(dom["limits"]["ccl"][0] or 0) <= 0:
                    await asyncio.sleep(0.2)
                    dom = await _dom(browser)

            assert dom["cells"] == CELLS
            assert {"can", "mqtt"} <= set(dom["links"])
            want = steps[int(dom["seq"])]
            for key in LIMITS:
                value, winner, n_terms = dom["limits"][key[:3]]
                assert float(value) == want[key][0], key
                assert winner == want[key][1], key
                assert n_terms >= 1
            # The charge phase panel: the phase, why, and the full-charge request of that step.
            charge = charges[int(dom["seq"])]
            shown = dom["charge"]
            assert shown["phase"] == shown["shown"] == charge.phase
            assert shown["reason"] == charge.reason != ""
            assert shown["since"].startswith("for ")
            assert shown["requested"] == str(charge.full_charge_requested).lower()
            if charge.full_charge_requested:
                assert shown["full"].startswith(f"requested: {charge.full_charge_reason}")
                due = charge.full_charge_due_in_h
                if due is None:
                    assert shown["due"] == ""
                else:
                    assert float(shown["due"]) == due
                    assert ("due now" if due == 0 else "due in ") in shown["full"]
            else:
                assert shown["full"] == "not requested"
            # MQTT carried the same values for the same steps.
            matched = 0
            for st in mqtt_states:
                if st["seq"] in steps:
                    for key in LIMITS:
                        assert (st[key]["value"], st[key]["winner"]) == steps[st["seq"]][key]
                    matched += 1
            assert matched >= 3

            # A live update within 2 s.
            seq0 = dom["seq"]
            t0 = time.monotonic()
            while (await _dom(browser))["seq"] == seq0:
                assert time.monotonic() - t0 < 2.0, "no live update within 2 s"
                await asyncio.sleep(0.05)

            assert (await _dom(browser))["live"] == "true"

            # No new step (a stalled control loop): the page says its values are old within
            # 3 s (3 push intervals, at least 3 s), and is live again once steps resume.
            web = gw.web
            assert web is not None
            frozen = gw.observed()
            web._observe = lambda: frozen
            async with asyncio.timeout(8.0):
                while (dom := await _dom(browser))["live"] != "false":  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            assert dom["stale_note"] is not None
            assert "no new step" in dom["stale_note"]
            assert dom["seq"] == str(frozen.out.seq if frozen.out else "")
            web._observe = gw.observed
            async with asyncio.timeout(5.0):
                while (dom := await _dom(browser))["live"] != "true":  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            assert dom["stale_note"] is None

            # Cell health: the empty state, then a row per cell once a report arrives.
            assert dom["health_empty"] is True
            assert dom["health_rows"] == []
            leak = 5  # 0-based: the page shows it as cell 6
            gw._on_health(analyse(history(40, leak_cell=leak, cell_count=CELLS), HealthConfig(), Q))
            async with asyncio.timeout(5.0):
                while not (dom := await _dom(browser))["health_rows"]:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            assert dom["health_empty"] is False
            rows = dict(dom["health_rows"])
            assert list(rows) == [str(i) for i in range(1, CELLS + 1)]
            assert "cell_self_discharge" in rows[str(leak + 1)]
            assert rows["1"] == "–"

            png = await browser.screenshot(_artifacts() / "dashboard.png")
            assert png.startswith(b"\x89PNG\r\n\x1a\n")
            assert len(png) > 20_000
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(run, 10.0)
        sim_bus.shutdown()
