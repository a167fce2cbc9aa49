"""A simulated BMS bootloader: the UDS subset of a flash sequence over ISO-TP on python-can.

It keeps two image slots (one active, one staged), checks an image's CRC-32 and version
(``gateway.update.firmware`` format) and reports them, so updates run in tests, the bench and a
demo without hardware. Services (ISO 14229-1): DiagnosticSessionControl 0x10 (default,
programming, extended), SecurityAccess 0x27 (key = HMAC-SHA256(secret, seed)[:4]),
RoutineControl 0x31 (0xFF00 erase, 0x0202 check with the expected CRC-32), RequestDownload 0x34
(address = byte offset in the staged slot, so a transfer resumes at what arrived), TransferData
0x36, RequestTransferExit 0x37, ECUReset 0x11, ReadDataByIdentifier 0x22 (0xF195 software
version, 0xF191 hardware, 0xFD00 staged bytes, 0xFD01 active slot) and TesterPresent 0x3E.

Test hooks: ``cut_after_blocks`` makes it fall silent after that many TransferData blocks (a
pulled cable or a power cut) until :meth:`reconnect`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import threading
import time
import zlib
from dataclasses import dataclass

import can
import isotp

from gateway.update.firmware import image_problem, parse_header
from gateway.update.model import Version

__all__ = ["BootloaderSim", "security_key"]

log = logging.getLogger(__name__)

# Negative response codes (ISO 14229-1 annex A.1).
NRC_SUBFUNCTION = 0x12
NRC_FORMAT = 0x13
NRC_CONDITIONS = 0x22
NRC_SEQUENCE = 0x24
NRC_OUT_OF_RANGE = 0x31
NRC_DENIED = 0x33
NRC_INVALID_KEY = 0x35
NRC_UPLOAD_DOWNLOAD = 0x70
NRC_SUSPENDED = 0x71
NRC_WRONG_BSC = 0x73
NRC_NOT_IN_SESSION = 0x7F

DID_SW_VERSION = 0xF195
DID_HW_NUMBER = 0xF191
DID_STAGED_BYTES = 0xFD00
DID_ACTIVE_SLOT = 0xFD01
ROUTINE_ERASE = 0xFF00
ROUTINE_CHECK = 0x0202
MAX_BLOCK = 4095  # maxNumberOfBlockLength (SID + counter + data), one ISO-TP classic frame


def security_key(secret: bytes, seed: bytes) -> bytes:
    """The key for ``seed``: HMAC-SHA256(secret, seed), first 4 bytes (this project's algorithm;
    real BMS vendors each have their own, which ``UdsFlasher`` takes as a parameter)."""
    return hmac.new(secret, seed, hashlib.sha256).digest()[:4]


@dataclass
class _Slot:
    image: bytes | None = None

    @property
    def version(self) -> str:
        if self.image is None:
            return ""
        return str(parse_header(self.image).version)


class BootloaderSim:
    """The BMS's UDS server on ``channel`` of a python-can ``interface`` (``virtual``).

    Args:
        channel: the CAN channel (a virtual bus name in tests).
        image: the image in the active slot at start.
        hardware: the ECU hardware number (must match an image's header).
        secret: the SecurityAccess secret.
        rx_id: request identifier (the gateway's ``uds_tx_id``).
        tx_id: response identifier.
        slot_size: capacity of a slot in bytes.
    """

    def __init__(
        self,
        channel: str,
        image: bytes,
        *,
        hardware: str = "bms-sim",
        secret: bytes = b"\0" * 16,
        interface: str = "virtual",
        rx_id: int = 0x7E0,
        tx_id: int = 0x7E8,
        slot_size: int = 1 << 20,
        stmin_ms: int = 0,
    ) -> None:
        self.hardware = hardware
        self.secret = secret
        self.slot_size = slot_size
        self.slots = [_Slot(image), _Slot()]
        self.active = 0
        self.staged = bytearray()
        self.session = 1
        self.unlocked = False
        self.app_running = True
        self.resets = 0
        self.blocks_received = 0
        self.first_block_s: float | None = None  # monotonic time of the first TransferData
        self.last_block_s: float | None = None
        self.cut_after_blocks: int | None = None
        self.silent = False
        self._seed: bytes | None = None
        self._download: tuple[int, int] | None = None  # (start offset, end offset)
        self._next_seq = 1
        self._last_seq: int | None = None
        self._checked = False
        self._bus = can.Bus(interface=interface, channel=channel)
        self._stack = isotp.CanStack(
            self._bus,
            address=isotp.Address(isotp.AddressingMode.Normal_11bits, rxid=rx_id, txid=tx_id),
            params={"stmin": stmin_ms, "blocksize": 0, "tx_padding": 0xCC},
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="sim.bootloader", daemon=True)

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> BootloaderSim:
        """Start serving in a thread."""
        self._stack.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the bus."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self._stack.stop()
        self._bus.shutdown()

    def __enter__(self) -> BootloaderSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reconnect(self) -> None:
        """End a simulated cut: answer again (the session fell back to default meanwhile, the
        staged bytes are kept, as a bootloader keeps what it has written to flash)."""
        self.cut_after_blocks = None
        self.session = 1
        self.unlocked = False
        self._download = None
        self.silent = False

    @property
    def active_version(self) -> str:
        """The version in the active slot."""
        return self.slots[self.active].version

    def _serve(self) -> None:
        while not self._stop.is_set():
            req = self._stack.recv(block=True, timeout=0.05)
            if req is None or self.silent:
                continue
            resp = self.handle(bytes(req))
            if resp is not None and not self.silent:
                self._stack.send(resp)

    # --- the UDS server -----------------------------------------------------------------------

    def handle(self, req: bytes) -> bytes | None:
        """The response to one request (``None``: no response, as after a cut)."""
        if not req:
            return None
        sid = req[0]
        handler = {
            0x10: self._session_control,
            0x11: self._ecu_reset,
            0x22: self._read_did,
            0x27: self._security_access,
            0x31: self._routine_control,
            0x34: self._request_download,
            0x36: self._transfer_data,
            0x37: self._transfer_exit,
            0x3E: self._tester_present,
        }.get(sid)
        if handler is None:
            return bytes([0x7F, sid, 0x11])
        result = handler(req)
        if isinstance(result, int):
            return bytes([0x7F, sid, result])
        return result

    def _session_control(self, req: bytes) -> bytes | int:
        if len(req) != 2 or req[1] & 0x7F not in (1, 2, 3):
            return NRC_SUBFUNCTION
        self.session = req[1] & 0x7F
        self.unlocked = False
        if self.session == 2:
            self.app_running = False  # the jump into the bootloader
        # P2 = 50 ms, P2* = 5000 ms (in 10 ms units).
        return bytes([0x50, req[1], 0x00, 0x32, 0x01, 0xF4])

    def _tester_present(self, req: bytes) -> bytes | int:
        if len(req) != 2 or req[1] & 0x7F != 0:
            return NRC_SUBFUNCTION
        return bytes([0x7E, 0x00])

    def _security_access(self, req: bytes) -> bytes | int:
        if self.session != 2:
            return NRC_NOT_IN_SESSION
        if len(req) < 2:
            return NRC_FORMAT
        sub = req[1]
        if sub % 2 == 1:
            self._seed = os.urandom(4)
            return bytes([0x67, sub]) + self._seed
        if self._seed is None:
            return NRC_SEQUENCE
        seed, self._seed = self._seed, None
        if not hmac.compare_digest(req[2:], security_key(self.secret, seed)):
            return NRC_INVALID_KEY
        self.unlocked = True
        return bytes([0x67, sub])

    def _routine_control(self, req: bytes) -> bytes | int:
        if len(req) < 4 or req[1] != 0x01:
            return NRC_SUBFUNCTION
        if not self.unlocked:
            return NRC_DENIED
        rid = struct.unpack(">H", req[2:4])[0]
        if rid == ROUTINE_ERASE:
            self.staged.clear()
            self._checked = False
            return bytes([0x71, 0x01]) + req[2:4] + b"\x00"
        if rid == ROUTINE_CHECK:
            if len(req) != 8:
                return NRC_FORMAT
            expected = struct.unpack(">I", req[4:8])[0]
            ok = self._check_staged(expected)
            self._checked = ok
            return bytes([0x71, 0x01]) + req[2:4] + (b"\x00" if ok else b"\x01")
        return NRC_OUT_OF_RANGE

    def _check_staged(self, expected_crc: int) -> bool:
        image = bytes(self.staged)
        problem = image_problem(image)
        if problem is None and zlib.crc32(image) != expected_crc:
            problem = "image CRC-32 differs from the tester's"
        if problem is None and parse_header(image).hardware != self.hardware:
            problem = f"image is for hardware {parse_header(image).hardware}"
        if problem is None and parse_header(image).version <= Version((0,)):
            problem = "image has no version (0)"
        if problem is not None:
            log.info("bootloader check failed: %s", problem)
            return False
        return True

    def _request_download(self, req: bytes) -> bytes | int:
        if not self.unlocked:
            return NRC_DENIED
        if len(req) != 11 or req[2] != 0x44:
            return NRC_FORMAT
        offset, size = struct.unpack(">II", req[3:11])
        if offset > len(self.staged) or offset + size > self.slot_size or size == 0:
            return NRC_OUT_OF_RANGE
        del self.staged[offset:]  # resume: keep what arrived before the offset
        self._checked = False
        self._download = (offset, offset + size)
        self._next_seq = 1
        self._last_seq = None
        return bytes([0x74, 0x20]) + struct.pack(">H", MAX_BLOCK)

    def _transfer_data(self, req: bytes) -> bytes | int | None:
        if self._download is None:
            return NRC_SEQUENCE
        if len(req) < 2:
            return NRC_FORMAT
        seq = req[1]
        if seq == self._last_seq:
            return bytes([0x76, seq])  # a repeated block (lost response): already written
        if seq != self._next_seq:
            return NRC_WRONG_BSC
        data = req[2:]
        if len(data) > MAX_BLOCK - 2 or len(self.staged) + len(data) > self._download[1]:
            return NRC_SUSPENDED
        self.staged += data
        now = time.monotonic()
        if self.first_block_s is None:
            self.first_block_s = now
        self.last_block_s = now
        self._last_seq = seq
        self._next_seq = (seq + 1) & 0xFF
        self.blocks_received += 1
        if self.cut_after_blocks is not None and self.blocks_received >= self.cut_after_blocks:
            self.silent = True  # the cable is pulled before this block's response leaves
            return None
        return bytes([0x76, seq])

    def _transfer_exit(self, req: bytes) -> bytes | int:
        if self._download is None:
            return NRC_SEQUENCE
        if len(self.staged) != self._download[1]:
            return NRC_UPLOAD_DOWNLOAD
        self._download = None
        return bytes([0x77])

    def _ecu_reset(self, req: bytes) -> bytes | int:
        if len(req) != 2 or req[1] & 0x7F not in (1, 3):
            return NRC_SUBFUNCTION
        if self._checked:
            # Activate the staged slot; the old one stays as the fallback.
            spare = 1 - self.active
            self.slots[spare] = _Slot(bytes(self.staged))
            self.active = spare
            self.staged.clear()
            self._checked = False
        self.session = 1
        self.unlocked = False
        self._download = None
        self.app_running = True
        self.resets += 1
        return bytes([0x51, req[1]])

    def _read_did(self, req: bytes) -> bytes | int:
        if len(req) < 3 or (len(req) - 1) % 2:
            return NRC_FORMAT
        out = bytearray([0x62])
        for i in range(1, len(req), 2):
            did = struct.unpack(">H", req[i : i + 2])[0]
            if did == DID_SW_VERSION:
                value = self.active_version.encode("ascii")
            elif did == DID_HW_NUMBER:
                value = self.hardware.encode("ascii")
            elif did == DID_STAGED_BYTES:
                value = struct.pack(">I", len(self.staged))
            elif did == DID_ACTIVE_SLOT:
                value = bytes([self.active])
            else:
                return NRC_OUT_OF_RANGE
            out += req[i : i + 2] + value
        return bytes(out)
