"""A controller driven by the pack simulator, for the web tests (no CAN, real control steps)."""

from __future__ import annotations

import socket

from gateway.control import Controller
from gateway.core.model import Command, CommandResult, ControlOutput
from gateway.core.pack import PackConfig
from gateway.settings import Settings
from gateway.sim.pack import PackSim, PackSimConfig
from gateway.web.metrics import Observed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Pack:
    """A simulated pack and a controller stepping it once per simulated second."""

    def __init__(self, cells: int = 16, seed: int = 3) -> None:
        cfg = PackSimConfig(cells=cells, initial_soc_pct=55.0)
        self.ctrl = Controller(
            Settings(pack=PackConfig(cells=cells, temp_sensors=cfg.temp_sensor_count))
        )
        self.sim = PackSim(cfg, seed=seed)
        self.latest: ControlOutput | None = None
        self.commands: list[Command] = []

    def run(self, seconds: int, current_a: float = -20.0) -> ControlOutput:
        for _ in range(seconds):
            self.sim.step(1.0, current_a)
            self.ctrl.ingest(self.sim.readings())
            self.latest = self.ctrl.step(self.sim.t_s)
        assert self.latest is not None
        return self.latest

    def observe(self) -> Observed:
        return Observed(
            out=self.latest,
            links={"can": True, "mqtt": False},
            frames_decoded=1234,
            frames_ignored=5,
            frames_dropped={"length": 2, "unknown_mux": 0, "overflow": 0},
            outputs={"mqtt_sent": 10, "mqtt_dropped": 3},
            info={"gateway_id": "gw1", "version": "test"},
        )

    def command(self, cmd: Command) -> CommandResult:
        self.commands.append(cmd)
        return self.ctrl.command(cmd, self.sim.t_s)
