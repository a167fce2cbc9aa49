"""Command line: ``bms-gateway run | demo | replay | sim-log | check-config | update | health``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gateway import __version__
from gateway.errors import ConfigError, GatewayError, UpdateError
from gateway.settings import Settings, load_settings

__all__ = ["main"]

log = logging.getLogger("gateway")

EXIT_CONFIG = 2
EXIT_UPDATE = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bms-gateway", description=__doc__)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", type=Path, help="TOML settings file (env BMSGW_... wins)")
        return sp

    with_config(sub.add_parser("run", help="run the gateway daemon"))
    with_config(sub.add_parser("check-config", help="print the resolved settings or the error"))

    hp = with_config(sub.add_parser("health", help="print the cell health report of the history"))
    hp.add_argument("--png", type=Path, help="also plot the history here (needs matplotlib)")

    rp = with_config(sub.add_parser("replay", help="run a CAN log through the pipeline"))
    rp.add_argument("log", type=Path, help="candump (.log), ASC (.asc) or BLF (.blf) file")
    rp.add_argument("--out", type=Path, help="JSON Lines output (default: stdout)")
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
        help="also write the frames the gateway would send (inverter CAN, balancing), candump -L",
    )

    sp = with_config(sub.add_parser("sim-log", help="write a candump log from the simulator"))
    sp.add_argument("--cells", type=int, default=16)
    sp.add_argument("--hours", type=float, default=1.0)
    sp.add_argument("--seed", type=int, default=1)
    sp.add_argument("--chemistry", choices=("lfp", "nmc"), default="lfp")
    sp.add_argument("--capacity-ah", type=float, default=100.0)
    sp.add_argument(
        "--rate", type=float, default=1.0, help="frame-rate factor (0.1 = ten times fewer frames)"
    )
    sp.add_argument("--out", type=Path, required=True)

    dp = with_config(sub.add_parser("demo", help="the whole loop on this machine, no hardware"))
    dp.add_argument("--speed", type=float, default=1.0, help="time acceleration (1 = real time)")
    dp.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    dp.add_argument("--no-view", action="store_true", help="log lines instead of the live view")
    dp.add_argument(
        "--state-dir", type=Path, help="keep the estimator state here between runs (default: none)"
    )
    dp.add_argument(
        "--inverter",
        choices=("sunspec", "pylon", "sma", "victron", "pylon-hv", "none"),
        default="sunspec",
        help="simulated inverter: SunSpec over Modbus, a battery-CAN dialect, or none",
    )
    _add_update_parser(sub, with_config)
    return p


def _add_update_parser(sub: Any, with_config: Callable[[Any], Any]) -> None:
    """``bms-gateway update check|apply|status|rollback`` (gateway/update/, docs/UPDATES.md)."""
    kinds = ("config", "gateway", "bms-firmware")
    up = sub.add_parser("update", help="signed updates: check, apply, status, rollback")
    usub = up.add_subparsers(dest="update_cmd", required=True)
    with_config(usub.add_parser("check", help="what the signed repository offers"))
    with_config(usub.add_parser("status", help="installed versions, last results, health"))
    ap = with_config(usub.add_parser("apply", help="verify, apply, health-check (or roll back)"))
    ap.add_argument("--kind", choices=kinds, help="only this kind (default: every kind offered)")
    ap.add_argument("--version", dest="target_version", help="this version, not the newest")
    ap.add_argument(
        "--force", action="store_true", help="skip the safe-to-update gate; allow a downgrade"
    )
    rb = with_config(usub.add_parser("rollback", help="back to the version before"))
    rb.add_argument("--kind", choices=kinds, default="config")


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
    args = _parser().parse_args(argv)
    try:
        settings = _load(args)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(settings.log.level)
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
        print(f"config error: {e}", file=sys.stderr)
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
