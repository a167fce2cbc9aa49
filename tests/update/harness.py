"""Real parts for the update tests: a TUF repository served on 127.0.0.1, a simulated pack on a
virtual CAN bus, and the gateway daemon (its real ``Gateway`` with the update agent) that the
updater's restart hook restarts from ``<state_dir>/config/current/config.toml``."""

from __future__ import annotations

import asyncio
import functools
import http.server
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can

from gateway.app import Gateway
from gateway.errors import ConfigError
from gateway.settings import Settings, load_settings
from gateway.sim.emitter import run_sim_on_bus
from gateway.sim.inverter import StorageControllerSim
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.sim.profiles import ConstantProfile
from gateway.update.repo import OperatorRepo

__all__ = ["GatewayDaemon", "PackOnBus", "RepoServer"]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


class RepoServer:
    """An operator repository in ``base`` served by ``http.server`` on 127.0.0.1."""

    def __init__(self, base: Path, thresholds: dict[str, int] | None = None) -> None:
        self.repo = OperatorRepo(base / "keys", base / "publish")
        self.root = self.repo.init(thresholds)
        handler = functools.partial(_QuietHandler, directory=str(self.repo.publish_dir))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/metadata/"

    @property
    def targets_url(self) -> str:
        return f"{self.url}/targets/"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _LoopThread:
    """An asyncio loop in a thread running one coroutine until stopped."""

    def __init__(self, main: Callable[[asyncio.Event], Any], name: str) -> None:
        self._main = main
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        async def runner() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._main(self._stop)

        try:
            asyncio.run(runner())
        except BaseException as e:  # reported to the test through .error
            self.error = e
            self._ready.set()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)


class PackOnBus:
    """A simulated pack sending its frames on ``channel`` in real time, at ``current_a``."""

    def __init__(self, channel: str, cells: int, temp_sensors: int) -> None:
        sim = PackSim(
            PackSimConfig(cells=cells, temp_sensors=temp_sensors, initial_soc_pct=60.0), seed=3
        )

        async def main(stop: asyncio.Event) -> None:
            bus = can.Bus(interface="virtual", channel=channel)
            try:
                await run_sim_on_bus(
                    bus, sim, speed=1.0, current_source=ConstantProfile(0.0), stop=stop
                )
            finally:
                bus.shutdown()

        self._thread = _LoopThread(main, "test.pack")

    def stop(self) -> None:
        self._thread.stop()


class GatewayDaemon:
    """The gateway as systemd would run it: the restart hook restarts it from the config the
    ``current`` symlink points at (or ``config_path`` before the first update). With SunSpec in
    server mode a simulated storage controller polls it and records what it was told."""

    def __init__(self, config_path: Path, state_dir: Path) -> None:
        self.config_path = config_path
        self.state_dir = state_dir
        self.starts = 0
        self.start_errors: list[str] = []
        self.told: list[tuple[float, float | None, float | None, str]] = []
        self._thread: _LoopThread | None = None

    def current_config(self) -> Path:
        link = self.state_dir / "config" / "current" / "config.toml"
        return link if link.exists() else self.config_path

    def start(self) -> None:
        try:
            settings = load_settings(self.current_config())
        except ConfigError as e:
            self.start_errors.append(str(e))  # a daemon that cannot start writes no health
            return
        self.starts += 1
        self._thread = _LoopThread(functools.partial(self._main, settings), "test.gateway")

    async def _main(self, settings: Settings, stop: asyncio.Event) -> None:
        gw = Gateway(settings)
        extra = []
        if settings.sunspec.mode == "server":
            inverter = StorageControllerSim("127.0.0.1", settings.sunspec.port, poll_s=0.05)

            async def watch() -> None:
                while True:
                    await asyncio.sleep(0.05)
                    out = gw.latest
                    winner = out.limits.ccl_a.winner if out is not None else ""
                    self.told.append(
                        (
                            time.monotonic(),
                            inverter.charge_limit_a,
                            inverter.discharge_limit_a,
                            winner,
                        )
                    )

            extra = [inverter.run, watch]
        await gw.run(stop, extra=extra)

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def restart(self) -> None:
        self.stop()
        self.start()
