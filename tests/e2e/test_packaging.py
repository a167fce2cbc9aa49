"""What ships beside the code: the systemd unit, the Docker files, and the wheel's data files.

Docker images cannot be built here (no engine); what can be checked is checked: the compose file
parses and says what the README promises, the entrypoint refuses a bad config with one line, and
the wheel the Dockerfile installs carries the DBC and profiles.
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / "systemd" / "bms-gateway.service")
    return parser


def test_unit_has_notify_watchdog_and_hardening() -> None:
    svc = _unit()["Service"]
    assert svc["Type"] == "notify"
    assert svc["WatchdogSec"]
    assert svc["Restart"] == "on-failure"
    assert svc["DynamicUser"] == "yes"
    assert svc["StateDirectory"] == "bms-gateway"
    assert svc["ConfigurationDirectory"] == "bms-gateway"
    assert svc["ProtectSystem"] == "strict"
    assert svc["ProtectHome"] == "yes"
    assert svc["PrivateTmp"] == "yes"
    assert svc["NoNewPrivileges"] == "yes"
    families = set(svc["RestrictAddressFamilies"].split())
    assert families == {"AF_CAN", "AF_INET", "AF_INET6", "AF_UNIX", "AF_NETLINK"}
    assert set(svc["CapabilityBoundingSet"].split()) == {"CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}
    # The persisted state goes where StateDirectory points.
    assert "BMSGW_STATE__PATH=/var/lib/bms-gateway/" in svc["Environment"]


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this checkout's console script.
    text = (REPO / "systemd" / "bms-gateway.service").read_text()
    unit = tmp_path / "bms-gateway.service"
    unit.write_text(text.replace("/opt/bms-gateway/current/bin", str(VENV_BIN)))
    done = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60, check=False
    )
    # verify exits 0 on unknown keys but says so: any line about our unit is a finding.
    findings = [
        line for line in (done.stdout + done.stderr).splitlines() if "bms-gateway.service" in line
    ]
    assert done.returncode == 0, done.stderr
    assert findings == []


def test_compose_file_parses_and_uses_host_networking() -> None:
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"gateway", "mosquitto"}
    assert services["gateway"]["network_mode"] == "host"  # SocketCAN lives in the host netns
    assert services["gateway"]["build"]["dockerfile"] == "docker/Dockerfile"
    env = services["gateway"]["environment"]
    assert env["BMSGW_CAN__INTERFACE"] == "socketcan"
    assert (REPO / "docker" / "mosquitto.conf").is_file()
    # Modbus in server mode, reachable by the inverter on the LAN, and the user's config mounted
    # where the command reads it.
    assert env["BMSGW_SUNSPEC__MODE"] == "server"
    assert env["BMSGW_SUNSPEC__HOST"] == "0.0.0.0"
    mounts = services["gateway"]["volumes"]
    assert any(m.endswith(":/etc/bms-gateway/config.toml:ro") for m in mounts)
    assert services["gateway"]["command"] == ["run", "--config=/etc/bms-gateway/config.toml"]
    # Every BMSGW_ variable names a real setting (the gateway refuses unknown ones).
    from gateway.settings import load_settings

    old = dict(os.environ)
    try:
        os.environ.update({k: str(v) for k, v in env.items()})
        settings = load_settings(None)
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert settings.sunspec.mode == "server"
    assert settings.mqtt.enabled


def test_dockerfile_runs_as_non_root_through_the_entrypoint() -> None:
    lines = (REPO / "docker" / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert any(line.startswith("ENTRYPOINT") and "entrypoint.sh" in line for line in lines)


def _entrypoint(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["sh", str(REPO / "docker" / "entrypoint.sh"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_entrypoint_checks_the_config_first(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pack]\ncels = 16\n")
    done = _entrypoint("run", "--config", str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"config error: {bad}: pack.cels: unknown setting (did you mean 'cells'?)"
    ]
    good = tmp_path / "good.toml"
    good.write_text("[pack]\ncells = 8\n")
    done = _entrypoint("check-config", "--config", str(good))
    assert done.returncode == 0, done.stderr
    assert '"cells": 8' in done.stdout


def test_entrypoint_takes_config_equals_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[pack]\ncels = 16\n")
    done = _entrypoint("run", f"--config={bad}")
    assert done.returncode == 2
    assert f"config error: {bad}: pack.cels" in done.stderr
    good = tmp_path / "good.toml"
    good.write_text("[pack]\ncells = 6\n")
    done = _entrypoint("check-config", f"--config={good}")
    assert done.returncode == 0, done.stderr
    assert '"cells": 6' in done.stdout


def _engine() -> str | None:
    """Why there is no usable container engine, or None when there is one."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker is not installed"
    info = subprocess.run([docker, "info"], capture_output=True, text=True, timeout=60, check=False)
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        return f"no container engine: {last}"
    return None


@pytest.mark.slow
def test_docker_image_builds_and_checks_a_mounted_config(tmp_path: Path) -> None:
    why = _engine()
    if why is not None:
        pytest.skip(why)
    tag = f"bms-gateway-test:{os.getpid()}"
    build = subprocess.run(
        ["docker", "build", "-f", "docker/Dockerfile", "-t", tag, "."],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    try:
        config = tmp_path / "config.toml"
        config.write_text("[pack]\ncells = 12\n")
        config.chmod(0o644)
        run = subprocess.run(
            ["docker", "run", "--rm", "-v", f"{config}:/etc/bms-gateway/config.toml:ro", tag,
             "check-config", "--config=/etc/bms-gateway/config.toml"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert '"cells": 12' in run.stdout
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, timeout=120, check=False)


@pytest.mark.slow
def test_wheel_carries_the_dbc_and_profiles(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("bms_gateway-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text  # the SPDX form in pyproject.toml
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    for required in (
        "gateway/data/dbc/bms.dbc",
        "gateway/data/dbc/inverter_lv.dbc",
        "gateway/data/dbc/inverter_hv.dbc",
        "gateway/data/dbc/profiles/bms.toml",
        "gateway/data/dbc/profiles/foxbms.toml",
        "gateway/data/ocv/lfp.csv",
        "gateway/data/ocv/nmc.csv",
        "gateway/py.typed",
        # The dashboard's assets: served from the package, never from a CDN.
        "gateway/web/static/index.html",
        "gateway/web/static/app.js",
        "gateway/web/static/style.css",
    ):
        assert required in names, sorted(n for n in names if "data" in n)


def test_license_file_matches_pyproject() -> None:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # SPDX string (PEP 639), no deprecated table
    assert project["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_unit_runs_the_version_install_sh_switches_to() -> None:
    svc = _unit()["Service"]
    assert svc["ExecStart"].startswith("/opt/bms-gateway/current/bin/bms-gateway run --config ")
    assert svc["SupplementaryGroups"] == "bms-gateway"
    assert svc["MemoryDenyWriteExecute"] == "yes"  # checked in tests/e2e/test_install.py
