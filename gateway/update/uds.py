"""Flash a BMS over CAN: UDS (ISO 14229-1, ``udsoncan``) over ISO-TP (ISO 15765-2, ``can-isotp``).

The sequence: DiagnosticSessionControl programming (0x10 02), SecurityAccess (0x27, seed and
key), RoutineControl erase (0x31 01 FF00) unless resuming, RequestDownload (0x34, address = byte
offset, so an interrupted transfer resumes where the BMS's staged bytes end), TransferData (0x36)
in blocks of the BMS's maxNumberOfBlockLength, RequestTransferExit (0x37), RoutineControl check
(0x31 01 0202 with the image's CRC-32; the BMS must answer 0 = passed), ECUReset (0x11 01) and
ReadDataByIdentifier 0xF195 (software version) to confirm the new version runs.

Third-party errors stop here: everything the flasher raises is an
:class:`~gateway.errors.UpdateError` (or its subclass :class:`FlashInterrupted`).
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import can
import isotp
import udsoncan
from udsoncan import exceptions as uds_errors
from udsoncan.client import Client
from udsoncan.connections import PythonIsoTpConnection

from gateway.errors import UpdateError
from gateway.update.config import UpdateConfig

__all__ = ["FlashInterrupted", "FlashResult", "UdsFlasher"]

log = logging.getLogger(__name__)

DID_SW_VERSION = 0xF195
DID_HW_NUMBER = 0xF191
DID_STAGED_BYTES = 0xFD00
ROUTINE_ERASE = 0xFF00
ROUTINE_CHECK = 0x0202

SecurityAlgo = Callable[[int, bytes, Any], bytes]


class FlashInterrupted(UpdateError):
    """The transfer stopped (no answer); the BMS stays in its bootloader with ``offset`` bytes
    staged, and the next attempt resumes there."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True, slots=True)
class FlashResult:
    """What a flash did."""

    version: str
    bytes_sent: int
    resumed_from: int
    blocks: int
    seconds: float


class _Ascii(udsoncan.DidCodec):
    """A DID that is ASCII text to the end of the response."""

    def decode(self, did_payload: bytes) -> str:
        return did_payload.decode("ascii", "replace")

    def __len__(self) -> int:
        raise udsoncan.DidCodec.ReadAllRemainingData


def hmac_key_algo(secret: bytes) -> SecurityAlgo:
    """The seed/key algorithm of ``gateway.sim.bootloader`` (HMAC-SHA256, first 4 bytes)."""
    import hashlib
    import hmac

    def algo(level: int, seed: bytes, params: Any) -> bytes:
        return hmac.new(secret, seed, hashlib.sha256).digest()[:4]

    return algo


