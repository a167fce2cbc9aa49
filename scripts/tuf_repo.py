#!/usr/bin/env python3
"""Operator's TUF repository for bms-gateway updates (keys, signed targets, static metadata).

    tuf_repo.py init      --keys K --publish P [--targets-threshold 2]
    tuf_repo.py bundle    DIR OUT.tar.gz                 (a config bundle from a directory)
    tuf_repo.py image     RAW.bin --version 1.2.0 --hardware bms-a OUT.bin   (a BMS image)
    tuf_repo.py add       --keys K --publish P FILE --kind config|gateway|bms-firmware
                          --version 1.2.0 [--fits gateway_id=site-a,site-b ...] [--name PATH]
    tuf_repo.py timestamp --keys K --publish P [--days 1]   (re-sign before it expires)
    tuf_repo.py show      --keys K --publish P

Serve P with any static web server; ship P/metadata/root.json to the gateways as
``[update].root``; keep K offline. The workflow is in docs/UPDATES.md.
"""

from __future__ import annotations

import argparse
import sys
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.update.firmware import build_image
from gateway.update.model import FITS_KEYS, TargetKind
from gateway.update.repo import OperatorRepo


def _fits(items: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or key not in FITS_KEYS or not values:
            raise ValueError(f"--fits {item!r}: expected KEY=V1,V2 with KEY one of {FITS_KEYS}")
        out[key] = values.split(",")
    return out


def _bundle(src: Path, out: Path) -> None:
    if not (src / "config.toml").is_file():
        raise ValueError(f"{src} has no config.toml")
    with tarfile.open(out, "w:gz") as tar:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(path.relative_to(src)))


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; the exit status."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    def repo_args(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--keys", type=Path, required=True, help="private keys (keep offline)")
        sp.add_argument("--publish", type=Path, required=True, help="directory to serve")
        return sp

    ip = repo_args(sub.add_parser("init", help="create keys and version 1 of every role"))
    ip.add_argument("--targets-threshold", type=int, default=1)
    ip.add_argument("--root-threshold", type=int, default=1)
    bp = sub.add_parser("bundle", help="pack a config directory (config.toml, DBC, OCV, ...)")
    bp.add_argument("src", type=Path)
    bp.add_argument("out", type=Path)
    mp = sub.add_parser("image", help="wrap a raw BMS build in the image header")
    mp.add_argument("raw", type=Path)
    mp.add_argument("--version", required=True)
    mp.add_argument("--hardware", required=True)
    mp.add_argument("out", type=Path)
    ap = repo_args(sub.add_parser("add", help="sign a target and publish new metadata"))
    ap.add_argument("file", type=Path)
    ap.add_argument("--kind", required=True, choices=[k.value for k in TargetKind])
    ap.add_argument("--version", required=True)
    ap.add_argument("--fits", action="append", default=[], help="KEY=V1,V2 (repeatable)")
    ap.add_argument("--name", help="target path (default KIND/FILENAME)")
    tp = repo_args(sub.add_parser("timestamp", help="sign a fresh timestamp"))
    tp.add_argument("--days", type=float, default=1.0)
    repo_args(sub.add_parser("show", help="print role versions, expiries and targets"))
    args = p.parse_args(argv)

    try:
        if args.cmd == "bundle":
            _bundle(args.src, args.out)
            print(f"wrote {args.out}")
            return 0
        if args.cmd == "image":
            args.out.write_bytes(build_image(args.raw.read_bytes(), args.version, args.hardware))
            print(f"wrote {args.out}")
            return 0
        repo = OperatorRepo(args.keys, args.publish)
        if args.cmd == "init":
            root = repo.init({"targets": args.targets_threshold, "root": args.root_threshold})
            print(f"repository created; ship {root} to the gateways as [update].root")
        elif args.cmd == "add":
            path = repo.add_target(
                args.file,
                kind=TargetKind(args.kind),
                version=args.version,
                fits=_fits(args.fits),
                name=args.name,
            )
            print(f"published {path} ({args.kind} {args.version})")
        elif args.cmd == "timestamp":
            expires = datetime.now(UTC) + timedelta(days=args.days)
            print(f"timestamp version {repo.publish_timestamp(expires=expires)}")
        else:
            print(repo.describe())
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
