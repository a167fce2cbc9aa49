"""The update state directory on disk: versions beside each other, symlinks, small JSON files.

Layout under ``[update].state_dir``::

    tuf/metadata/        verified TUF metadata (python-tuf keeps it; rollback protection)
    tuf/downloads/       verified targets
    config/versions/V/   unpacked config bundles    config/current -> versions/V
    gateway/versions/V/  unpacked gateway wheels    gateway/current, last-good, previous
    firmware/progress.json  an interrupted BMS transfer (resumed by the next apply)
    health.json          written by the daemon about once a second
    hold.json            written by the updater: the daemon holds CCL = DCL = 0 A meanwhile
    status.json          the last result per kind

A version is unpacked into ``versions/.partial-V-<pid>`` and renamed into place only when
complete and synced, and ``current`` is switched with one ``rename`` of a new symlink over the
old one. So a half-written update is never what ``current`` points at.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.update.model import Version

__all__ = ["VersionStore", "read_json", "write_json_atomic"]

CURRENT, LAST_GOOD, PREVIOUS = "current", "last-good", "previous"
_PARTIAL = ".partial-"
_KEEP = 4  # versions kept besides current/last-good/previous


def _version_key(name: str) -> tuple[int, tuple[int, ...], str]:
    """Oldest first: dotted versions by value, anything else after them by name."""
    try:
        return (0, Version.parse(name).parts, name)
    except ValueError:
        return (1, (), name)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` atomically (temp file, fsync, rename).

    Raises:
        OSError: the directory cannot be written; the old file stays.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or ``None`` when it is missing or not valid JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if p.is_symlink():
                continue
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        fd = os.open(dirpath, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class VersionStore:
    """Versions of one kind, side by side, and the ``current``/``last-good``/``previous`` links.

    Args:
        base: the kind's directory (``<state_dir>/config``).
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.versions = base / "versions"

    def link(self, name: str) -> str | None:
        """The version a link points at, or ``None``."""
        try:
            return Path(os.readlink(self.base / name)).name
        except OSError:
            return None

    @property
    def current(self) -> str | None:
        """The version ``current`` points at."""
        return self.link(CURRENT)

    def path(self, version: str) -> Path:
        """The directory of ``version``."""
        return self.versions / version

    def installed(self) -> list[str]:
        """Complete versions on disk, oldest first (partial ones excluded)."""
        if not self.versions.is_dir():
            return []
        names = [p.name for p in self.versions.iterdir() if not p.name.startswith(".")]
        return sorted(names, key=_version_key)

    def install(self, version: str, fill: Callable[[Path], None]) -> Path:
        """Unpack a version beside the others: ``fill(tmpdir)`` writes it, then it is synced and
        renamed into place. Leftovers of interrupted installs are removed first.

        Raises:
            ValueError: ``version`` is the one running (``current``).
            Whatever ``fill`` raises; nothing of the partial version is left.
        """
        if "/" in version or version.startswith("."):
            raise ValueError(f"version name (={version!r}) must be a plain name")
        if version == self.current:
            raise ValueError(f"version {version} is the one running; it is not replaced")
        self.versions.mkdir(parents=True, exist_ok=True)
        for stale in self.versions.glob(f"{_PARTIAL}*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.versions / f"{_PARTIAL}{version}-{os.getpid()}"
        tmp.mkdir()
        try:
            fill(tmp)
            _fsync_tree(tmp)
            dest = self.path(version)
            if dest.exists():
                shutil.rmtree(dest)
            os.rename(tmp, dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return dest

    def remove(self, version: str) -> None:
        """Delete a version that no link points at."""
        if version in {self.link(n) for n in (CURRENT, LAST_GOOD, PREVIOUS)}:
            return
        shutil.rmtree(self.path(version), ignore_errors=True)

    def set_link(self, name: str, version: str) -> None:
        """Point ``name`` at ``version`` atomically (a new symlink renamed over the old one)."""
        if not self.path(version).is_dir():
            raise FileNotFoundError(f"version {version} is not installed under {self.versions}")
        tmp = self.base / f".{name}.new"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(Path("versions") / version, tmp)
        os.replace(tmp, self.base / name)
        fd = os.open(self.base, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def switch(self, version: str) -> str | None:
        """Make ``version`` current; ``previous`` keeps the one it replaces (returned)."""
        before = self.current
        if before is not None and before != version:
            self.set_link(PREVIOUS, before)
        self.set_link(CURRENT, version)
        return before

    def clear_current(self) -> None:
        """Remove ``current`` (the service then runs what it ran before the first update)."""
        with contextlib.suppress(FileNotFoundError):
            (self.base / CURRENT).unlink()

    def mark_good(self) -> None:
        """``last-good`` := ``current``; old versions beyond a few are pruned."""
        cur = self.current
        if cur is None:
            return
        self.set_link(LAST_GOOD, cur)
        keep = {self.link(n) for n in (CURRENT, LAST_GOOD, PREVIOUS)}
        others = [v for v in self.installed() if v not in keep]
        for v in others[:-_KEEP] if len(others) > _KEEP else []:
            shutil.rmtree(self.path(v), ignore_errors=True)
