"""The dashboard server (aiohttp): page and assets, live feed, snapshot, commands, ``/metrics``.

Routes:

- ``GET /``: the dashboard; ``GET /static/...``: its assets, shipped in the package (no CDN).
- ``GET /api/snapshot``: everything the page shows, as JSON (the MQTT payloads of the latest
  step and of the latest health report, links, alarm history, events, plot history).
- ``GET /api/health``: the latest cell health report (``publish_health``) as the MQTT ``health``
  payload (``gateway.mqtt.health.health_payload``), or JSON ``null`` before the first report.
- ``GET /ws``: a WebSocket that receives the snapshot every ``web.push_interval_s``.
- ``POST /api/command/<name>``: a command with the same JSON body and the same rules as MQTT
  (``gateway.mqtt.commands.parse_command``, ``web.token`` in place of ``mqtt.command_token``):
  without a token configured every command is rejected, so the dashboard is read-only.
- ``GET /metrics``: Prometheus text format (``web.metrics``).

The control loop hands each step to ``publish_output`` (bounded work, never awaits); ``run()``
serves and pushes. A failure of the server (a port in use, a bug) is logged and the server is
restarted with capped, jittered backoff; it never stops the control step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.backoff import Jitter, backoff_s
from gateway.core.health import HealthReport
from gateway.core.model import Command, CommandResult, ControlOutput
from gateway.errors import GatewayError
from gateway.mqtt.commands import MAX_PAYLOAD_BYTES, parse_command
from gateway.mqtt.health import health_payload
from gateway.mqtt.payloads import (
    alarms_payload,
    balancing_payload,
    cells_payload,
    command_result_payload,
    state_payload,
)
from gateway.web.config import WebConfig
from gateway.web.history import AlarmLog, EventLog, History
from gateway.web.metrics import GatewayMetrics, Observed

__all__ = ["WebServer", "static_dir"]

log = logging.getLogger(__name__)

_SEND_TIMEOUT_S = 2.0  # a dashboard that cannot take one update in this time is dropped
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def static_dir() -> Path:
    """Folder of the dashboard's assets inside the installed package."""
    return Path(str(resources.files("gateway.web") / "static"))


def _backoff_s(attempt: int, cap_s: float = 30.0) -> float:
    return backoff_s(attempt, cap_s, jitter=Jitter.FULL_CLIPPED)


