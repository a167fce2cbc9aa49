"""``bms-gateway update check | apply | status | rollback``: the updater's workflow.

For ``config`` and ``gateway`` targets: verify (TUF), unpack beside the running version, run
``check-config`` on it, switch the ``current`` symlink, restart (an injectable hook; by default
``[update].restart_command``), watch the health criterion for ``health_window_s`` and keep the
version as ``last-good`` or switch back and say why. For ``bms-firmware``: verify the image
against the signed hashes, refuse a downgrade unless forced, hold the inverter at 0 A (reason
``update``) through the daemon, flash over UDS and resume an interrupted transfer next time.
Every refusal is an :class:`~gateway.errors.UpdateError` with one line.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuf.api import exceptions as tuf_errors

from gateway.errors import UpdateError
from gateway.settings import Settings
from gateway.update.agent import HEALTH_FILE, HOLD_FILE
from gateway.update.health import HealthRecord, HealthWatch, Verdict, unsafe_reason
from gateway.update.model import TargetKind, UpdateTarget, Version
from gateway.update.store import VersionStore, read_json, write_json_atomic
from gateway.update.tuf_client import TufClient, explain

__all__ = ["UpdateManager", "check_lines_for"]

log = logging.getLogger(__name__)

MAX_BUNDLE_BYTES = 64 << 20
MAX_BUNDLE_FILES = 2000
HOLD_CONFIRM_S = 5.0

Restart = Callable[[], None]

# Run ``python -m gateway`` from an unpacked wheel: its directory first on the path, and without
# the import hook of an editable (development) install, which would win over sys.path.
_RUN_FROM_SITE = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if not getattr(f, '__module__', '').startswith('__editable__')]; "
    "runpy.run_module('gateway', run_name='__main__', alter_sys=True)"
)


def _systemd_restart(command: tuple[str, ...]) -> Restart:
    def restart() -> None:
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise UpdateError(f"restart command {' '.join(command)} failed: {e}") from None

    return restart


class UpdateManager:
    """The update workflow for one gateway.

    Args:
        settings: the running gateway's settings (``[update]`` and the pack identity).
        config_path: the settings file the gateway runs with (seeded as version ``0`` of the
            config store on the first config update, so there is something to roll back to).
        restart: restarts the gateway (default: ``[update].restart_command``).
        bus_factory: opens the CAN bus for UDS (default: ``[can]`` interface and channel).
        wall: wall clock (Unix seconds); sleep: blocking sleep. Both injectable for tests.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Path | None = None,
        restart: Restart | None = None,
        bus_factory: Callable[[], Any] | None = None,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.cfg = settings.update
        if not self.cfg.enabled:
            raise UpdateError("updates are not configured: set [update] metadata_url")
        self.state_dir = Path(self.cfg.state_dir)
        self.config_path = config_path
        self.restart = restart or _systemd_restart(self.cfg.restart_command)
        self.bus_factory = bus_factory or self._open_bus
        self.wall = wall
        self.sleep = sleep
        self.stores = {
            TargetKind.CONFIG: VersionStore(self.state_dir / "config"),
            TargetKind.GATEWAY: VersionStore(self.state_dir / "gateway"),
        }
        self._client: TufClient | None = None

    # --- shared -------------------------------------------------------------------------------

    def client(self) -> TufClient:
        """The TUF client, refreshed once per manager."""
        if self._client is None:
            c = TufClient(
                Path(self.cfg.root),
                self.state_dir / "tuf" / "metadata",
                self.cfg.metadata_url,
                self.cfg.targets_url,
                self.state_dir / "tuf" / "downloads",
            )
            c.refresh()
            self._client = c
        return self._client

    def local(self, hardware: str | None = None) -> dict[str, str | None]:
        """What ``fits`` is matched against."""
        return {
            "gateway_id": self.settings.control.gateway_id,
            "chemistry": self.settings.pack.chemistry,
            "cells": str(self.settings.pack.cells),
            "hardware": hardware,
        }

    def health(self) -> HealthRecord | None:
        """The daemon's latest health record, or ``None``."""
        data = read_json(self.state_dir / HEALTH_FILE)
        if data is None:
            return None
        try:
            return HealthRecord.from_json(data)
        except ValueError as e:
            log.warning("%s", e)
            return None

    def installed(self, kind: TargetKind) -> str | None:
        """The installed version of ``kind`` (firmware: the one last read from the BMS)."""
        if kind is TargetKind.BMS_FIRMWARE:
            fw = self._status().get(kind.value, {})
            return fw.get("installed") if isinstance(fw, dict) else None
        return self.stores[kind].current

    def _status(self) -> dict[str, Any]:
        data = read_json(self.state_dir / "status.json")
        return data if isinstance(data, dict) else {}

    def _record(self, kind: TargetKind, **fields: Any) -> None:
        status = self._status()
        entry = status.get(kind.value) if isinstance(status.get(kind.value), dict) else {}
        assert isinstance(entry, dict)
        entry.update(fields, at=datetime.now(UTC).isoformat(timespec="seconds"))
        status[kind.value] = entry
        write_json_atomic(self.state_dir / "status.json", status)

    def _gate(self, force: bool) -> HealthRecord | None:
        rec = self.health()
        reason = unsafe_reason(
            rec,
            self.wall(),
            stale_s=self.cfg.health_stale_s,
            safe_current_a=self.cfg.safe_current_a,
        )
        if reason is not None:
            if not force:
                raise UpdateError(f"not safe to update: {reason} (--force to override)")
            log.warning("not safe to update (%s); going ahead because of --force", reason)
        return rec

    # --- check / status -----------------------------------------------------------------------

    def check(self) -> list[str]:
        """One line per kind: what is installed and what the repository offers."""
        self._client = None  # fresh metadata for every command
        client = self.client()
        lines = []
        fw_hw = self._status().get(TargetKind.BMS_FIRMWARE.value, {}).get("hardware")
        for kind in TargetKind:
            target = client.newest(kind, self.local(fw_hw))
            have = self.installed(kind)
            if target is None and kind is TargetKind.BMS_FIRMWARE and fw_hw is None:
                # The BMS has not been identified yet: say what is offered for which hardware.
                offered = client.newest(kind, self.local(None), ignore=("hardware",))
                if offered is not None:
                    hw = ", ".join(offered.fits.get("hardware", ("any",)))
                    lines.append(
                        f"{kind.value}: {offered.version} offered for hardware {hw} (the BMS's "
                        "hardware is read by `update apply --kind bms-firmware`)"
                    )
                    continue
            if target is None:
                lines.append(f"{kind.value}: nothing offered for this gateway (installed {have})")
                continue
            newer = have is None or target.version > Version.parse(have)
            state = "update available" if newer else "up to date"
            lines.append(f"{kind.value}: {state}: {target.version} (installed {have})")
        return lines

    def status(self) -> dict[str, Any]:
        """Installed, last-good and previous versions, the last results, hold and health."""
        out: dict[str, Any] = {}
        for kind, store in self.stores.items():
            out[kind.value] = {
                "current": store.current,
                "last_good": store.link("last-good"),
                "previous": store.link("previous"),
            }
        for name, entry in self._status().items():
            out.setdefault(name, {}).update(entry)
        progress = read_json(self._progress_path())
        if progress:
            out.setdefault(TargetKind.BMS_FIRMWARE.value, {})["interrupted_transfer"] = progress
        hold = read_json(self.state_dir / HOLD_FILE)
        out["hold"] = hold.get("reason") if isinstance(hold, dict) else None
        rec = self.health()
        out["health"] = None if rec is None else rec.to_json()
        return out

    # --- apply --------------------------------------------------------------------------------

    def apply(
        self, kind: TargetKind | None = None, version: str | None = None, force: bool = False
    ) -> list[str]:
        """Apply the newest (or the given) version of ``kind`` (``None``: every kind that has a
        newer version, config first); one line per kind done.

        Raises:
            UpdateError: the first refusal or failure (what was applied before it stays).
        """
        if version is not None and kind is None:
            raise UpdateError("--version needs --kind")
        self._client = None  # fresh metadata for every command
        kinds = [kind] if kind is not None else list(TargetKind)
        lines = []
        for k in kinds:
            if kind is None and not any(t.kind is k for t in self.client().targets()):
                lines.append(f"{k.value}: nothing offered")
                continue
            if k is TargetKind.BMS_FIRMWARE:
                lines.append(self.apply_firmware(version, force))
            else:
                lines.append(self._apply_unpacked(k, version, force))
        return lines

    def _pick(self, kind: TargetKind, version: str | None, hardware: str | None) -> UpdateTarget:
        client = self.client()
        local = self.local(hardware)
        if version is None:
            target = client.newest(kind, local)
            if target is None:
                raise UpdateError(f"{kind.value}: no signed target fits this gateway")
            return target
        want = Version.parse(version)
        for t in client.targets():
            if t.kind is kind and t.version == want:
                why = t.fits_here(local)
                if why is not None:
                    raise UpdateError(f"{kind.value} {version} does not fit: {why}")
                return t
        raise UpdateError(f"{kind.value} {version}: no such signed target")

    def _is_downgrade(self, target: UpdateTarget, have: str | None) -> bool:
        return have is not None and have != "0" and target.version < Version.parse(have)

    def _apply_unpacked(self, kind: TargetKind, version: str | None, force: bool) -> str:
        store = self.stores[kind]
        target = self._pick(kind, version, None)
        have = store.current
        if have is not None and target.version == Version.parse(have):
            return f"{kind.value}: {target.version} is installed"
        if have is not None and target.version < Version.parse(have) and version is None:
            return f"{kind.value}: {have} is installed, nothing newer"
        if self._is_downgrade(target, have) and not force:
            raise UpdateError(
                f"{kind.value} {target.version} is older than the installed {have} (--force)"
            )
        baseline = self._gate(force)
        path = self.client().download(target)
        name = str(target.version)
        if kind is TargetKind.CONFIG:
            self._seed_config(store)
            dest = store.install(name, lambda d: _unpack_bundle(path, d))
        else:
            dest = store.install(name, lambda d: _unpack_wheel(path, d / "site"))
        problem = self._check_config(kind, dest)
        if problem is not None:
            store.remove(name)
            self._record(kind, last_result=f"refused {name}: check-config: {problem}")
            raise UpdateError(f"{kind.value} {name} refused by check-config: {problem}")
        before = store.switch(name)
        log.info("%s: switched to %s (was %s); restarting", kind.value, name, before)
        try:
            result = self._restart_and_watch(baseline)
        except UpdateError as e:  # the restart command itself failed
            result = str(e)
        if result is None:
            store.mark_good()
            self._record(kind, last_result=f"applied {name}")
            return f"{kind.value}: {name} applied; healthy for {self.cfg.health_window_s:g} s"
        if before is not None:
            store.switch(before)
        else:
            store.clear_current()  # back to what ran before the store existed
        self.restart()
        self._record(kind, last_result=f"rolled back {name}: {result}")
        back = before or "the installed package"
        raise UpdateError(f"{kind.value} {name} rolled back to {back}: {result}")

    def _seed_config(self, store: VersionStore) -> None:
        """Keep the configuration the gateway runs with now as version ``0`` (last good)."""
        if store.current is not None or self.config_path is None:
            return
        src = self.config_path

        def fill(d: Path) -> None:
            shutil.copyfile(src, d / "config.toml")

        store.install("0", fill)
        store.switch("0")
        store.mark_good()

    def _check_config(self, kind: TargetKind, dest: Path) -> str | None:
        """Run ``bms-gateway check-config`` on the new version in a child process; the last
        line of its error output, or ``None`` when it passed."""
        if kind is TargetKind.CONFIG:
            config = dest / "config.toml"
            cwd = dest
            cmd = [sys.executable, "-m", "gateway"]
        else:
            if self.config_path is None:
                return "no --config to check the new release against"
            config = self.config_path.resolve()
            cwd = Path.cwd()
            cmd = [sys.executable, "-c", _RUN_FROM_SITE, str(dest / "site")]
        cmd += ["check-config", "--config", str(config)]
        env = dict(os.environ)
        try:
            proc = subprocess.run(
                cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=120
            )
        except (OSError, subprocess.SubprocessError) as e:
            return f"could not run: {e}"
        if proc.returncode == 0:
            return None
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit status {proc.returncode}"

    def _restart_and_watch(self, baseline: HealthRecord | None) -> str | None:
        """Restart and watch; ``None`` when healthy, else why not."""
        started = self.wall()
        self.restart()
        watch = HealthWatch(
            baseline,
            started,
            self.cfg.health_window_s,
            self.cfg.health_stale_s,
            self.cfg.restart_timeout_s,
        )
        while True:
            result = watch.observe(self.health(), self.wall())
            if result.verdict is Verdict.PASSED:
                return None
            if result.verdict is Verdict.FAILED:
                return result.reason
            self.sleep(0.2)

    # --- rollback -----------------------------------------------------------------------------

    def rollback(self, kind: TargetKind) -> str:
        """Switch ``kind`` back to the version before the current one and restart.

        Raises:
            UpdateError: nothing to roll back to, or the older version is not healthy either.
        """
        if kind is TargetKind.BMS_FIRMWARE:
            raise UpdateError(
                "bms-firmware: the BMS keeps its old slot only until a new image passes its "
                "check; flash the older signed version with --version and --force"
            )
        store = self.stores[kind]
        target = store.link("previous")
        if target is None or target == store.current:
            target = store.link("last-good")
        if target is None or target == store.current:
            raise UpdateError(f"{kind.value}: no other version to roll back to")
        baseline = self.health()
        before = store.switch(target)
        result = self._restart_and_watch(baseline)
        if result is not None:
            self._record(kind, last_result=f"rollback to {target} unhealthy: {result}")
            raise UpdateError(
                f"{kind.value}: rolled back to {target} but it is unhealthy: {result}"
            )
        store.mark_good()
        self._record(kind, last_result=f"rolled back from {before} to {target}")
        return f"{kind.value}: rolled back from {before} to {target}"

    # --- BMS firmware -------------------------------------------------------------------------

    def _progress_path(self) -> Path:
        return self.state_dir / "firmware" / "progress.json"

    def _open_bus(self) -> Any:
        import can

        c = self.settings.can
        kwargs: dict[str, Any] = {"interface": c.interface, "channel": c.channel}
        if c.bitrate is not None:
            kwargs["bitrate"] = c.bitrate
        try:
            return can.Bus(**kwargs)
        except (can.CanError, OSError, ValueError) as e:
            raise UpdateError(f"cannot open CAN {c.interface}:{c.channel}: {e}") from None

    def apply_firmware(self, version: str | None = None, force: bool = False) -> str:
        """Flash the newest (or the given) BMS image over UDS; see the module docstring.

        Raises:
            UpdateError: a refusal or failure (FlashInterrupted: resumable next time).
        """
        from gateway.update.firmware import parse_header
        from gateway.update.uds import FlashInterrupted, UdsFlasher

        kind = TargetKind.BMS_FIRMWARE
        self._client = None  # fresh metadata for every command
        bus = self.bus_factory()
        try:
            with UdsFlasher(bus, self.cfg) as flasher:
                have, hardware = flasher.identify()
                self._record(kind, installed=have, hardware=hardware)
                target = self._pick(kind, version, hardware)
                progress = read_json(self._progress_path())
                if have and target.version == Version.parse(have) and not progress:
                    return f"bms-firmware: {have} is installed"
                if self._is_downgrade(target, have) and not force:
                    raise UpdateError(
                        f"bms-firmware {target.version} is older than the BMS's {have} (--force)"
                    )
                info = self.client().target_file(target)
                image = self.client().download(target).read_bytes()
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
                digest = hashlib.sha256(image).hexdigest()
                resume = isinstance(progress, dict) and progress.get("sha256") == digest
                if not resume:
                    self._gate(force)
                self._hold_on()
                try:
                    result = self._flash_with_retries(flasher, image, resume, digest, target)
                except FlashInterrupted:
                    self._record(kind, last_result=f"interrupted {target.version}")
                    raise  # the hold stays: the BMS is in its bootloader, not protecting
                except UpdateError as e:
                    self._progress_path().unlink(missing_ok=True)
                    self._hold_off()
                    self._record(kind, last_result=f"failed {target.version}: {e}")
                    raise
                self._progress_path().unlink(missing_ok=True)
                self._hold_off()
                if Version.parse(result.version) != target.version:
                    raise UpdateError(
                        f"bms-firmware: the BMS reports {result.version} after the reset, "
                        f"expected {target.version}"
                    )
                self._record(
                    kind, installed=result.version, last_result=f"flashed {result.version}"
                )
                resumed = f", resumed at byte {result.resumed_from}" if result.resumed_from else ""
                return (
                    f"bms-firmware: {have} -> {result.version} flashed ({result.bytes_sent} bytes "
                    f"in {result.seconds:.1f} s{resumed})"
                )
        finally:
            bus.shutdown()

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
                self.sleep(self.cfg.flash_retry_wait_s)
                resume = True
        raise AssertionError("unreachable")  # the loop returns or raises

    def _save_progress(self, digest: str, target: UpdateTarget, offset: int) -> None:
        write_json_atomic(
            self._progress_path(),
            {"sha256": digest, "version": str(target.version), "offset": offset},
        )

    def _hold_on(self) -> None:
        """Ask the daemon for CCL = DCL = 0 A (reason ``update``) and wait until it says so.

        Raises:
            UpdateError: a running gateway did not confirm the hold in time.
        """
        write_json_atomic(self.state_dir / HOLD_FILE, {"reason": "update", "since": self.wall()})
        rec = self.health()
        if rec is None or self.wall() - rec.written_s > self.cfg.health_stale_s:
            log.warning("no running gateway seen: nothing to hold at 0 A")
            return
        deadline = self.wall() + HOLD_CONFIRM_S
        while self.wall() < deadline:
            rec = self.health()
            if rec is not None and rec.hold == "update" and rec.ccl_a == 0 and rec.dcl_a == 0:
                return
            self.sleep(0.1)
        self._hold_off()
        raise UpdateError("the running gateway did not confirm 0 A (hold: update) in time")

    def _hold_off(self) -> None:
        (self.state_dir / HOLD_FILE).unlink(missing_ok=True)


