"""``bms-gateway demo --inverter pylon``: the demo closes the loop through the battery-CAN
inverter simulator (a subprocess, as a user runs it)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_gateway_process import _console_script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.parametrize("inverter", ["pylon", "pylon-hv"])
def test_demo_runs_with_a_battery_can_inverter(inverter: str, tmp_path: Path) -> None:
    cfg = tmp_path / "demo.toml"
    cfg.write_text(
        f"[sunspec]\nport = {_free_port()}\n\n[mqtt]\nport = {_free_port()}\n", encoding="utf-8"
    )
    proc = subprocess.run(
        [_console_script(), "demo", "--inverter", inverter, "--no-view", "--speed", "20",
         "--duration", "12", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=90,
        env={k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")},
        check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"Inverter: {inverter} battery CAN" in out
    currents = [float(m) for m in re.findall(r" I=(-?[0-9.]+)", out)]
    assert any(abs(i) > 1.0 for i in currents), out  # the simulated inverter drives the pack
    assert "inverter_link_up" in out  # its keep-alive (or poll) was heard
