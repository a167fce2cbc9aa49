#!/usr/bin/env python3
"""Signed BMS firmware update, end to end on this machine (no hardware, loopback only).

    .venv/bin/python scripts/update_demo.py [--kib 256]

Builds a TUF repository (two targets keys, both needed) in a temporary directory and serves it
with http.server on 127.0.0.1; starts the simulated BMS bootloader (gateway/sim/bootloader.py)
on a python-can virtual bus running version 1.0.0; then, as a gateway would: ``update check``,
a tampered image refused before transfer, a signed image flashed over UDS with the transfer cut
halfway and resumed, and ``update status``. Everything stops by itself.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import can

from gateway.errors import UpdateError
from gateway.settings import load_settings
from gateway.sim.bootloader import BootloaderSim
from gateway.update.firmware import HEADER, build_image
from gateway.update.manager import UpdateManager
from gateway.update.model import TargetKind
from gateway.update.repo import OperatorRepo

HW = "bms-demo"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return


def main() -> int:
    """Run the demo; the exit status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kib", type=int, default=256, help="image size")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="bms-update-demo-") as tmp_name:
        tmp = Path(tmp_name)
        repo = OperatorRepo(tmp / "keys", tmp / "publish")
        root = repo.init({"targets": 2})
        handler = functools.partial(_Quiet, directory=str(repo.publish_dir))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_port}"
        print(f"TUF repository served at {url} (root: {root})")
        channel = f"update-demo-{os.getpid()}"
        config = tmp / "config.toml"
        config.write_text(
            f'[can]\ninterface = "virtual"\nchannel = "{channel}"\n'
            f'[update]\nmetadata_url = "{url}/metadata/"\ntargets_url = "{url}/targets/"\n'
            f'root = "{root}"\nstate_dir = "{tmp / "state"}"\n'
            "uds_timeout_s = 0.5\nflash_retries = 0\n"  # show the manual resume
        )
        manager = UpdateManager(
            load_settings(config),
            config_path=config,
            restart=lambda: None,
            bus_factory=lambda: can.Bus(interface="virtual", channel=channel),
        )
        image = build_image(os.urandom(args.kib * 1024 - HEADER.size), "1.1.0", HW)
        (tmp / "bms-1.1.0.bin").write_bytes(image)
        repo.add_target(
            tmp / "bms-1.1.0.bin",
            kind=TargetKind.BMS_FIRMWARE,
            version="1.1.0",
            fits={"hardware": [HW]},
        )
        old = build_image(os.urandom(1024), "1.0.0", HW)
        with BootloaderSim(channel, old, hardware=HW) as bms:
            print(f"simulated BMS on virtual CAN '{channel}', running {bms.active_version}")
            print("$ bms-gateway update check")
            for line in manager.check():
                print(f"  {line}")
            published = next((repo.targets_dir / "bms-firmware").glob("*.bms-1.1.0.bin"))
            good = published.read_bytes()
            published.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
            print("$ bms-gateway update apply --kind bms-firmware --force   # mirror tampered")
            try:
                manager.apply_firmware(force=True)
            except UpdateError as e:
                print(f"  update refused: {e}")
            print(f"  blocks the BMS received: {bms.blocks_received}")
            published.write_bytes(good)
            bms.cut_after_blocks = max(1, len(image) // 4093 // 2)  # about half the blocks
            print("$ bms-gateway update apply --kind bms-firmware --force   # cable cut halfway")
            try:
                manager.apply_firmware(force=True)
            except UpdateError as e:
                print(f"  update refused: {e}")
            bms.reconnect()
            print("$ bms-gateway update apply --kind bms-firmware --force   # again")
            print(f"  {manager.apply_firmware(force=True)}")
            print(f"BMS now runs {bms.active_version} (slot {bms.active}; the old slot is kept)")
            print("$ bms-gateway update status")
            status = manager.status()
            print(f"  {json.dumps(status['bms-firmware'])}")
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
