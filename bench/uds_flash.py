"""BMS firmware flash over UDS/ISO-TP: measured on a virtual bus, estimated for a real bus.

Run: ``.venv/bin/python bench/uds_flash.py [--kib 256] [--runs 3] [--bitrate 500000]``

Measured: ``gateway.update.uds.UdsFlasher.flash`` against ``gateway.sim.bootloader`` on a
python-can ``virtual`` bus in this process (session, SecurityAccess, erase, RequestDownload,
TransferData blocks, RequestTransferExit, check routine, ECUReset, version read), best and
median of ``--runs``. The virtual bus has no bit time: this is the cost of the Python stacks
(udsoncan, can-isotp, python-can) on this machine.

Estimated for a real bus: ISO-TP frames counted exactly for the block size the bootloader grants
(4095-byte requests: a first frame with 6 bytes, consecutive frames with 7, one flow control and
one single-frame response per block), each frame a classic CAN data frame with an 11-bit
identifier and 8 data bytes: 111 bits including the 3-bit intermission without stuff bits, 135
with the worst-case 24 stuff bits. Plus, per block, the separation time STmin the BMS asks for
between consecutive frames and a flash write time, both given on the command line, and a fixed
time for erase and check. The estimate ignores the gateway's own CPU (see the measured figure)
and other traffic on the bus (the BMS is silent in its bootloader).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import uuid

import can

from gateway.sim.bootloader import MAX_BLOCK, BootloaderSim
from gateway.update.config import UpdateConfig
from gateway.update.firmware import HEADER, build_image
from gateway.update.uds import UdsFlasher

FRAME_BITS_NO_STUFF = 111  # 11-bit id, 8 data bytes, incl. 3-bit intermission
FRAME_BITS_WORST = 135  # + 24 stuff bits (worst case over the 98 stuffable bits)


def measure(kib: int, runs: int) -> list[float]:
    """Seconds per complete flash of a ``kib`` KiB image, one per run."""
    times = []
    for _ in range(runs):
        channel = f"bench-uds-{uuid.uuid4().hex}"
        old = build_image(os.urandom(1024), "1.0.0", "bms-sim")
        new = build_image(os.urandom(kib * 1024 - HEADER.size), "1.1.0", "bms-sim")
        with BootloaderSim(channel, old) as sim:
            bus = can.Bus(interface="virtual", channel=channel)
            try:
                with UdsFlasher(bus, UpdateConfig(uds_timeout_s=2.0)) as flasher:
                    t0 = time.perf_counter()
                    result = flasher.flash(new, reset_wait_s=0.0)
                    times.append(time.perf_counter() - t0)
            finally:
                bus.shutdown()
            assert result.version == "1.1.0"
            assert sim.active_version == "1.1.0"
    return times


def frames_for(image_bytes: int, block_request: int = MAX_BLOCK) -> tuple[int, int]:
    """(blocks, CAN frames) to transfer ``image_bytes`` in ``block_request``-byte requests."""
    data_per_block = block_request - 2  # SID 0x36 + block sequence counter
    blocks = math.ceil(image_bytes / data_per_block)
    frames = 0
    remaining = image_bytes
    for _ in range(blocks):
        req = min(data_per_block, remaining) + 2
        remaining -= req - 2
        # First frame carries 6 bytes, each consecutive frame 7; + flow control + response.
        frames += 1 + math.ceil(max(0, req - 6) / 7) + 2
    return blocks, frames


def estimate(
    image_bytes: int, bitrate: int, stmin_ms: float, write_ms_per_block: float, fixed_s: float
) -> tuple[float, float, int, int]:
    """(best, worst) seconds on a real bus, blocks, frames."""
    blocks, frames = frames_for(image_bytes)
    cf_per_block = (frames - 3 * blocks) / blocks
    overhead = blocks * (cf_per_block * stmin_ms + write_ms_per_block) / 1000 + fixed_s
    best = frames * FRAME_BITS_NO_STUFF / bitrate
    worst = frames * FRAME_BITS_WORST / bitrate
    # STmin is the least gap between two consecutive frames; back to back they leave none, so
    # it adds in full (ISO 15765-2 flow control).
    return best + overhead, worst + overhead, blocks, frames


def main() -> int:
    """Print the measured and estimated figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kib", type=int, default=256, help="image size in KiB")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--bitrate", type=int, default=500_000)
    p.add_argument("--write-ms", type=float, default=10.0, help="BMS flash write per 4 KiB block")
    p.add_argument("--fixed-s", type=float, default=2.0, help="erase + check + reset")
    args = p.parse_args()
    size = args.kib * 1024
    times = measure(args.kib, args.runs)
    print(f"image {args.kib} KiB, {args.runs} runs on a python-can virtual bus (this machine):")
    print(
        f"  flash time best {min(times):.2f} s, median {statistics.median(times):.2f} s "
        f"({size / 1024 / statistics.median(times):.0f} KiB/s)"
    )
    blocks, frames = frames_for(size)
    print(f"  {blocks} TransferData blocks of {MAX_BLOCK - 2} bytes, {frames} CAN frames")
    print(f"estimate for a real {args.bitrate / 1000:g} kbit/s bus (classic CAN, 11-bit ids):")
    for stmin in (0.0, 1.0):
        lo, hi, _, _ = estimate(size, args.bitrate, stmin, args.write_ms, args.fixed_s)
        print(
            f"  STmin {stmin:g} ms, write {args.write_ms:g} ms/block, fixed {args.fixed_s:g} s: "
            f"{lo:.1f} .. {hi:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
