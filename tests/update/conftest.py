"""Fixtures of the update tests: a served TUF repository and config files that use it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.update.harness import RepoServer


@pytest.fixture
def repo_server(tmp_path: Path) -> Iterator[RepoServer]:
    """A fresh repository (targets threshold 2) served on 127.0.0.1."""
    server = RepoServer(tmp_path / "repo", thresholds={"targets": 2})
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def channel() -> str:
    """A virtual CAN channel of this test's own."""
    return f"update-test-{uuid.uuid4().hex}"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def config_toml(
    server: RepoServer,
    state_dir: Path,
    channel: str,
    *,
    limits_extra: str = "",
    sunspec_port: int = 0,
) -> str:
    """A gateway config using ``server``, ``channel`` and short health windows."""
    sunspec = (
        f'[sunspec]\nmode = "server"\nhost = "127.0.0.1"\nport = {sunspec_port}\n'
        if sunspec_port
        else ""
    )
    return f"""
[pack]
cells = 8
temp_sensors = 2

[can]
interface = "virtual"
channel = "{channel}"

[limits]
ramp_hold_s = 0.2
ramp_a_per_s = 1000.0
{limits_extra}

[state]
path = "{state_dir / "estimator.json"}"

[update]
metadata_url = "{server.metadata_url}"
targets_url = "{server.targets_url}"
root = "{server.root}"
state_dir = "{state_dir}"
health_window_s = 1.5
health_stale_s = 2.0
restart_timeout_s = 15.0
uds_timeout_s = 0.5
flash_retries = 0

{sunspec}
"""
