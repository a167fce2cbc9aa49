"""The command line's grammar (``gateway.cli_parser``) and its dispatch (``gateway.cli``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from gateway import cli
from gateway.cli_parser import build_parser
from gateway.demo_config import DemoInverter


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subs.choices)


def test_every_command_has_a_handler_and_is_named_in_the_hint() -> None:
    names = set(_commands(build_parser()))
    assert names == set(cli._HANDLERS)
    assert names == set(cli._COMMANDS)


def test_no_command_parses_to_none() -> None:
    assert build_parser().parse_args([]).cmd is None


def test_replay_arguments_and_defaults() -> None:
    args = build_parser().parse_args(["replay", "day.log", "--after-end", "30"])
    assert (args.cmd, args.log, args.after_end) == ("replay", Path("day.log"), 30.0)
    assert args.out is None
    assert args.tx_out is None
    assert args.config is None


def test_sim_log_needs_out_and_keeps_its_defaults() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sim-log"])
    args = build_parser().parse_args(["sim-log", "--out", "x.log", "--chemistry", "nmc"])
    # The pack (cells, capacity) comes from the settings' [pack] unless given here.
    assert (args.cells, args.hours, args.seed, args.capacity_ah, args.rate) == (
        None,
        1.0,
        1,
        None,
        1.0,
    )
    assert args.chemistry == "nmc"
    assert build_parser().parse_args(["sim-log", "--out", "x.log"]).chemistry is None


def test_demo_inverter_is_the_enum_and_other_values_are_refused() -> None:
    args = build_parser().parse_args(["demo", "--inverter", "pylon-hv", "--no-view"])
    assert args.inverter is DemoInverter.PYLON_HV
    assert args.no_view
    assert build_parser().parse_args(["demo"]).inverter is DemoInverter.SUNSPEC
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--inverter", "fronius"])


def test_update_needs_an_action_and_every_action_takes_config(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["update"])
    cfg = tmp_path / "site.toml"
    for action in ("check", "status", "apply", "rollback"):
        args = build_parser().parse_args(["update", action, "--config", str(cfg)])
        assert (args.cmd, args.update_cmd, args.config) == ("update", action, cfg)
    args = build_parser().parse_args(["update", "apply", "--version", "1.2", "--force"])
    assert (args.target_version, args.force, args.kind) == ("1.2", True, None)
    assert build_parser().parse_args(["update", "rollback"]).kind == "config"


def test_errors_point_to_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["replay"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "Try 'bms-gateway replay --help'." in err


def test_a_project_error_is_one_line_and_its_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [k for k in os.environ if k.upper().startswith("BMSGW_")]:
        monkeypatch.delenv(key)
    # A ConfigError raised after the settings loaded (the profile the config names cannot be
    # read): one line naming the settings file and the key, exit 2.
    log = tmp_path / "day.log"
    log.write_text("(0.000000) can0 100#0000000000000000\n")
    cfg = tmp_path / "site.toml"
    absent = tmp_path / "absent.toml"
    cfg.write_text(f'[can]\nprofile = "{absent}"\n')
    assert cli.main(["replay", str(log), "--config", str(cfg)]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"config error: {cfg}: can.profile: profile {absent}: cannot read: "
        "No such file or directory"
    )


def test_every_update_action_says_what_it_does(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("check", "status", "apply", "rollback"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["update", action, "--help"])
        text = capsys.readouterr().out
        # A description between the usage and the options, naming what the action needs.
        head = " ".join(text.split("options:", 1)[0].split())
        assert "[update] metadata_url" in head, action
        needs_repo = action in ("check", "apply")
        assert ("works without [update] metadata_url" not in head) == needs_repo, action
        assert "exit status 3" in head, action


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["replay", "x.log", "--after-end", "-5"], "argument --after-end: -5 must be within"),
        (["replay", "x.log", "--after-end", "nan"], "argument --after-end: nan is not a finite"),
        (["sim-log", "--out", "y", "--hours", "0"], "argument --hours: 0 must be above 0"),
        (["sim-log", "--out", "y", "--hours", "inf"], "argument --hours: inf is not a finite"),
        (["sim-log", "--out", "y", "--cells", "0"], "argument --cells: 0 must be within 1..512"),
        (["sim-log", "--out", "y", "--capacity-ah", "x"], "argument --capacity-ah: not a number"),
        (["demo", "--duration", "-1"], "argument --duration: -1 must be above 0"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_option(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Not "config error: site.toml: ...": the settings file is not what is wrong.
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2
    assert said in capsys.readouterr().err
