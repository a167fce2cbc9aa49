"""The command line's grammar: ``bms-gateway``'s parser, one function per command.

Only argparse here: what each command does is in ``gateway.cli``. The help texts are the user's
documentation of the commands (``bms-gateway COMMAND --help``); an option without help, or a
default not shown, is a stumble (tests/e2e/test_cli_stumbles.py).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from gateway import __version__

__all__ = ["build_parser"]

_DESCRIPTION = (
    "Battery gateway: reads a BMS over CAN (DBC), runs the BMS logic (SoC, protection, limits, "
    "balancing), serves the limits to the inverter over Modbus/SunSpec and publishes "
    "diagnostics over MQTT. Start with 'bms-gateway demo' (no hardware needed), then "
    "'bms-gateway check-config --config FILE' and 'bms-gateway run --config FILE'."
)

_EPILOG = (
    "Every setting can also come from the environment: BMSGW_<SECTION>__<KEY> (it wins over "
    "the file). 'bms-gateway COMMAND --help' shows the options of each command."
)


def _number_type(
    cast: type[float] | type[int], lo: float, hi: float, *, lo_open: bool = False
) -> Any:
    """An argparse ``type``: a finite number within ``lo..hi`` (``lo`` excluded if ``lo_open``).

    A bad value is a usage error naming the option ("argument --hours: ..."), not a config
    error blaming the settings file.
    """

    def parse(text: str) -> float | int:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text} is not a finite number")
        low_ok = value > lo if lo_open else value >= lo
        if not (low_ok and value <= hi):
            if math.isinf(hi):
                bound = f"above {lo:g}" if lo_open else f"at least {lo:g}"
            else:
                bound = f"above {lo:g} and at most {hi:g}" if lo_open else f"within {lo:g}..{hi:g}"
            raise argparse.ArgumentTypeError(f"{text} must be {bound}")
        return value

    return parse


# ``add_subparsers`` returns a private argparse type; this is what we call on it.
_Commands = Any


class _Formatter(argparse.HelpFormatter):
    """Shows an option's default after its help when there is one worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" not in text
            and default not in (None, False, argparse.SUPPRESS)
            and not action.required
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors say what to type next."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print the usage, the error and a pointer to ``--help``; exit 2."""
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")


def _with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``--config FILE`` to a command's parser; returns the parser."""
    sp.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="TOML settings file; BMSGW_<SECTION>__<KEY> variables win over it "
        "(none: built-in defaults)",
    )
    return sp


def _command(
    sub: _Commands, name: str, help_text: str, description: str
) -> argparse.ArgumentParser:
    """A command's parser with ``--config``; ``help_text`` is its line in ``--help``."""
    parser = sub.add_parser(
        name, help=help_text, description=description, formatter_class=_Formatter
    )
    return _with_config(parser)


def build_parser() -> argparse.ArgumentParser:
    """The ``bms-gateway`` parser: ``args.cmd`` is the command (``None`` when none was given)."""
    p = _Parser(
        prog="bms-gateway", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands", parser_class=_Parser)
    # In this order in ``--help``.
    _add_run(sub)
    _add_check_config(sub)
    _add_health(sub)
    _add_replay(sub)
    _add_sim_log(sub)
    _add_demo(sub)
    _add_update(sub)
    return p


def _add_run(sub: _Commands) -> None:
    _command(
        sub,
        "run",
        "run the gateway daemon",
        "Run the gateway until SIGTERM or Ctrl-C; says at start which links are on and off.",
    )


def _add_check_config(sub: _Commands) -> None:
    cp = _command(
        sub,
        "check-config",
        "print the resolved settings, or the error",
        "Load the settings, the profile, the DBC and the OCV table; print the resolved settings "
        "as JSON, or one line naming the file and key that is wrong (exit status 2).",
    )
    cp.add_argument(
        "--defaults",
        action="store_true",
        help="also list, on standard error, the value in force behind each key left unset "
        "whose default the chemistry or the pack decides (the JSON shows null there)",
    )


def _add_health(sub: _Commands) -> None:
    hp = _command(
        sub,
        "health",
        "print the cell health report of the history",
        "Read the daemon's health history (health.history_path) and print per cell the "
        "capacity and R0 trends, the ranking, the forecasts and the warnings.",
    )
    hp.add_argument(
        "--png",
        type=Path,
        metavar="FILE",
        help="also plot the history here (needs the plot extra, matplotlib; none: no plot)",
    )


def _add_replay(sub: _Commands) -> None:
    rp = _command(
        sub,
        "replay",
        "run a CAN log through the pipeline",
        "Replay a CAN log through the decoder and the control core as fast as it can; one JSON "
        "record per second of log time (docs/REPLAY.md). The format comes from the content.",
    )
    rp.add_argument(
        "log", type=Path, help="the CAN log: candump -L, ASC, BLF, TRC, CSV, gzip (any file name)"
    )
    rp.add_argument(
        "--out", type=Path, metavar="FILE", help="JSON Lines output (none: standard output)"
    )
    rp.add_argument(
        "--after-end",
        type=_number_type(float, 0.0, 86_400.0),
        default=0.0,
        metavar="SECONDS",
        help="keep the clock running this long after the last frame, as if the bus fell silent",
    )
    rp.add_argument(
        "--tx-out",
        type=Path,
        metavar="FILE",
        help="also write the frames the gateway would send (inverter CAN, balancing) as a "
        "candump -L log (none: not written)",
    )


def _add_sim_log(sub: _Commands) -> None:
    sp = _command(
        sub,
        "sim-log",
        "write a candump -L log from the pack simulator",
        "Simulate a pack through a home-storage day, faster than real time, and write its CAN "
        "frames (dbc/bms.dbc) as a candump -L log: input for replay and the benchmarks. The "
        "pack is the config's [pack] (cells, temperature sensors, chemistry, capacity) unless "
        "an option below says otherwise.",
    )
    # The pack defaults to the settings' [pack] (of --config, else the built-in 16 LFP cells of
    # 100 Ah with 4 sensors), so that ``replay --config`` with the same file reads the log back.
    sp.add_argument(
        "--cells", type=_number_type(int, 1, 512), help="series cells (none: pack.cells)"
    )
    sp.add_argument(
        "--hours",
        type=_number_type(float, 0.0, math.inf, lo_open=True),
        default=1.0,
        help="simulated hours",
    )
    sp.add_argument("--seed", type=int, default=1, help="random seed of the cell spread")
    sp.add_argument(
        "--chemistry", choices=("lfp", "nmc"), help="cell chemistry (none: pack.chemistry)"
    )
    sp.add_argument(
        "--capacity-ah",
        type=_number_type(float, 0.0, 100_000.0, lo_open=True),
        help="nominal cell capacity (Ah) (none: pack.capacity_ah)",
    )
    sp.add_argument(
        "--rate", type=float, default=1.0, help="frame-rate factor (0.1 = ten times fewer frames)"
    )
    sp.add_argument("--out", type=Path, required=True, metavar="FILE", help="the log to write")


def _add_demo(sub: _Commands) -> None:
    from gateway.demo_config import DemoInverter  # the demo's choices, where they are defined

    dp = _command(
        sub,
        "demo",
        "the whole loop on this machine, no hardware",
        "A simulated pack on a virtual CAN bus, the gateway, its Modbus server on loopback "
        "and an MQTT broker (one already on the configured port, else mosquitto or amqtt), "
        "with a live view. It publishes as demo-<host>, never as a real gateway, and removes "
        "what it retained when it stops.",
    )
    dp.add_argument(
        "--speed", type=float, default=1.0, help="time acceleration (1 = real time, 60 = 1 min/s)"
    )
    dp.add_argument(
        "--duration",
        type=_number_type(float, 0.0, math.inf, lo_open=True),
        default=None,
        metavar="SECONDS",
        help="stop after this many wall seconds (none: run until Ctrl-C)",
    )
    dp.add_argument("--no-view", action="store_true", help="log lines instead of the live view")
    dp.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep the estimator state here between runs (none: a temporary folder)",
    )
    dp.add_argument(
        "--inverter",
        type=DemoInverter,
        choices=list(DemoInverter),
        default=DemoInverter.SUNSPEC,
        help="what closes the loop: sunspec = the simulated storage controller on Modbus; "
        "pylon, sma, victron, pylon-hv = a simulated inverter on battery CAN; none = your own "
        "SunSpec client or inverter",
    )


