"""Command line: ``bms-gateway run | demo | replay | sim-log | check-config | update | health``.

``main`` parses (the grammar is in ``gateway.cli_parser``), loads the settings once, runs the
command's handler and turns the project's errors into one line and an exit status:
``EXIT_CONFIG`` (2) for a configuration error, ``EXIT_UPDATE`` (3) for a refused update, 1 for
any other ``GatewayError``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from gateway.cli_parser import build_parser
from gateway.errors import ConfigError, GatewayError, UpdateError
from gateway.settings import Settings, load_settings

__all__ = ["EXIT_CONFIG", "EXIT_UPDATE", "main"]

log = logging.getLogger("gateway")

EXIT_CONFIG = 2
EXIT_UPDATE = 3

_COMMANDS = ("run", "demo", "replay", "sim-log", "check-config", "health", "update")

#: The parser (tests read its help texts).
_parser = build_parser

#: A command: the settings and the parsed arguments in, the exit status out.
Handler = Callable[[Settings, argparse.Namespace], int]


# --- the commands ------------------------------------------------------------------------------


def _run(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.app import run

    return run(settings)


def _check_config(settings: Settings, args: argparse.Namespace) -> int:
    _check_files(settings)
    from gateway.config_report import chemistry_defaults
    from gateway.state_store import describe_ocv_table

    ocv = describe_ocv_table(settings.soc)  # a bad table is a config error
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    # What the user's OCV table was read as and the chemistry's values behind each unset key
    # (stderr: stdout stays JSON).
    if ocv:
        print(ocv, file=sys.stderr)
    in_force = chemistry_defaults(settings) if args.defaults else []
    if in_force:
        pack = settings.pack
        head = f"defaults in force ({pack.chemistry}, {pack.cells} cells, {pack.capacity_ah:g} Ah):"
        print(head, file=sys.stderr)
        for line in in_force:
            print(f"  {line}", file=sys.stderr)
    return 0


def _check_files(settings: Settings) -> None:
    """Load what the settings name (DBC, profile, OCV table) and build the control core.

    Raises:
        ConfigError: naming the file, key or threshold that is wrong.
    """
    import can.interfaces

    from gateway.canbus.decode import load_decoder
    from gateway.control import Controller
    from gateway.inverter_can.config import InverterProtocol
    from gateway.profile_check import check_decoder

    if settings.can.interface not in can.interfaces.VALID_INTERFACES:
        known = ", ".join(sorted(can.interfaces.VALID_INTERFACES))
        raise ConfigError(
            f"can.interface (={settings.can.interface!r}) is not a python-can interface "
            f"(known here: {known})"
        )
    check_decoder(settings, load_decoder(settings.can))
    Controller(settings)
    if settings.inverter_can.protocol is not InverterProtocol.OFF:
        from gateway.inverter_can.frames import load_inverter_dbc

        load_inverter_dbc(settings.inverter_can.protocol.high_voltage)


def _health(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.history.show import show_health

    return show_health(settings, sys.stdout, args.png)


def _replay(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.replay import replay_to_jsonl

    if not 0.0 <= args.after_end <= 86_400.0:
        raise ConfigError(f"--after-end (={args.after_end}) must be within 0..86400 s")
    return replay_to_jsonl(settings, args.log, args.out, args.tx_out, args.after_end)


def _sim_log(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.sim.log import write_sim_log

    pack = settings.pack
    # The settings' sensor count goes with the settings' cell count; with --cells the simulator
    # keeps its own (one sensor per 4 cells).
    sensors = pack.temp_sensors if args.cells is None else None
    return write_sim_log(
        args.out,
        cells=pack.cells if args.cells is None else args.cells,
        hours=args.hours,
        seed=args.seed,
        chemistry=args.chemistry or pack.chemistry,
        capacity_ah=pack.capacity_ah if args.capacity_ah is None else args.capacity_ah,
        rate=args.rate,
        temp_sensors=sensors,
    )


def _demo(settings: Settings, args: argparse.Namespace) -> int:
    from gateway.demo import demo

    return demo(
        settings,
        speed=args.speed,
        duration_s=args.duration,
        view=not args.no_view,
        state_dir=args.state_dir,
        inverter=args.inverter,
    )


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


_HANDLERS: dict[str, Handler] = {
    "run": _run,
    "check-config": _check_config,
    "health": _health,
    "replay": _replay,
    "sim-log": _sim_log,
    "demo": _demo,
    "update": _update,
}


# --- around every command ----------------------------------------------------------------------


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _config_error(e: BaseException) -> ConfigError | None:
    """The first ConfigError inside ``e`` (an exception group), else None."""
    if isinstance(e, ConfigError):
        return e
    if isinstance(e, BaseExceptionGroup):
        for sub in e.exceptions:
            if (found := _config_error(sub)) is not None:
                return found
    return None


def _no_command(parser: argparse.ArgumentParser) -> int:
    parser.print_usage(sys.stderr)
    print(
        f"bms-gateway: choose a command: {', '.join(_COMMANDS)} "
        "(try 'bms-gateway demo', or 'bms-gateway --help')",
        file=sys.stderr,
    )
    return EXIT_CONFIG


def _handle(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    """Run ``handler``; a project error becomes one line on stderr and the exit status."""
    try:
        return handler(settings, args)
    except ConfigError as e:
        # Errors found after the settings loaded (a DBC, a profile, an OCV table, a check of
        # the control core) name the key; say where it was set, as load_settings does.
        print(f"config error: {settings.origin.label(str(e))}", file=sys.stderr)
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
        print(f"config error: {settings.origin.label(str(found))}", file=sys.stderr)
        return EXIT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bms-gateway`` console script; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd is None:
        return _no_command(parser)
    handler = _HANDLERS.get(args.cmd)
    if handler is None:
        raise AssertionError(args.cmd)  # argparse allows only the commands above
    try:
        settings = _load(args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(settings.log.level)
    for text in (*settings.deprecations, *settings.notices):  # on stderr for check-config too
        log.warning("%s", text)
    return _handle(handler, settings, args)
