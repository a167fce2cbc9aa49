"""The dashboard server over real loopback HTTP: snapshot, WebSocket, commands, /metrics."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr

from gateway.app import Gateway
from gateway.core.health import HealthConfig, HealthReport, analyse
from gateway.core.kinds import ChargePhase
from gateway.core.model import SetUserCurrentCap
from gateway.mqtt.health import health_payload
from gateway.mqtt.payloads import state_payload
from gateway.settings import Settings
from gateway.web.config import WebConfig
from gateway.web.server import WebServer, static_dir
from tests.clock import wait_until
from tests.core.test_health import Q, history
from tests.web.helpers import Pack, free_port

TOKEN = "s3cret-token"


@contextlib.asynccontextmanager
async def serving(server: WebServer) -> AsyncIterator[str]:
    task = asyncio.create_task(server.run())
    try:
        for _ in range(200):
            if server.serving:
                break
            await asyncio.sleep(0.02)
        assert server.serving
        yield f"http://127.0.0.1:{server.port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _server(pack: Pack, sleep: Any = None, **cfg: object) -> WebServer:
    config = WebConfig(enabled=True, port=free_port(), push_interval_s=0.1, **cfg)  # type: ignore[arg-type]
    kw = {"sleep": sleep} if sleep is not None else {}
    return WebServer(config, "gw1", observe=pack.observe, on_command=pack.command, **kw)


def _samples(text: str) -> dict[str, list[Sample]]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


async def test_metrics_scrape_parses_and_carries_the_step() -> None:
    pack = Pack(cells=16)
    out = pack.run(90)
    server = _server(pack)
    for d in (0.0004, 0.002, 0.03):
        server.publish_output(out, d)
    async with (
        serving(server) as base,
        aiohttp.ClientSession() as http,
        http.get(f"{base}/metrics") as r,
    ):
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=")
        fams = _samples(await r.text())
    volts = fams["bms_cell_voltage_volts"]
    assert len(volts) == 16
    assert {s.labels["cell"] for s in volts} == {str(i) for i in range(1, 17)}
    assert volts[0].value == pytest.approx(out.pack.cell_voltage_v[0])
    (ccl,) = [s for s in fams["bms_current_limit_amperes"] if s.labels["limit"] == "ccl"]
    assert ccl.labels["winner"] == out.limits.ccl_a.winner
    assert ccl.value == pytest.approx(out.limits.ccl_a.value)
    terms = {s.labels["term"] for s in fams["bms_current_limit_term_amperes"]}
    assert {t.name for t in out.limits.ccl_a.terms} <= terms
    assert fams["bms_pack_current_amperes"][0].value == pytest.approx(-20.0)
    assert out.soc is not None
    assert fams["bms_pack_soc_ratio"][0].value == pytest.approx(out.soc.soc_pct / 100)
    assert len(fams["bms_cell_soc_ratio"]) == 16
    # Counters end in _total; drops per reason.
    dropped = {s.labels["reason"]: s.value for s in fams["bms_can_frames_dropped"]}
    assert dropped == {"length": 2.0, "unknown_mux": 0.0, "overflow": 0.0}
    assert fams["bms_can_frames_decoded"][0].name == "bms_can_frames_decoded_total"
    assert fams["bms_mqtt_dropped"][0].name == "bms_mqtt_dropped_total"
    assert fams["bms_mqtt_dropped"][0].value == 3
    assert out.energy is not None
    assert fams["bms_pack_discharged_energy_joules"][0].value == pytest.approx(
        out.energy.discharged_kwh * 3.6e6
    )
    links = {s.labels["link"]: s.value for s in fams["bms_link_up"]}
    assert links == {"can": 1.0, "mqtt": 0.0}
    hist = {
        (s.name, s.labels.get("le")): s.value for s in fams["bms_control_step_duration_seconds"]
    }
    assert hist[("bms_control_step_duration_seconds_count", None)] == 3
    assert hist[("bms_control_step_duration_seconds_bucket", "0.001")] == 1
    assert hist[("bms_control_step_duration_seconds_bucket", "+Inf")] == 3
    modes = {s.labels["bms_mode"]: s.value for s in fams["bms_mode"]}
    assert modes[out.mode] == 1.0
    assert sum(modes.values()) == 1.0
    assert fams["bms_alarm_level"][0].value == int(out.alarms.worst)


async def _scrape(server: WebServer) -> dict[str, list[Sample]]:
    async with (
        serving(server) as base,
        aiohttp.ClientSession() as http,
        http.get(f"{base}/metrics") as r,
    ):
        assert r.status == 200
        return _samples(await r.text())


async def test_metrics_carry_the_charge_phase_and_the_full_charge_request() -> None:
    pack = Pack(cells=16)
    out = pack.run(90)
    charge = out.charge
    assert charge is not None
    # A pack in the middle at start: bulk, a full charge requested (none on record).
    assert charge.phase is ChargePhase.BULK
    assert charge.full_charge_requested
    server = _server(pack)
    fams = await _scrape(server)
    phases = {s.labels["bms_charge_phase"]: s.value for s in fams["bms_charge_phase"]}
    assert phases == {"bulk": 1.0, "absorption": 0.0, "float": 0.0}
    assert fams["bms_full_charge_requested"][0].value == 1.0
    assert fams["bms_grid_charge_requested"][0].value == 0.0
    assert charge.full_charge_due_in_s is not None
    due = fams["bms_full_charge_due_in_seconds"][0].value
    assert due == pytest.approx(charge.full_charge_due_in_s)
    elapsed = fams["bms_charge_phase_elapsed_seconds"][0].value
    assert elapsed == pytest.approx(out.t_s - charge.since_s)
    # Floating with nothing requested: float is the state, the request 0, no due time.
    floating = dataclasses.replace(
        charge,
        phase=ChargePhase.FLOAT,
        full_charge_requested=False,
        full_charge_reason="",
        full_charge_due_in_s=None,
    )
    pack.latest = dataclasses.replace(out, charge=floating)
    fams = await _scrape(server)
    phases = {s.labels["bms_charge_phase"]: s.value for s in fams["bms_charge_phase"]}
    assert phases == {"bulk": 0.0, "absorption": 0.0, "float": 1.0}
    assert fams["bms_full_charge_requested"][0].value == 0.0
    assert "bms_full_charge_due_in_seconds" not in fams


async def test_snapshot_and_websocket_carry_the_mqtt_payloads() -> None:
    pack = Pack(cells=8)
    out = pack.run(60)
    server = _server(pack)
    server.publish_output(out)
    server.event("start", {"version": "x", "odd": object()})
    async with serving(server) as base, aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/snapshot") as r:
            snap = await r.json()
        want = state_payload(out, "gw1", None).model_dump(mode="json")
        for key in ("ccl_a", "dcl_a", "cvl_v", "dvl_v", "soc_pct", "energy_discharged_kwh"):
            assert snap["state"][key] == want[key]
        assert snap["cells"]["count"] == 8
        assert snap["commands"] is False
        assert snap["events"][0]["event"] == "start"
        assert len(snap["history"]["t_s"]) == 1
        async with http.ws_connect(f"{base}/ws") as ws:
            first = json.loads((await ws.receive(timeout=2.0)).data)
            assert first["seq"] == out.seq
            newer = pack.run(1)
            server.publish_output(newer)
            pushed = json.loads((await ws.receive(timeout=2.0)).data)
            assert pushed["seq"] == newer.seq
        async with http.get(f"{base}/") as r:
            page = await r.text()
            assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        # Every asset the page names is served from the package: no CDN.
        assert "http" not in page.replace('href="/metrics"', "")
        for asset in ("app.js", "style.css"):
            assert (static_dir() / asset).is_file()
            async with http.get(f"{base}/static/{asset}") as r:
                assert r.status == 200


async def test_read_only_without_a_token() -> None:
    pack = Pack()
    pack.run(30)
    server = _server(pack)
    async with (
        serving(server) as base,
        aiohttp.ClientSession() as http,
        http.post(f"{base}/api/command/reset_alarms", json={}) as r,
    ):
        assert r.status == 403
        body = await r.json()
    assert body["accepted"] is False
    assert "unauthorised" in body["message"]
    assert pack.commands == []


async def test_commands_with_the_token_follow_the_mqtt_rules() -> None:
    pack = Pack()
    before = pack.run(120, current_a=0.0).limits.ccl_a.value
    server = _server(pack, token=SecretStr(TOKEN))
    url = "{}/api/command/current_cap"
    async with serving(server) as base, aiohttp.ClientSession() as http:
        async with http.post(url.format(base), json={"charge_a": 5.0, "token": "wrong"}) as r:
            assert r.status == 403
        async with http.post(url.format(base), json={"charge_a": -1, "token": TOKEN}) as r:
            assert r.status == 400
            assert "charge_a" in (await r.json())["message"]
        async with http.post(url.format(base), data=b"{" + b" " * 5000, headers={}) as r:
            assert r.status == 400
            # The bound, not a made-up length (the body is read only up to the bound).
            assert (await r.json())["message"] == "rejected: payload too long (over 4096 bytes)"
        async with http.post(
            url.format(base), json={"charge_a": 5.0, "id": "a1", "token": TOKEN}
        ) as r:
            assert r.status == 200
            reply = await r.json()
    assert reply["accepted"] is True
    assert reply["id"] == "a1"
    (cmd,) = pack.commands
    assert isinstance(cmd, SetUserCurrentCap)
    assert cmd.source == "web:a1"
    capped = pack.run(1, current_a=0.0).limits.ccl_a
    assert capped.value == 5.0
    assert capped.winner == "user_cap"
    # A cap above the computed limit never raises it.
    async with (
        serving(server) as base,
        aiohttp.ClientSession() as http,
        http.post(url.format(base), json={"charge_a": 9000.0, "token": TOKEN}) as r,
    ):
        assert r.status == 200
    assert pack.run(1, current_a=0.0).limits.ccl_a.value <= before


async def test_a_port_in_use_is_retried_and_never_raises() -> None:
    waits_s: list[float] = []

    async def retry_wait(s: float) -> None:
        waits_s.append(s)  # recorded, not slept: the test counts retries, not seconds
        await asyncio.sleep(0.01)

    pack = Pack()
    server = _server(pack, sleep=retry_wait)
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", server.config.port)
    task = asyncio.create_task(server.run())
    await wait_until(lambda: len(waits_s) >= 3)  # three attempts failed
    assert not task.done()
    assert not server.serving
    blocker.close()
    await blocker.wait_closed()
    await wait_until(lambda: server.serving)
    assert all(0.0 <= w <= 30.0 for w in waits_s)  # the backoff's cap
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _report(cells: int = 16) -> HealthReport:
    """40 days of a pack with a leaking cell 6 (index 5) and a fading cell 10 (index 9)."""
    recs = history(40, leak_cell=5, fade_cell=9, seed=1, cell_count=cells)
    return analyse(recs, HealthConfig(), Q)


async def test_health_endpoint_serves_the_mqtt_health_payload() -> None:
    pack = Pack(cells=16)
    pack.run(5)
    server = _server(pack)
    report = _report()
    assert report.warnings  # the report has something to show
    async with serving(server) as base, aiohttp.ClientSession() as http:
        # Before the first report: JSON null, and the snapshot says the same.
        async with http.get(f"{base}/api/health") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("application/json")
            assert await r.json() is None
        async with http.get(f"{base}/api/snapshot") as r:
            assert (await r.json())["health"] is None
        server.publish_health(report)
        async with http.get(f"{base}/api/health") as r:
            got = await r.json()
        async with http.get(f"{base}/api/snapshot") as r:
            snap = await r.json()
        async with http.post(f"{base}/api/health", json={}) as r:
            assert r.status == 405  # read-only
    # Exactly what the MQTT ``health`` topic carries for the same report (time: when received).
    want = health_payload(report, "gw1", got["time"]).model_dump(mode="json")
    assert got == want
    assert snap["health"] == want
    assert len(got["capacity_ah"]) == 16
    assert ("cell_self_discharge", 5) in {(w["code"], w["cell"]) for w in got["warnings"]}
    assert got["days"] == report.days > 0
    # A newer report replaces the held one.
    newer = analyse(history(12, leak_cell=5, seed=2), HealthConfig(), Q)
    assert newer.days != report.days
    server.publish_health(newer)
    health = server.health()
    assert health is not None
    assert health["days"] == newer.days


async def test_gateway_hands_health_reports_to_mqtt_and_the_dashboard(tmp_path: Path) -> None:
    s = Settings()
    settings = s.model_copy(
        update={
            "web": s.web.model_copy(update={"enabled": True, "port": free_port()}),
            "state": s.state.model_copy(update={"path": str(tmp_path / "estimator.json")}),
        }
    )
    gw = Gateway(settings)
    assert gw.web is not None
    assert gw.web.health() is None
    report = _report(settings.pack.cells)
    gw._on_health(report)
    got = gw.web.health()
    assert got is not None
    assert got == health_payload(report, settings.control.gateway_id, got["time"]).model_dump(
        mode="json"
    )
