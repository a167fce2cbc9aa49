"""systemd/install.sh in a throwaway root: install, upgrade beside the running version, roll back.

The script runs for real (a venv per version, a wheel built from this checkout, pip, the symlink
switch, the config's owner and mode) under ``ROOT=<tmp>``; only ``systemctl`` is a stub named
by ``SYSTEMCTL`` that records its calls and plays a service that is running or not, so the test
never touches this machine's systemd. Needs root (chown to the service group) and pip's index
(or its cache) for the dependencies; skipped with the reason otherwise.

Also here: the unit's hardening against what python-can needs. ``MemoryDenyWriteExecute=yes``
forbids writable and executable memory; the kernel's own form of it, ``PR_SET_MDWE`` (Linux 6.3),
is set on a process that then runs the gateway and creates a ctypes callback (the libffi closure
that ctypes-based python-can interfaces register).
"""

from __future__ import annotations

import configparser
import grp
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "systemd" / "install.sh"
VENV_BIN = Path(sys.executable).parent

STUB = """#!/usr/bin/env bash
# A systemctl that records its calls; the service is "active" while $STATE/active exists.
echo "$*" >> "$STATE/calls"
case "$1" in
  is-active) [ -e "$STATE/active" ] ;;
  is-enabled) [ -e "$STATE/enabled" ] ;;
  restart) [ ! -e "$STATE/fail-restart" ] ;;
  enable) touch "$STATE/enabled" "$STATE/active" ;;
  *) true ;;
esac
"""


def _group() -> grp.struct_group:
    """An existing group other than root's, to see that the config gets it."""
    for name in ("nogroup", "daemon", "users"):
        try:
            return grp.getgrnam(name)
        except KeyError:
            continue
    pytest.skip("no non-root group to install the config for")


