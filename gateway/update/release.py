"""A config bundle or gateway release on disk: unpack it (bounded), check it, restart into it.

- ``unpack_bundle``: a config bundle (tar, optionally gzip) holding ``config.toml`` at its top.
- ``unpack_wheel``: a pure-Python gateway wheel, importable from the directory it is unpacked in.
- ``check_config``: ``bms-gateway check-config`` run by the new version in a child process.
- ``systemd_restart``: the default restart hook, ``[update].restart_command``.

Archives are bounded before they are unpacked (member count and total size) and a member whose
path is absolute or climbs out with ``..`` is refused. Every refusal is an ``UpdateError``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from gateway.errors import UpdateError
from gateway.update.model import TargetKind

__all__ = [
    "MAX_BUNDLE_BYTES",
    "MAX_BUNDLE_FILES",
    "Restart",
    "check_config",
    "systemd_restart",
    "unpack_bundle",
    "unpack_wheel",
]

MAX_BUNDLE_BYTES = 64 << 20
MAX_BUNDLE_FILES = 2000

Restart = Callable[[], None]

# Run ``python -m gateway`` from an unpacked wheel: its directory first on the path, and without
# the import hook of an editable (development) install, which would win over sys.path.
_RUN_FROM_SITE = (
    "import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); "
    "sys.meta_path[:] = [f for f in sys.meta_path "
    "if not getattr(f, '__module__', '').startswith('__editable__')]; "
    "runpy.run_module('gateway', run_name='__main__', alter_sys=True)"
)


def systemd_restart(command: tuple[str, ...]) -> Restart:
    """A restart hook that runs ``command`` (60 s at most).

    Raises (when called):
        UpdateError: the command could not run or failed.
    """

    def restart() -> None:
        try:
            subprocess.run(command, check=True, capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as e:
            raise UpdateError(f"restart command {' '.join(command)} failed: {e}") from None

    return restart


def check_config(kind: TargetKind, dest: Path, config_path: Path | None) -> str | None:
    """Run ``bms-gateway check-config`` on the version unpacked in ``dest`` in a child process.

    A config bundle is checked by the running gateway's code; a gateway release checks the
    running configuration (``config_path``) with its own code.

    Returns:
        ``None`` when it passed, else the last line of its error output.
    """
    if kind is TargetKind.CONFIG:
        config = dest / "config.toml"
        cwd = dest
        cmd = [sys.executable, "-m", "gateway"]
    else:
        if config_path is None:
            return "no --config to check the new release against"
        config = config_path.resolve()
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


def _safe_member(name: str) -> bool:
    parts = Path(name).parts
    return not (Path(name).is_absolute() or ".." in parts or not parts)


def unpack_bundle(archive: Path, dest: Path) -> None:
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


def unpack_wheel(wheel: Path, dest: Path) -> None:
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
