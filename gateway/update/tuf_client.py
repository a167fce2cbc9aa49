"""The TUF client: python-tuf's ``ngclient.Updater`` behind one small class.

``tuf.ngclient`` does the whole client workflow of the TUF specification: root rotation from the
trusted root, threshold signatures, expiry, version (rollback) checks of timestamp, snapshot and
targets, consistent snapshots, and length and hash checks of every download. This module only
chooses the directories, lists our targets and turns python-tuf's exceptions into one
:class:`~gateway.errors.UpdateError` line each.
"""

from __future__ import annotations

import logging
from pathlib import Path

from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import Updater

from gateway.errors import UpdateError
from gateway.update.model import TargetKind, UpdateTarget, parse_target

__all__ = ["TufClient", "explain"]

log = logging.getLogger(__name__)


def explain(e: Exception) -> str:
    """One line for a python-tuf error: what kind of refusal and python-tuf's own detail."""
    what = {
        tuf_errors.ExpiredMetadataError: "metadata expired",
        tuf_errors.UnsignedMetadataError: "signature threshold not met",
        tuf_errors.BadVersionNumberError: "rollback refused (older metadata version)",
        tuf_errors.LengthOrHashMismatchError: "hash or length mismatch (tampered file)",
        tuf_errors.DownloadLengthMismatchError: "download longer than signed (tampered file)",
        tuf_errors.DownloadHTTPError: "download failed",
        tuf_errors.DownloadError: "download failed",
        tuf_errors.RepositoryError: "metadata refused",
    }
    for cls, text in what.items():
        if isinstance(e, cls):
            return f"{text}: {e}"
    return f"{type(e).__name__}: {e}"


class TufClient:
    """Verified metadata and targets from one TUF repository.

    Args:
        root: the trusted root.json (the trust anchor, shipped by the installer).
        metadata_dir: where the verified metadata is kept between runs (rollback protection
            across runs comes from it).
        metadata_url: base URL of the metadata.
        targets_url: base URL of the targets.
        download_dir: where verified targets are written.

    Raises:
        UpdateError: the root file is missing or not a valid root.
    """

    def __init__(
        self,
        root: Path,
        metadata_dir: Path,
        metadata_url: str,
        targets_url: str,
        download_dir: Path,
    ) -> None:
        try:
            bootstrap = root.read_bytes()
        except OSError as e:
            raise UpdateError(f"trusted root {root}: cannot read: {e.strerror}") from None
        metadata_dir.mkdir(parents=True, exist_ok=True)
        download_dir.mkdir(parents=True, exist_ok=True)
        self.download_dir = download_dir
        self.metadata_dir = metadata_dir
        try:
            self._updater = Updater(
                metadata_dir=str(metadata_dir),
                metadata_base_url=metadata_url,
                target_dir=str(download_dir),
                target_base_url=targets_url,
                bootstrap=bootstrap,
            )
        except (tuf_errors.RepositoryError, ValueError) as e:
            raise UpdateError(f"trusted root {root}: {explain(e)}") from None
        self._refreshed = False

    def refresh(self) -> None:
        """Fetch and verify root, timestamp, snapshot and targets.

        Raises:
            UpdateError: any refusal (expired, bad signature, rollback) or download failure.
        """
        try:
            self._updater.refresh()
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError, OSError) as e:
            raise UpdateError(f"update metadata refused: {explain(e)}") from None
        self._refreshed = True

    def targets(self) -> list[UpdateTarget]:
        """Every top-level target with valid custom metadata, after :meth:`refresh`.

        The list comes from the targets metadata that ``refresh`` verified and stored (python-tuf
        persists a role only after it verified it). Targets with broken custom metadata are
        logged and skipped. Delegated roles are not listed.
        """
        if not self._refreshed:
            self.refresh()
        md = Metadata[Targets].from_file(str(self.metadata_dir / "targets.json"))
        out: list[UpdateTarget] = []
        for path, tf in md.signed.targets.items():
            try:
                out.append(parse_target(path, tf.length, tf.hashes, tf.custom))
            except ValueError as e:
                log.warning("skipping %s", e)
        return out

    def newest(
        self, kind: TargetKind, local: dict[str, str | None], ignore: tuple[str, ...] = ()
    ) -> UpdateTarget | None:
        """The highest version of ``kind`` that fits ``local`` (``ignore``: keys not checked),
        or ``None``."""
        fitting = [
            t for t in self.targets() if t.kind is kind and t.fits_here(local, ignore) is None
        ]
        return max(fitting, key=lambda t: t.version, default=None)

    def target_file(self, target: UpdateTarget) -> TargetFile:
        """The verified ``TargetFile`` (length and hashes) of ``target``.

        Raises:
            UpdateError: the target is not (or no longer) in the signed metadata.
        """
        try:
            info = self._updater.get_targetinfo(target.path)
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise UpdateError(f"target {target.path}: {explain(e)}") from None
        if info is None:
            raise UpdateError(f"target {target.path}: not in the signed targets metadata")
        return info

    def download(self, target: UpdateTarget) -> Path:
        """Download ``target`` (or reuse a verified cached copy) and return its local path.

        The file is written only after its length and hashes match the signed metadata.

        Raises:
            UpdateError: the download failed or does not match (tampered).
        """
        info = self.target_file(target)
        dest = self.download_dir / target.path.replace("/", "__")
        try:
            cached = self._updater.find_cached_target(info, str(dest))
            if cached is not None:
                return Path(cached)
            return Path(self._updater.download_target(info, str(dest)))
        except (tuf_errors.RepositoryError, tuf_errors.DownloadError) as e:
            raise UpdateError(f"target {target.path} refused: {explain(e)}") from None
        except OSError as e:
            raise UpdateError(f"target {target.path}: cannot write {dest}: {e.strerror}") from None
