"""Command line: ``bms-gateway run | demo | replay | sim-log | check-config | update | health``."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from gateway import __version__
from gateway.errors import ConfigError, GatewayError, UpdateError
from gateway.settings import Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("gateway")

EXIT_CONFIG = 2
EXIT_UPDATE = 3

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

_COMMANDS = ("run", "demo", "replay", "sim-log", "check-config", "health", "update")


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


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="bms-gateway", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_Formatter
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND", title="commands", parser_class=_Parser)

    def command(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return _with_config(
            sub.add_parser(
                name, help=help_text, description=description, formatter_class=_Formatter
            )
        )

    command(
        "run",
        "run the gateway daemon",
        "Run the gateway until SIGTERM or Ctrl-C; says at start which links are on and off.",
    )
    command(
        "check-config",
        "print the resolved settings, or the error",
        "Load the settings, the profile, the DBC and the OCV table; print the resolved settings "
        "as JSON, or one line naming the file and key that is wrong (exit status 2).",
    )

    hp = command(
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

    rp = command(
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
        type=float,
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

    sp = command(
        "sim-log",
        "write a candump -L log from the pack simulator",
        "Simulate a pack through a home-storage day, faster than real time, and write its CAN "
        "frames (dbc/bms.dbc) as a candump -L log: input for replay and the benchmarks.",
    )
    sp.add_argument("--cells", type=int, default=16, help="series cells")
    sp.add_argument("--hours", type=float, default=1.0, help="simulated hours")
    sp.add_argument("--seed", type=int, default=1, help="random seed of the cell spread")
    sp.add_argument("--chemistry", choices=("lfp", "nmc"), default="lfp", help="cell chemistry")
    sp.add_argument("--capacity-ah", type=float, default=100.0, help="nominal cell capacity (Ah)")
    sp.add_argument(
        "--rate", type=float, default=1.0, help="frame-rate factor (0.1 = ten times fewer frames)"
    )
    sp.add_argument("--out", type=Path, required=True, metavar="FILE", help="the log to write")

    from gateway.demo import DemoInverter  # the demo's choices, where they are defined

    dp = command(
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
        type=float,
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
    _add_update_parser(sub, _with_config)
    return p


def _add_update_parser(sub: Any, with_config: Callable[[Any], Any]) -> None:
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

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = usub.add_parser(name, help=help_text, formatter_class=_Formatter)
        return cast(argparse.ArgumentParser, with_config(parser))

    action("check", "what the signed repository offers")
    action("status", "installed versions, last results, health")
    ap = action("apply", "verify, apply, health-check (or roll back)")
    ap.add_argument("--kind", choices=kinds, help="only this kind (default: every kind offered)")
    ap.add_argument("--version", dest="target_version", help="this version, not the newest")
    ap.add_argument(
        "--force", action="store_true", help="skip the safe-to-update gate; allow a downgrade"
    )
    rb = action("rollback", "back to the version before")
    rb.add_argument("--kind", choices=kinds, default="config", help="what to roll back")


def _update(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.update.manager import UpdateManager
    from gateway.update.model import TargetKind

    mgr = UpdateManager(settings, config_path=args.config)
    if args.update_cmd == "check":
        lines = mgr.check()
    elif args.update_cmd == "status":
        lines = [json.dumps(mgr.status(), indent=2)]
    elif args.update_cmd == "apply":
        kind = TargetKind(args.kind) if args.kind else None
        lines = mgr.apply(kind, args.target_version, force=args.force)
    else:
        lines = [mgr.rollback(TargetKind(args.kind))]
    for line in lines:
        print(line)
    return 0


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _check_files(settings: Settings) -> None:
    """Load what the settings name (DBC, profile, OCV table) and build the control core.

    Raises:
        ConfigError: naming the file, key or threshold that is wrong.
    """
    import can.interfaces

    from gateway.canbus.decode import load_decoder
    from gateway.control import Controller, check_decoder

    if settings.can.interface not in can.interfaces.VALID_INTERFACES:
        known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
        raise ConfigError(
            f"can.interface (={settings.can.interface!r}) is not a python-can interface "
            f"(known here: {known})"
        )
    check_decoder(settings, load_decoder(settings.can))
    Controller(settings)
    if settings.inverter_can.protocol.value != "off":
        from gateway.inverter_can.frames import load_inverter_dbc

        load_inverter_dbc(settings.inverter_can.protocol.high_voltage)


def _config_error(e: BaseException) -> ConfigError | None:
    """The first ConfigError inside ``e`` (an exception group), else None."""
    if isinstance(e, ConfigError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            if (found := _config_error(sub)) is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bms-gateway`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        parser.print_usage(sys.stderr)
        print(
            f"bms-gateway: choose a command: {', '.join(_COMMANDS)} "
            "(try 'bms-gateway demo', or 'bms-gateway --help')",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    try:
        settings = _load(args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    source = str(args.config) if args.config is not None else "defaults"
    if args.config is None and any(k.upper().startswith("BMSGW_") for k in os.environ):
        source = "environment"
    _setup_logging(settings.log.level)
    for text in settings.deprecations:  # on stderr for check-config too
        log.warning("%s", text)
    try:
        if args.cmd == "check-config":
            _check_files(settings)
            from gateway.state_store import describe_ocv_table

            ocv = describe_ocv_table(settings.soc)  # a bad table is a config error
            print(json.dumps(settings.model_dump(mode="json"), indent=2))
            # What the user's OCV table was read as (stderr: stdout stays JSON).
            if ocv:
                print(ocv, file=sys.stderr)
            return 0
        if args.cmd == "health":
            from gateway.history.show import show_health

            return show_health(settings, sys.stdout, args.png)
        if args.cmd == "replay":
            from gateway.replay import replay_to_jsonl

            if not 0.0 <= args.after_end <= 86_400.0:
                raise ConfigError(f"--after-end (={args.after_end}) must be within 0..86400 s")
            return replay_to_jsonl(settings, args.log, args.out, args.tx_out, args.after_end)
        if args.cmd == "sim-log":
            from gateway.sim.log import write_sim_log

            return write_sim_log(
                args.out,
                cells=args.cells,
                hours=args.hours,
                seed=args.seed,
                chemistry=args.chemistry,
                capacity_ah=args.capacity_ah,
                rate=args.rate,
            )
        if args.cmd == "update":
            return _update(settings, args)
        if args.cmd == "run":
            from gateway.app import run

            return run(settings)
        if args.cmd == "demo":
            from gateway.demo import demo

            return demo(
                settings,
                speed=args.speed,
                duration_s=args.duration,
                view=not args.no_view,
                state_dir=args.state_dir,
                inverter=args.inverter,
            )
    except ConfigError as e:
        # Errors found after the settings loaded (a DBC, a profile, an OCV table) name the key
        # and the file they come from; say which settings file led there.
        text = str(e)
        print(
            f"config error: {text if text.startswith(source) else f'{source}: {text}'}",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    except UpdateError as e:
        print(f"update refused: {e}", file=sys.stderr)
        return EXIT_UPDATE
    except GatewayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as eg:
        # A task group (demo) may carry a configuration error found at run time.
        found = _config_error(eg)
        if found is None:
            raise
        print(f"config error: {found}", file=sys.stderr)
        return EXIT_CONFIG
    raise AssertionError(args.cmd)  # argparse allows only the commands above