_UPDATE_NOTE = " A refusal is one line 'update refused: ...' and exit status 3 (docs/UPDATES.md)."
_REPO_NOTE = (
    " Needs [update] metadata_url and targets_url in the config (and the trusted root.json,"
    " [update] root)."
)


def _add_update(sub: _Commands) -> None:
    """``bms-gateway update check|apply|status|rollback`` (gateway/update/, docs/UPDATES.md)."""
    kinds = ("config", "gateway", "bms-firmware")
    up = sub.add_parser(
        "update",
        help="signed updates: check, apply, status, rollback",
        description="Signed updates of the config, the gateway and the BMS firmware "
        "(docs/UPDATES.md).",
        formatter_class=_Formatter,
    )
    usub = up.add_subparsers(
        dest="update_cmd",
        required=True,
        metavar="ACTION",
        title="actions",
        help="what to do",
        parser_class=_Parser,
    )

    def action(
        name: str, help_text: str, description: str, *, repo: bool = True
    ) -> argparse.ArgumentParser:
        parser = usub.add_parser(
            name,
            help=help_text,
            description=description + (_REPO_NOTE if repo else "") + _UPDATE_NOTE,
            formatter_class=_Formatter,
        )
        return _with_config(parser)

    action(
        "check",
        "what the signed repository offers",
        "Refresh the signed metadata and print, per kind (config, gateway, bms-firmware), the "
        "installed version and the newest one offered that fits this gateway. Installs nothing.",
    )
    action(
        "status",
        "installed versions, last results, health",
        "Print as JSON what is installed per kind (current, last-good, previous), the last "
        "result of each kind and the daemon's latest health record. Contacts no repository: "
        "works without [update] metadata_url.",
        repo=False,
    )
    ap = action(
        "apply",
        "verify, apply, health-check (or roll back)",
        "Download and verify the newest offered version (or --version) of each kind, config "
        "first; check it with check-config, switch to it, restart the gateway and watch its "
        "health for [update] health_window_s; roll back by itself if it is not healthy. Starts "
        "only with no alarm active and the pack current below [update] safe_current_a.",
    )
    ap.add_argument("--kind", choices=kinds, help="only this kind (default: every kind offered)")
    ap.add_argument("--version", dest="target_version", help="this version, not the newest")
    ap.add_argument(
        "--force", action="store_true", help="skip the safe-to-update gate; allow a downgrade"
    )
    rb = action(
        "rollback",
        "back to the version before",
        "Switch the config or the gateway back to the version before the current one (else "
        "the last good one), restart and watch its health. BMS firmware is not rolled back: "
        "apply the older signed version with --version and --force. Uses only the versions "
        "kept in [update] state_dir: works without [update] metadata_url.",
        repo=False,
    )
    rb.add_argument("--kind", choices=kinds, default="config", help="what to roll back")