class WebServer:
    """Serves the dashboard and ``/metrics`` for one gateway.

    Args:
        config: the ``[web]`` settings.
        gateway_id: shown in the page and the payloads.
        observe: what a scrape or an update reads (latest step, links, counters).
        on_command: applies a validated command (the same callback as MQTT's).
        v_window: the cell voltage window (V) that the cell bars span.
        sleep: waits the given seconds before a retry after a failure (tests record the waits
            instead of sleeping them).
    """

    def __init__(
        self,
        config: WebConfig,
        gateway_id: str,
        observe: Callable[[], Observed],
        on_command: Callable[[Command], CommandResult],
        v_window: tuple[float, float] = (2.5, 3.65),
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.config = config
        self._sleep = sleep
        self._gid = gateway_id
        self._observe = observe
        self._on_command = on_command
        self._v_window = v_window
        self._token = config.token.get_secret_value() if config.token is not None else None
        self.metrics = GatewayMetrics(observe)
        self.history = History(config.history_interval_s, config.history_hours * 3600.0)
        self.alarms = AlarmLog()
        self.events = EventLog()
        self._clients: set[web.WebSocketResponse] = set()
        self._wake = asyncio.Event()
        self._failures = 0  # publish_output errors (logged once)
        self._health: tuple[HealthReport, float] | None = None  # latest report, Unix s
        self._health_json: dict[str, Any] | None = None  # its payload, built once when read
        self.port: int | None = None  # bound port once serving
        self.serving = False

    # --- called by the control loop (never blocks, never raises) ------------------------------

    def publish_output(self, out: ControlOutput, step_s: float | None = None) -> None:
        """Take one control step: alarm changes, plot history, step duration."""
        try:
            if step_s is not None:
                self.metrics.observe_step(step_s)
            self.alarms.update(out.alarms, out.t_s, time.time())
            self.history.add(out)
        except Exception:
            # A side output: a bug here must not stop the control step. Logged once.
            self._failures += 1
            if self._failures == 1:
                log.exception("web dashboard: a step could not be recorded")

    def publish_health(self, report: HealthReport) -> None:
        """Keep the latest health report (daily and on request); the page shows it.

        A latest-value holder: constant work, never blocks; the payload is built when read.
        """
        self._health = (report, time.time())
        self._health_json = None

    def health(self) -> dict[str, Any] | None:
        """The latest report as the MQTT ``health`` payload (JSON-friendly); ``None`` before one."""
        if self._health is None:
            return None
        if self._health_json is None:
            report, time_s = self._health
            self._health_json = health_payload(report, self._gid, time_s).model_dump(mode="json")
        return self._health_json

    def event(self, name: str, data: Mapping[str, Any]) -> None:
        """Record a gateway event for the dashboard."""
        self.events.add(name, time.time(), dict(data))

    # --- the snapshot -------------------------------------------------------------------------

    def snapshot(self, *, with_history: bool = True) -> dict[str, Any]:
        """Everything the page shows, JSON-friendly."""
        obs = self._observe()
        out = obs.out
        gid = self._gid
        now = time.time()
        snap: dict[str, Any] = {
            "gateway_id": gid,
            "time": round(now, 3),
            "commands": self._token is not None,
            "push_interval_s": self.config.push_interval_s,
            "v_window": list(self._v_window),
            "links": dict(obs.links),
            "alarm_history": self.alarms.items(),
            "events": self.events.items(),
            "seq": out.seq if out else None,
            "t_s": round(out.t_s, 3) if out else None,
            "health": self.health(),
        }
        if out is not None:
            snap["state"] = state_payload(out, gid, now).model_dump(mode="json")
            snap["cells"] = cells_payload(out, gid, now).model_dump(mode="json")
            snap["alarms"] = alarms_payload(out, gid, now).model_dump(mode="json")
            snap["balancing"] = balancing_payload(out, gid, now).model_dump(mode="json")
        if with_history:
            snap["history"] = {"interval_s": self.history.interval_s, **self.history.columns()}
        return snap

    # --- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        """The aiohttp application (also used by tests with their own runner)."""
        app = web.Application(client_max_size=MAX_PAYLOAD_BYTES, middlewares=[_headers])
        app.router.add_get("/", self._index)
        app.router.add_static("/static/", static_dir(), follow_symlinks=False)
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/api/health", self._health_route)
        app.router.add_get("/ws", self._ws)
        app.router.add_post("/api/command/{name}", self._command)
        if self.config.metrics:
            app.router.add_get("/metrics", self._metrics)
        return app

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(static_dir() / "index.html")

    async def _snapshot(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _health_route(self, request: web.Request) -> web.Response:
        return web.json_response(self.health())

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _command(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            body = b"x" * (MAX_PAYLOAD_BYTES + 1)  # parse_command rejects it with the reason
        parsed = parse_command(name, body, enabled=self._token is not None, token=self._token)
        if parsed.command is None:
            result = CommandResult(False, f"rejected: {parsed.error}")
        else:
            cmd = dataclasses.replace(parsed.command, source=f"web:{parsed.request_id or ''}")
            try:
                result = self._on_command(cmd)
            except GatewayError as e:
                result = CommandResult(False, f"rejected: {e}")
            except Exception as e:
                log.exception("web command %s failed", name)
                result = CommandResult(False, f"failed: internal error ({type(e).__name__})")
        (log.info if result.accepted else log.warning)(
            "web command %s from %s: %s", name, request.remote, result.message
        )
        reply = command_result_payload(name, parsed.request_id, result, self._gid, time.time())
        status = 200 if result.accepted else (403 if "unauthorised" in result.message else 400)
        return web.json_response(reply.model_dump(mode="json"), status=status)

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        if len(self._clients) >= self.config.max_clients:
            raise web.HTTPServiceUnavailable(text="too many open dashboards")
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_PAYLOAD_BYTES)
        await ws.prepare(request)
        self._clients.add(ws)
        try:
            await ws.send_str(json.dumps(self.snapshot(), allow_nan=False))
            async for msg in ws:  # the page sends nothing; this waits for the close
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            self._clients.discard(ws)
        return ws

    # --- serving ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until cancelled; restart with backoff after a failure. Never raises one."""
        attempt = 0
        while True:
            try:
                await self._serve()
            except OSError as e:
                log.warning(
                    "web dashboard cannot listen on %s:%d: %s; retrying",
                    self.config.host,
                    self.config.port,
                    e,
                )
            except Exception:
                log.exception("web dashboard failed; restarting")
            attempt += 1
            await self._sleep(_backoff_s(attempt))

    async def _serve(self) -> None:
        runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.config.host, self.config.port)
            await site.start()
            bound = runner.addresses
            self.port = int(bound[0][1]) if bound else self.config.port
            self.serving = True
            log.info("web dashboard on http://%s:%d/", self.config.host, self.port)
            await self._push_loop()
        finally:
            self.serving = False
            for ws in list(self._clients):
                with contextlib.suppress(Exception):
                    await asyncio.shield(ws.close())
            await runner.cleanup()

    async def _push_loop(self) -> None:
        """Send the snapshot to every open dashboard at ``push_interval_s``."""
        last_seq: int | None = None
        last_history = -1
        while True:
            await asyncio.sleep(self.config.push_interval_s)
            if not self._clients:
                continue
            obs_seq = self._observe().out
            seq = obs_seq.seq if obs_seq else None
            if seq == last_seq and seq is not None:
                continue
            last_seq = seq
            with_history = self.history.version != last_history
            last_history = self.history.version
            text = json.dumps(self.snapshot(with_history=with_history), allow_nan=False)
            await asyncio.gather(*(self._send(ws, text) for ws in list(self._clients)))

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await ws.send_str(text)
        except (TimeoutError, ConnectionError, RuntimeError):
            # Too slow or gone: drop it (the page reconnects).
            self._clients.discard(ws)
            with contextlib.suppress(Exception):
                await ws.close()


@web.middleware
async def _headers(request: web.Request, handler: Any) -> web.StreamResponse:
    resp: web.StreamResponse = await handler(request)
    for k, v in _SECURITY_HEADERS.items():
        resp.headers.setdefault(k, v)
    return resp