def _script(
    root: Path, state: Path, *args: str, python: str | None = None
) -> subprocess.CompletedProcess[str]:
    stub = state / "systemctl"
    if not stub.exists():
        stub.write_text(STUB)
        stub.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}
    env.update(
        ROOT=str(root),
        STATE=str(state),
        SYSTEMCTL=str(stub),
        SERVICE_GROUP=_group().gr_name,
        PYTHON=python or f"{sys.base_prefix}/bin/python3",
    )
    return subprocess.run(
        ["bash", str(INSTALL), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )


def _calls(state: Path) -> list[str]:
    path = state / "calls"
    return path.read_text().splitlines() if path.exists() else []


def test_prerequisites_are_checked_first_with_a_clear_message(tmp_path: Path) -> None:
    old = tmp_path / "python3.9"
    old.write_text('#!/bin/sh\ncase "$*" in *version_info\\ \\<*) exit 1;; esac\necho 3.9\n')
    old.chmod(0o755)
    done = _script(tmp_path / "root", tmp_path, python=str(old))
    assert done.returncode != 0
    if os.geteuid() != 0:
        assert "run as root" in done.stderr
    else:
        assert "needs Python 3.11 or newer" in done.stderr
    assert not (tmp_path / "root" / "opt").exists()  # nothing done before the checks pass
    missing = _script(tmp_path / "root", tmp_path, python="/nonexistent/python3")
    assert missing.returncode != 0
    assert ("not found" in missing.stderr) or ("run as root" in missing.stderr)


def _installed(root: Path) -> Path:
    return root / "opt" / "bms-gateway"


@pytest.mark.slow
def test_install_upgrade_and_rollback_in_a_throwaway_root(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("install.sh runs as root (it installs the config root:<service group>)")
    root, state = tmp_path / "root", tmp_path / "state"
    state.mkdir()
    prefix = _installed(root)
    config = root / "etc" / "bms-gateway" / "config.toml"

    # --- first install: default config (CAN on `virtual`), so the service is not enabled.
    first = _script(root, state)
    assert first.returncode == 0, first.stdout + first.stderr
    current = prefix / "current"
    assert current.is_symlink()
    v1 = os.readlink(current)
    assert v1.startswith("venvs/")
    version = subprocess.run(
        [str(current / "bin" / "bms-gateway"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert version.stdout.startswith("bms-gateway ")
    # A wheel, not a copy of the tree: no checkout, no tests, no dev venv in the install.
    assert not list(prefix.rglob(".git"))
    assert not list(prefix.rglob(".venv"))
    for junk in ("tests", "bench", "pyproject.toml", "gateway", "README.md"):
        assert not (prefix / junk).exists(), junk
    site = next((prefix / v1).glob("lib/python3*/site-packages"))
    assert (site / "gateway" / "data" / "dbc" / "bms.dbc").is_file()
    for junk in ("tests", "bench", "docker"):
        assert not (site / junk).exists(), junk
    assert not list((site / "gateway").rglob("test_*.py"))
    assert not list((site / "gateway").rglob("__editable__*"))
    # The config: 0640, root and the service group.
    st = config.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert st.st_uid == 0
    assert st.st_gid == _group().gr_gid
    unit = (root / "etc/systemd/system/bms-gateway.service").read_text()
    assert "ExecStart=/opt/bms-gateway/current/bin/bms-gateway run" in unit
    assert f"SupplementaryGroups={_group().gr_name}" in unit
    assert (root / "etc/systemd/network/80-bms-can.network").is_file()
    calls = _calls(state)
    assert "daemon-reload" in calls
    assert not any(c.startswith("enable") for c in calls)
    assert 'can.interface = "virtual"' in first.stdout
    assert "systemctl enable --now bms-gateway.service" in first.stdout

    # --- the installer edits the config, starts the service, then upgrades.
    config.write_text(
        '[can]\ninterface = "socketcan"\nchannel = "can0"\n\n'
        '[mqtt]\nenabled = true\nusername = "gw"\npassword = "s3cret"\n'
    )
    edited = config.read_text()
    (state / "active").touch()
    upgrade = _script(root, state)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    v2 = os.readlink(current)
    assert v2 != v1
    assert os.readlink(prefix / "previous") == v1
    assert (prefix / v1 / "bin" / "bms-gateway").is_file()  # the old one is kept for rollback
    assert config.read_text() == edited  # the config is kept
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    assert "restart bms-gateway.service" in _calls(state)
    assert "previous version kept" in upgrade.stdout

    # --- rollback: back to v1, the service restarted on it.
    calls_before = len(_calls(state))
    back = _script(root, state, "--rollback")
    assert back.returncode == 0, back.stdout + back.stderr
    assert os.readlink(current) == v1
    assert os.readlink(prefix / "previous") == v2
    assert "restart bms-gateway.service" in _calls(state)[calls_before:]

    # --- an upgrade whose service does not start is rolled back by itself.
    (state / "fail-restart").touch()
    failed = _script(root, state)
    assert failed.returncode != 0
    assert "rolling back" in failed.stdout
    assert os.readlink(current) == v1  # still the version that ran before
    (state / "fail-restart").unlink()
    # Never more than the running version, the previous one (and the one that failed).
    assert len(list((prefix / "venvs").iterdir())) <= 3


def test_network_file_sets_bit_rate_and_bus_off_restart() -> None:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(REPO / "systemd" / "80-bms-can.network")
    assert parser["Match"]["Name"] == "can0"
    assert parser["CAN"]["BitRate"] == "500K"
    assert parser["CAN"]["RestartSec"] == "100ms"  # ip link ... restart-ms 100


def test_gateway_runs_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The kernel's MDWE (what MemoryDenyWriteExecute=yes enforces) refuses W+X memory; a ctypes
    callback and the gateway itself (CAN, control, SunSpec server) still work under it."""
    program = textwrap.dedent(
        f"""
        import ctypes, mmap, os, sys
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
            print("no PR_SET_MDWE"); sys.exit(77)
        try:
            mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        except OSError:
            pass
        else:
            print("W+X allowed: MDWE not in force"); sys.exit(1)
        callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)
        assert callback(41) == 42
        os.execv({str(VENV_BIN / "bms-gateway")!r}, ["bms-gateway", "run", "--config", sys.argv[1]])
        """
    )
    config = tmp_path / "c.toml"
    config.write_text(
        f'[sunspec]\nmode = "server"\nport = 0\n\n[state]\npath = "{tmp_path}/s.json"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", program, str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        out, _ = proc.communicate(timeout=6)
    except subprocess.TimeoutExpired:
        proc.terminate()  # still running after 6 s under MDWE: what we wanted to see
        out, _ = proc.communicate(timeout=30)
    if proc.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    assert proc.returncode == 0, out
    assert "sunspec: serving model 802" in out
    assert "event can_link_up" in out or "CAN virtual:bms0: open" in out
    assert "Traceback" not in out