class UdsFlasher:
    """A UDS client to the BMS on a python-can bus.

    Args:
        bus: a python-can bus the flasher may use (its own, not shared with a reader).
        config: the ``[update]`` section (identifiers, timeout, security level and secret).
        security_algo: ``(level, seed, params) -> key``; default: :func:`hmac_key_algo`.

    Use as a context manager; it opens and closes the ISO-TP layer.
    """

    def __init__(
        self, bus: can.BusABC, config: UpdateConfig, security_algo: SecurityAlgo | None = None
    ) -> None:
        self.config = config
        # udsoncan logs every exception it raises at ERROR; the caller reports ours instead.
        logging.getLogger("UdsClient").setLevel(logging.CRITICAL)
        self._stack = isotp.CanStack(
            bus,
            address=isotp.Address(
                isotp.AddressingMode.Normal_11bits, txid=config.uds_tx_id, rxid=config.uds_rx_id
            ),
            params={"stmin": config.uds_stmin_ms, "blocksize": 0, "tx_padding": 0xCC},
        )
        self._conn = PythonIsoTpConnection(self._stack)
        algo = security_algo or hmac_key_algo(bytes.fromhex(config.uds_security_secret))
        self.client = Client(
            self._conn,
            config={
                **udsoncan.configs.default_client_config,
                "request_timeout": config.uds_timeout_s,
                "p2_timeout": config.uds_timeout_s,
                "p2_star_timeout": max(config.uds_timeout_s, 5.0),
                # Our timeout, not the BMS's P2: a Python stack answers a 4 KiB block slower.
                "use_server_timing": False,
                "security_algo": algo,
                "data_identifiers": {
                    DID_SW_VERSION: _Ascii(),
                    DID_HW_NUMBER: _Ascii(),
                    DID_STAGED_BYTES: ">I",
                },
            },
        )

    def __enter__(self) -> UdsFlasher:
        self.client.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    # --- reads --------------------------------------------------------------------------------

    def _read(self, did: int) -> Any:
        resp = self.client.read_data_by_identifier([did])
        assert resp is not None
        value = resp.service_data.values[did]
        return value[0] if isinstance(value, tuple) else value

    def identify(self) -> tuple[str, str]:
        """The BMS's (software version, hardware number).

        Raises:
            UpdateError: no answer or a refusal.
        """
        with self._translated("identify the BMS"):
            return str(self._read(DID_SW_VERSION)), str(self._read(DID_HW_NUMBER))

    # --- the flash ----------------------------------------------------------------------------

    def flash(
        self,
        image: bytes,
        *,
        resume: bool = False,
        on_progress: Callable[[int], None] | None = None,
        reset_wait_s: float = 0.05,
    ) -> FlashResult:
        """Program ``image`` (already verified against its TUF hashes by the caller).

        Args:
            image: the complete image.
            resume: continue after the bytes the BMS has staged (an interrupted transfer)
                instead of erasing.
            on_progress: called with the byte offset acknowledged after each block.
            reset_wait_s: pause after ECUReset before reading the new version.

        Raises:
            FlashInterrupted: the BMS stopped answering during the transfer.
            UpdateError: a refusal (security, download, the BMS's check) or no answer before
                the transfer; the message says which step.
        """
        t0 = time.perf_counter()
        # A late answer from before an interruption must not be taken for this one's.
        self._conn.empty_rxqueue()
        start = self._prepare(len(image), resume)
        block = self._request_download(start, len(image))
        blocks = self._transfer(image, start, block, on_progress)
        version = self._finish(image, reset_wait_s)
        return FlashResult(
            version=version,
            bytes_sent=len(image) - start,
            resumed_from=start,
            blocks=blocks,
            seconds=time.perf_counter() - t0,
        )

    def _prepare(self, size: int, resume: bool) -> int:
        """Programming session, SecurityAccess, then erase (or, resuming, the staged bytes).

        Returns:
            The byte offset the transfer starts at (0 after an erase).
        """
        c = self.client
        with self._step("enter the programming session"):
            c.change_session(udsoncan.services.DiagnosticSessionControl.Session.programmingSession)
        with self._step("unlock SecurityAccess"):
            c.unlock_security_access(self.config.uds_security_level)
        start = 0
        if resume:
            with self._step("read the staged byte count"):
                staged = int(self._read(DID_STAGED_BYTES))
            # Resume at a block boundary the BMS acknowledged; never past the image.
            start = min(staged, size)
        if start == 0:
            with self._step("erase the spare slot"):
                c.start_routine(ROUTINE_ERASE)
        return start

    def _request_download(self, start: int, size: int) -> int:
        """RequestDownload from byte ``start``; the data bytes per TransferData block."""
        with self._step("RequestDownload"):
            loc = udsoncan.MemoryLocation(start, size - start, 32, 32)
            resp = self.client.request_download(loc)
            assert resp is not None
            max_len = int(resp.service_data.max_length)
        return max(1, min(max_len, 4095) - 2)

    def _transfer(
        self, image: bytes, start: int, block: int, on_progress: Callable[[int], None] | None
    ) -> int:
        """TransferData from ``start`` to the end in ``block``-byte blocks; the block count.

        Raises:
            FlashInterrupted: no answer to a block (the offset says where to resume).
            UpdateError: a block refused.
        """
        offset, seq, blocks = start, 1, 0
        while offset < len(image):
            chunk = image[offset : offset + block]
            try:
                self.client.transfer_data(seq, chunk)
            except (uds_errors.TimeoutException, isotp.IsoTpError) as e:
                raise FlashInterrupted(
                    f"transfer interrupted at {offset}/{len(image)} bytes ({e}); the BMS stays "
                    "in its bootloader, run the update again to resume",
                    offset,
                ) from None
            except uds_errors.NegativeResponseException as e:
                raise UpdateError(f"TransferData refused at byte {offset}: {_nrc(e)}") from None
            offset += len(chunk)
            seq = (seq + 1) & 0xFF
            blocks += 1
            if on_progress is not None:
                on_progress(offset)
        return blocks

    def _finish(self, image: bytes, reset_wait_s: float) -> str:
        """RequestTransferExit, the BMS's check routine, ECUReset; the version after the reset.

        Raises:
            UpdateError: the check routine rejected the image (the BMS keeps its old slot).
        """
        c = self.client
        with self._step("RequestTransferExit"):
            c.request_transfer_exit()
        with self._step("run the check routine"):
            check = c.start_routine(ROUTINE_CHECK, struct.pack(">I", zlib.crc32(image)))
            assert check is not None
            status = bytes(check.service_data.routine_status_record or b"\x01")
        passed = status[:1] == b"\x00"
        with self._step("ECUReset"):
            c.ecu_reset(udsoncan.services.ECUReset.ResetType.hardReset)
        time.sleep(reset_wait_s)
        if not passed:
            raise UpdateError(
                "the BMS's check routine rejected the image (CRC, version or hardware); "
                "it keeps running the old slot"
            )
        with self._step("read the version after the reset"):
            return str(self._read(DID_SW_VERSION))

    def _translated(self, step: str) -> _Translate:
        return _Translate(step)

    def _step(self, step: str) -> _Translate:
        """A step of the flash itself: no answer there leaves the BMS in its bootloader."""
        return _Translate(step, interrupts=True)


def _nrc(e: uds_errors.NegativeResponseException) -> str:
    code = e.response.code
    name = e.response.code_name
    return f"negative response 0x{code:02X} ({name})"


class _Translate:
    """Turn udsoncan/ISO-TP errors of one step into an UpdateError naming the step."""

    def __init__(self, step: str, interrupts: bool = False) -> None:
        self.step = step
        self.interrupts = interrupts

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type[BaseException] | None, e: BaseException | None, tb: Any) -> None:
        if e is None:
            return
        if isinstance(e, uds_errors.NegativeResponseException):
            raise UpdateError(f"BMS refused to {self.step}: {_nrc(e)}") from None
        if isinstance(e, uds_errors.TimeoutException | isotp.IsoTpError):
            if self.interrupts:
                raise FlashInterrupted(
                    f"BMS did not answer ({self.step}): {e}; it may be in its bootloader, run "
                    "the update again to resume",
                    0,
                ) from None
            raise UpdateError(f"BMS did not answer ({self.step}): {e}") from None
        if isinstance(
            e,
            uds_errors.InvalidResponseException
            | uds_errors.UnexpectedResponseException
            | uds_errors.ConfigError
            | ValueError,
        ):
            raise UpdateError(f"unexpected answer from the BMS ({self.step}): {e}") from None