def check_lines_for(settings: Settings) -> list[str]:
    """What ``update check`` prints (the daemon's periodic check uses it too)."""
    return UpdateManager(settings, restart=lambda: None).check()


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return not (Path(name).is_absolute() or ".." in parts or not parts)


def _unpack_bundle(archive: Path, dest: Path) -> None:
    """Unpack a config bundle (tar, optionally gzip) into ``dest``; it must hold config.toml.

    Raises:
        UpdateError: not a tar archive, unsafe or too many or too large members, no config.toml.
    """
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            if len(members) > MAX_BUNDLE_FILES:
                raise UpdateError(
                    f"config bundle has {len(members)} files (max {MAX_BUNDLE_FILES})"
                )
            if sum(m.size for m in members) > MAX_BUNDLE_BYTES:
                raise UpdateError(f"config bundle unpacks to more than {MAX_BUNDLE_BYTES} bytes")
            for m in members:
                if not (m.isfile() or m.isdir()) or not _safe_member(m.name):
                    raise UpdateError(f"config bundle member {m.name!r} is not a plain file")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise UpdateError(f"config bundle unreadable: {e}") from None
    if not (dest / "config.toml").is_file():
        raise UpdateError("config bundle has no config.toml at its top")


def _unpack_wheel(wheel: Path, dest: Path) -> None:
    """Unpack a pure-Python wheel into ``dest`` (importable with ``PYTHONPATH=dest``).

    Raises:
        UpdateError: not a zip, unsafe or too many members, no ``gateway`` package.
    """
    try:
        with zipfile.ZipFile(wheel) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_BUNDLE_FILES * 5:
                raise UpdateError(f"wheel has {len(infos)} files")
            if sum(i.file_size for i in infos) > MAX_BUNDLE_BYTES * 4:
                raise UpdateError("wheel unpacks to too many bytes")
            for i in infos:
                if not _safe_member(i.filename):
                    raise UpdateError(f"wheel member {i.filename!r} escapes its directory")
            zf.extractall(dest)
    except (zipfile.BadZipFile, OSError) as e:
        raise UpdateError(f"wheel unreadable: {e}") from None
    if not (dest / "gateway" / "__init__.py").is_file():
        raise UpdateError("wheel holds no gateway package")
