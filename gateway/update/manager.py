"""``bms-gateway update check | apply | status | rollback``: the updater's workflow.

For ``config`` and ``gateway`` targets: verify (TUF), unpack beside the running version, run
``check-config`` on it, switch the ``current`` symlink, restart (an injectable hook; by default
``[update].restart_command``), watch the health criterion for ``health_window_s`` and keep the
version as ``last-good`` or switch back and say why. For ``bms-firmware``: verify the image
against the signed hashes, refuse a downgrade unless forced, hold the inverter at 0 A (reason
``update``) through the daemon, flash over UDS and resume an interrupted transfer next time.
Every refusal is an :class:`~gateway.errors.UpdateError` with one line.

This module is the workflow; the parts live beside it: ``release`` (unpack a bundle or wheel,
check-config in a child process, the restart hook), ``firmware_update`` (the BMS flash with its
0 A hold and resume), ``tuf_client`` (verified metadata and downloads), ``store`` (versions and
symlinks), ``health`` (the health criterion).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gateway.errors import UpdateError
from gateway.settings import Settings
from gateway.update.agent import HEALTH_FILE, HOLD_FILE
from gateway.update.firmware_update import FirmwareUpdate, open_bus, progress_path
from gateway.update.health import HealthRecord, HealthWatch, Verdict, unsafe_reason
from gateway.update.model import TargetKind, UpdateTarget, Version
from gateway.update.release import (
    Restart,
    check_config,
    systemd_restart,
    unpack_bundle,
    unpack_wheel,
)
from gateway.update.store import VersionStore, read_json, write_json_atomic
from gateway.update.tuf_client import TufClient

__all__ = ["UpdateManager", "check_lines_for"]

log = logging.getLogger(__name__)


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
        self.state_dir = Path(self.cfg.state_dir)
        self.config_path = config_path
        self.restart = restart or systemd_restart(self.cfg.restart_command)
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
        """The TUF client, refreshed once per manager.

        Raises:
            UpdateError: updates are not configured (no ``[update] metadata_url``). What needs
                only the local state (``status``, ``rollback``) works without it.
        """
        if not self.cfg.enabled:
            raise UpdateError("updates are not configured: set [update] metadata_url")
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

    def record(self, kind: TargetKind, **fields: Any) -> None:
        """Merge ``fields`` (and the time) into ``kind``'s entry of ``status.json``."""
        status = self._status()
        entry = status.get(kind.value) if isinstance(status.get(kind.value), dict) else {}
        assert isinstance(entry, dict)
        entry.update(fields, at=datetime.now(UTC).isoformat(timespec="seconds"))
        status[kind.value] = entry
        write_json_atomic(self.state_dir / "status.json", status)

    def gate(self, force: bool) -> HealthRecord | None:
        """The health record to compare a new version against, once it is safe to update.

        Raises:
            UpdateError: not safe now (no fresh record, an alarm, current above
                ``safe_current_a``; see ``health.unsafe_reason``), unless ``force``.
        """
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
        progress = read_json(progress_path(self.state_dir))
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

    def pick(self, kind: TargetKind, version: str | None, hardware: str | None) -> UpdateTarget:
        """The newest (or the given) signed target of ``kind`` that fits this gateway.

        Raises:
            UpdateError: none fits, or the given version does not exist or does not fit.
        """
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

    def is_downgrade(self, target: UpdateTarget, have: str | None) -> bool:
        """Whether ``target`` is older than the installed ``have`` (the seeded ``0`` is not)."""
        return have is not None and have != "0" and target.version < Version.parse(have)

    def _apply_unpacked(self, kind: TargetKind, version: str | None, force: bool) -> str:
        store = self.stores[kind]
        target = self.pick(kind, version, None)
        have = store.current
        if have is not None and target.version == Version.parse(have):
            return f"{kind.value}: {target.version} is installed"
        if have is not None and target.version < Version.parse(have) and version is None:
            return f"{kind.value}: {have} is installed, nothing newer"
        if self.is_downgrade(target, have) and not force:
            raise UpdateError(
                f"{kind.value} {target.version} is older than the installed {have} (--force)"
            )
        baseline = self.gate(force)
        path = self.client().download(target)
        name = str(target.version)
        if kind is TargetKind.CONFIG:
            self._seed_config(store)
            dest = store.install(name, lambda d: unpack_bundle(path, d))
        else:
            dest = store.install(name, lambda d: unpack_wheel(path, d / "site"))
        problem = check_config(kind, dest, self.config_path)
        if problem is not None:
            store.remove(name)
            self.record(kind, last_result=f"refused {name}: check-config: {problem}")
            raise UpdateError(f"{kind.value} {name} refused by check-config: {problem}")
        before = store.switch(name)
        log.info("%s: switched to %s (was %s); restarting", kind.value, name, before)
        try:
            result = self._restart_and_watch(baseline)
        except UpdateError as e:  # the restart command itself failed
            result = str(e)
        if result is None:
            store.mark_good()
            self.record(kind, last_result=f"applied {name}")
            return f"{kind.value}: {name} applied; healthy for {self.cfg.health_window_s:g} s"
        if before is not None:
            store.switch(before)
        else:
            store.clear_current()  # back to what ran before the store existed
        self.restart()
        self.record(kind, last_result=f"rolled back {name}: {result}")
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
            self.record(kind, last_result=f"rollback to {target} unhealthy: {result}")
            raise UpdateError(
                f"{kind.value}: rolled back to {target} but it is unhealthy: {result}"
            )
        store.mark_good()
        self.record(kind, last_result=f"rolled back from {before} to {target}")
        return f"{kind.value}: rolled back from {before} to {target}"

    # --- BMS firmware -------------------------------------------------------------------------

    def _open_bus(self) -> Any:
        c = self.settings.can
        return open_bus(c.interface, c.channel, c.bitrate)

    def apply_firmware(self, version: str | None = None, force: bool = False) -> str:
        """Flash the newest (or the given) BMS image over UDS (``firmware_update``).

        Raises:
            UpdateError: a refusal or failure (FlashInterrupted: resumable next time).
        """
        self._client = None  # fresh metadata for every command
        return FirmwareUpdate(self).apply(version, force)


def check_lines_for(settings: Settings) -> list[str]:
    """What ``update check`` prints (the daemon's periodic check uses it too)."""
    return UpdateManager(settings, restart=lambda: None).check()
