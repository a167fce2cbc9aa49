"""The commands a new user types, through the installed console script: help, errors, replay input.

Each test is one stumble found by trying the gateway from the README alone: a replay of a bad log
that exited 0, help with raw markup or options without help, a config error that did not name
the file, the key or the likely typo, and ``run`` that said nothing about its links.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from gateway.cli import _parser
from tests.e2e.test_gateway_process import _console_script


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}
    return subprocess.run(
        [_console_script(), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )


# --- replay: the content decides, and nothing read is an error -------------------------------


def _bad_logs(tmp: Path) -> dict[str, tuple[Path, str]]:
    empty = tmp / "empty.log"
    empty.write_bytes(b"")
    noise = tmp / "noise.log"
    noise.write_bytes(random.Random(1).randbytes(20_000))
    plain = tmp / "plain.log"  # `candump can0`, and `candump -t a can0`
    plain.write_text(
        "  can0  100   [8]  0C E4 0C E5 0C E6 0C E7\n"
        "  can0  101   [8]  0C E4 0C E5 0C E6 0C E7\n"
        " (1700000000.000000)  can0  102   [8]  0C E4 0C E5 0C E6 0C E7\n"
    )
    prose = tmp / "notes.txt"
    prose.write_text("battery notes\nnothing to see\n")
    return {
        "empty": (empty, "empty"),
        "random bytes": (noise, "not a CAN log python-can can read"),
        "candump without -L": (plain, "this looks like candump without -L: record with"),
        "text": (prose, "not a CAN log python-can can read"),
    }


@pytest.mark.parametrize("case", ["empty", "random bytes", "candump without -L", "text"])
def test_replay_of_a_bad_input_exits_non_zero_with_its_message(tmp_path: Path, case: str) -> None:
    path, message = _bad_logs(tmp_path)[case]
    out = tmp_path / "out.jsonl"
    done = _cli("replay", str(path), "--out", str(out))
    assert done.returncode != 0, done.stderr
    assert message in done.stderr
    assert "candump -L" in done.stderr or case in ("empty",)
    assert len(done.stderr.strip().splitlines()) == 1  # one line, no traceback
    assert not out.exists()  # nothing half-written


def test_replay_reads_a_candump_log_whatever_its_name(tmp_path: Path) -> None:
    log = tmp_path / "pack.log"
    done = _cli("sim-log", "--cells", "4", "--hours", "0.003", "--out", str(log))
    assert done.returncode == 0, done.stderr
    renamed = tmp_path / "capture from site.txt"
    renamed.write_bytes(log.read_bytes())
    out = tmp_path / "out.jsonl"
    config = tmp_path / "c.toml"
    config.write_text("[pack]\ncells = 4\ntemp_sensors = 2\n")
    done = _cli("replay", str(renamed), "--config", str(config), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert len(out.read_text().splitlines()) >= 5


# --- help -----------------------------------------------------------------------------------


def test_help_has_no_raw_markup_and_every_option_has_help_and_its_default() -> None:
    done = _cli("--help")
    assert done.returncode == 0
    assert "``" not in done.stdout
    for cmd in ("run", "demo", "replay", "sim-log", "check-config"):
        assert cmd in done.stdout
    parser = _parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        text = _cli(name, "--help").stdout
        assert "``" not in text, name
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help"
            shown = action.default not in (None, False) and action.option_strings
            if shown:
                assert f"(default: {action.default})" in " ".join(text.split()), (name, action.dest)


def test_no_command_says_what_to_type(tmp_path: Path) -> None:
    done = _cli()
    assert done.returncode == 2
    assert "choose a command: run, demo, replay, sim-log, check-config" in done.stderr
    assert "Traceback" not in done.stderr


# --- config errors: the file, the key, the likely typo ----------------------------------------


def test_a_missing_dbc_names_the_file_and_the_key(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    missing = tmp_path / "nowhere" / "pack.dbc"
    config.write_text(f'[can]\ndbc = ["{missing}"]\n')
    done = _cli("check-config", "--config", str(config))
    assert done.returncode == 2
    line = done.stderr.strip()
    assert line.startswith(f"config error: {config}: can.dbc: ")
    assert str(missing) in line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[pack]\ncels = 16\n", "pack.cels: unknown setting (did you mean 'cells'?)"),
        (
            "[limits]\nramp_hold = 5\n",
            "limits.ramp_hold: unknown setting (did you mean 'ramp_hold_s'?)",
        ),
        ("[mqtt]\nenabeld = true\n", "mqtt.enabeld: unknown setting (did you mean 'enabled'?)"),
        ("[sunspek]\nmode = 'server'\n", "sunspek: unknown setting (did you mean 'sunspec'?)"),
    ],
)
def test_a_typo_names_the_file_and_the_nearest_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "site.toml"
    config.write_text(text)
    done = _cli("check-config", "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.strip() == f"config error: {config}: {expected}"


def test_a_typo_in_the_environment_suggests_the_key() -> None:
    done = _cli("check-config", env={"BMSGW_MQTT__PROT": "1884"})
    assert done.returncode == 2
    assert "BMSGW_MQTT__PROT" in done.stderr
    assert "did you mean 'port'?" in done.stderr


# --- run: which links are on, which are off ---------------------------------------------------


def test_run_says_which_links_are_on_and_off(tmp_path: Path) -> None:
    config = tmp_path / "site.toml"
    config.write_text("[sunspec]\nmode = 'server'\nport = 0\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}
    proc = subprocess.Popen(
        [_console_script(), "run", "--config", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**base, "BMSGW_STATE__PATH": str(tmp_path / "estimator.json")},
    )
    time.sleep(4.0)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "start: CAN on: virtual bms0" in out
    assert "WARNING gateway.app: start: CAN on: virtual" in out  # a daemon on a virtual bus
    assert "start: SunSpec on: server (model 802) on 127.0.0.1:0" in out
    assert "start: MQTT off: no diagnostics published (set mqtt.enabled = true)" in out
