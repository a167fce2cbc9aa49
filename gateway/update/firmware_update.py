"""``update apply --kind bms-firmware``: verify the image, hold 0 A, flash over UDS, resume.

The BMS is identified first (software version, hardware number) so that the signed target
that fits its hardware is picked. The image is verified against the signed length and hashes
just before the transfer, and its header must name the target's version and hardware. A
downgrade needs ``force``. Through the transfer the running daemon holds CCL = DCL = 0 A (the
hold file, reason ``update``; the BMS in its bootloader protects nothing); an interrupted
transfer keeps the hold and its progress (``firmware/progress.json``) and resumes at the next
attempt, up to ``flash_retries`` times in one run.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuf.api import exceptions as tuf_errors

from gateway.errors import UpdateError
from gateway.update.agent import HOLD_FILE
from gateway.update.model import TargetKind, UpdateTarget, Version
from gateway.update.store import read_json, write_json_atomic
from gateway.update.tuf_client import explain

if TYPE_CHECKING:
    from gateway.update.manager import UpdateManager

__all__ = ["HOLD_CONFIRM_S", "FirmwareUpdate", "open_bus", "progress_path"]

# The updater's lines keep one logger name, whichever of its modules writes them.
log = logging.getLogger("gateway.update.manager")

HOLD_CONFIRM_S = 5.0
"""How long the running daemon has to confirm the 0 A hold, s."""


def progress_path(state_dir: Path) -> Path:
    """Where an interrupted transfer's progress is kept."""
    return state_dir / "firmware" / "progress.json"


def open_bus(interface: str, channel: str, bitrate: int | None) -> Any:
    """A python-can bus for UDS (the ``[can]`` interface and channel).

    Raises:
        UpdateError: the bus does not open.
    """
    import can

    kwargs: dict[str, Any] = {"interface": interface, "channel": channel}
    if bitrate is not None:
        kwargs["bitrate"] = bitrate
    try:
        return can.Bus(**kwargs)
    except (can.CanError, OSError, ValueError) as e:
        raise UpdateError(f"cannot open CAN {interface}:{channel}: {e}") from None


class FirmwareUpdate:
    """One BMS firmware update through ``manager`` (its settings, TUF client, records, clocks)."""

    def __init__(self, manager: UpdateManager) -> None:
        self.m = manager
        self.cfg = manager.cfg

    def apply(self, version: str | None, force: bool) -> str:
        """Flash the newest (or the given) image; one line saying what was done.

        Raises:
            UpdateError: a refusal or failure (FlashInterrupted: resumable next time).
        """
        from gateway.update.uds import UdsFlasher

        bus = self.m.bus_factory()
        try:
            with UdsFlasher(bus, self.cfg) as flasher:
                return self._apply(flasher, version, force)
        finally:
            bus.shutdown()

    def _apply(self, flasher: Any, version: str | None, force: bool) -> str:
        from gateway.update.uds import FlashInterrupted

        m = self.m
        kind = TargetKind.BMS_FIRMWARE
        have, hardware = flasher.identify()
        m.record(kind, installed=have, hardware=hardware)
        target = m.pick(kind, version, hardware)
        progress = read_json(progress_path(m.state_dir))
        if have and target.version == Version.parse(have) and not progress:
            return f"bms-firmware: {have} is installed"
        if m.is_downgrade(target, have) and not force:
            raise UpdateError(
                f"bms-firmware {target.version} is older than the BMS's {have} (--force)"
            )
        image = self._verified_image(target, hardware)
        digest = hashlib.sha256(image).hexdigest()
        resume = isinstance(progress, dict) and progress.get("sha256") == digest
        if not resume:
            m.gate(force)
        self._hold_on()
        try:
            result = self._flash_with_retries(flasher, image, resume, digest, target)
        except FlashInterrupted:
            m.record(kind, last_result=f"interrupted {target.version}")
            raise  # the hold stays: the BMS is in its bootloader, not protecting
        except UpdateError as e:
            progress_path(m.state_dir).unlink(missing_ok=True)
            self._hold_off()
            m.record(kind, last_result=f"failed {target.version}: {e}")
            raise
        progress_path(m.state_dir).unlink(missing_ok=True)
        self._hold_off()
        if Version.parse(result.version) != target.version:
            raise UpdateError(
                f"bms-firmware: the BMS reports {result.version} after the reset, "
                f"expected {target.version}"
            )
        m.record(kind, installed=result.version, last_result=f"flashed {result.version}")
        resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
        return (
            f"bms-firmware: {have} -> {result.version} flashed ({result.bytes_sent} bytes "
            f"in {result.seconds:.1f} s{resumed})"
        )

    def _verified_image(self, target: UpdateTarget, hardware: str) -> bytes:
        """The image of ``target``, checked against its signed hashes and its own header."""
        from gateway.update.firmware import parse_header

        info = self.m.client().target_file(target)
        image = self.m.client().download(target).read_bytes()
        # Verify the very bytes about to be sent, just before the first block.
        try:
            info.verify_length_and_hashes(image)
        except tuf_errors.LengthOrHashMismatchError as e:
            raise UpdateError(
                f"bms-firmware {target.version} refused before transfer: {explain(e)}"
            ) from None
        head = parse_header(image)
        if head.version != target.version or head.hardware != hardware:
            raise UpdateError(
                f"bms-firmware image header says {head.version} for {head.hardware}, "
                f"the signed target {target.version} for {hardware}"
            )
        return image

    def _flash_with_retries(
        self, flasher: Any, image: bytes, resume: bool, digest: str, target: UpdateTarget
    ) -> Any:
        """``flasher.flash``, resumed after an interruption up to ``flash_retries`` times."""
        from gateway.update.uds import FlashInterrupted

        retries = self.cfg.flash_retries
        for attempt in range(retries + 1):
            try:
                return flasher.flash(
                    image,
                    resume=resume,
                    on_progress=lambda off: self._save_progress(digest, target, off),
                )
            except FlashInterrupted as e:
                if attempt == retries:
                    raise
                log.warning(
                    "%s; retry %d of %d in %g s",
                    e,
                    attempt + 1,
                    retries,
                    self.cfg.flash_retry_wait_s,
                )
                self.m.sleep(self.cfg.flash_retry_wait_s)
                resume = True
        raise AssertionError("unreachable")  # the loop returns or raises

    def _save_progress(self, digest: str, target: UpdateTarget, offset: int) -> None:
        write_json_atomic(
            progress_path(self.m.state_dir),
            {"sha256": digest, "version": str(target.version), "offset": offset},
        )

    def _hold_on(self) -> None:
        """Ask the daemon for CCL = DCL = 0 A (reason ``update``) and wait until it says so.

        Raises:
            UpdateError: a running gateway did not confirm the hold in time.
        """
        m = self.m
        write_json_atomic(m.state_dir / HOLD_FILE, {"reason": "update", "since": m.wall()})
        rec = m.health()
        if rec is None or m.wall() - rec.written_s > self.cfg.health_stale_s:
            log.warning("no running gateway seen: nothing to hold at 0 A")
            return
        deadline = m.wall() + HOLD_CONFIRM_S
        while m.wall() < deadline:
            rec = m.health()
            if rec is not None and rec.hold == "update" and rec.ccl_a == 0 and rec.dcl_a == 0:
                return
            m.sleep(0.1)
        self._hold_off()
        raise UpdateError("the running gateway did not confirm 0 A (hold: update) in time")

    def _hold_off(self) -> None:
        (self.m.state_dir / HOLD_FILE).unlink(missing_ok=True)
