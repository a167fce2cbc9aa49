"""An operator's TUF repository: keys, signed targets and metadata in a static directory.

Built on ``tuf.api.metadata`` and securesystemslib's ``CryptoSigner`` (Ed25519 keys in PEM
files). Two directories: ``keys_dir`` holds the private keys (keep it offline; never publish
it) and ``publish_dir`` holds ``metadata/`` and ``targets/``, which any static web server can
serve. The repository uses consistent snapshots: versioned ``N.snapshot.json`` and
``N.targets.json`` and hash-prefixed target files, so a client never mixes two releases.
``scripts/tuf_repo.py`` is the command line over this class; docs/UPDATES.md the workflow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner, SSlibKey
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from gateway.update.model import FITS_KEYS, TargetKind, Version

__all__ = ["DEFAULT_EXPIRY_DAYS", "OperatorRepo"]

ROLES = ("root", "targets", "snapshot", "timestamp")
DEFAULT_EXPIRY_DAYS = {"root": 365, "targets": 90, "snapshot": 7, "timestamp": 1}


def _expiry(days: float, now: datetime | None = None) -> datetime:
    return ((now or datetime.now(UTC)) + timedelta(days=days)).replace(microsecond=0)


class OperatorRepo:
    """Create and sign a repository; every method writes the files it changes.

    Args:
        keys_dir: private keys, ``<keyid>.pem`` (created by :meth:`init`).
        publish_dir: the served directory (``metadata/``, ``targets/``).
    """

    def __init__(self, keys_dir: Path, publish_dir: Path) -> None:
        self.keys_dir = keys_dir
        self.publish_dir = publish_dir
        self.metadata_dir = publish_dir / "metadata"
        self.targets_dir = publish_dir / "targets"

    # --- keys and root ----------------------------------------------------------------------

    def init(self, thresholds: Mapping[str, int] | None = None) -> Path:
        """Create keys for every role and sign version 1 of every role.

        Args:
            thresholds: signatures needed per role (default 1); a role gets that many keys.

        Returns:
            The path of ``root.json`` to ship to gateways as ``[update].root``.

        Raises:
            FileExistsError: the publish directory already holds a root.
        """
        if (self.metadata_dir / "1.root.json").exists():
            raise FileExistsError(f"{self.metadata_dir} already holds a repository")
        self.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.metadata_dir.mkdir(parents=True, exist_ok=True)
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        root = Root(expires=_expiry(DEFAULT_EXPIRY_DAYS["root"]), consistent_snapshot=True)
        for role in ROLES:
            n = (thresholds or {}).get(role, 1)
            if n < 1:
                raise ValueError(f"threshold of {role} (={n}) must be at least 1")
            for _ in range(n):
                signer = CryptoSigner.generate_ed25519()
                path = self.keys_dir / f"{signer.public_key.keyid}.pem"
                path.write_bytes(signer.private_bytes)
                path.chmod(0o600)
                root.add_key(signer.public_key, role)
            root.roles[role].threshold = n
        md_root = Metadata(root)
        self._sign(md_root, "root", root)
        self._write(md_root, "1.root.json")
        self._write(md_root, "root.json")
        targets = Metadata(Targets(expires=_expiry(DEFAULT_EXPIRY_DAYS["targets"])))
        self._publish_chain(targets)
        return self.metadata_dir / "root.json"

    def root(self) -> Metadata[Root]:
        """The newest root."""
        return Metadata[Root].from_file(str(self.metadata_dir / "root.json"))

    def keyids(self, role: str) -> list[str]:
        """The key ids of ``role`` in the newest root."""
        return list(self.root().signed.roles[role].keyids)

    def _signer(self, keyid: str, root: Root) -> CryptoSigner:
        pem = (self.keys_dir / f"{keyid}.pem").read_bytes()
        key = root.keys[keyid]
        assert isinstance(key, SSlibKey)
        return CryptoSigner(load_pem_private_key(pem, None), key)

    def _sign(
        self, md: Metadata[Any], role: str, root: Root, keyids: Iterable[str] | None = None
    ) -> None:
        md.signatures.clear()
        for keyid in keyids if keyids is not None else root.roles[role].keyids:
            md.sign(self._signer(keyid, root), append=True)

    def _write(self, md: Metadata[Any], name: str) -> None:
        md.to_file(str(self.metadata_dir / name), JSONSerializer(compact=False))

    # --- targets ----------------------------------------------------------------------------

    def current_targets(self) -> Metadata[Targets]:
        """The newest published targets metadata."""
        snap = self._current_snapshot()
        version = snap.signed.meta["targets.json"].version
        return Metadata[Targets].from_file(str(self.metadata_dir / f"{version}.targets.json"))

    def _current_snapshot(self) -> Metadata[Snapshot]:
        ts = Metadata[Timestamp].from_file(str(self.metadata_dir / "timestamp.json"))
        version = ts.signed.snapshot_meta.version
        return Metadata[Snapshot].from_file(str(self.metadata_dir / f"{version}.snapshot.json"))

    def add_target(
        self,
        file: Path,
        *,
        kind: TargetKind,
        version: str,
        fits: Mapping[str, Iterable[str | int]] | None = None,
        name: str | None = None,
        targets_keyids: Iterable[str] | None = None,
        expires_days: float | None = None,
    ) -> str:
        """Add ``file`` as a target, then sign and publish new targets, snapshot and timestamp.

        Args:
            file: the bundle, wheel or image.
            kind: what it is.
            version: its version (dotted integers).
            fits: ``{"gateway_id": [...], "chemistry": [...], "cells": [...], "hardware": [...]}``.
            name: target path (default ``<kind>/<file name>``).
            targets_keyids: sign the targets role with only these keys (default: all; fewer
                than the threshold makes metadata every client refuses, which tests use).
            expires_days: targets expiry (default 90 days).

        Returns:
            The target path.
        """
        Version.parse(version)
        for key in fits or {}:
            if key not in FITS_KEYS:
                raise ValueError(f"fits key {key!r} not one of {FITS_KEYS}")
        data = file.read_bytes()
        path = name or f"{kind.value}/{file.name}"
        tf = TargetFile.from_data(path, data, ["sha256"])
        custom: dict[str, Any] = {"kind": kind.value, "version": version}
        if fits:
            custom["fits"] = {k: [str(v) for v in vals] for k, vals in fits.items()}
        tf.unrecognized_fields["custom"] = custom
        digest = hashlib.sha256(data).hexdigest()
        dirname, _, base = path.rpartition("/")
        dest = self.targets_dir / dirname / f"{digest}.{base}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, dest)
        md = self.current_targets()
        md.signed.targets[path] = tf
        md.signed.expires = _expiry(expires_days or DEFAULT_EXPIRY_DAYS["targets"])
        self._publish_chain(md, targets_keyids=targets_keyids)
        return path

    def _publish_chain(
        self, targets: Metadata[Targets], targets_keyids: Iterable[str] | None = None
    ) -> None:
        """Bump and sign targets, then snapshot and timestamp that name it."""
        root = self.root().signed
        first = not (self.metadata_dir / "timestamp.json").exists()
        targets.signed.version = 1 if first else targets.signed.version + 1
        self._sign(targets, "targets", root, targets_keyids)
        self._write(targets, f"{targets.signed.version}.targets.json")
        if first:
            snap = Metadata(Snapshot(expires=_expiry(DEFAULT_EXPIRY_DAYS["snapshot"])))
        else:
            snap = self._current_snapshot()
            snap.signed.version += 1
            snap.signed.expires = _expiry(DEFAULT_EXPIRY_DAYS["snapshot"])
        snap.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        self._sign(snap, "snapshot", root)
        self._write(snap, f"{snap.signed.version}.snapshot.json")
        self.publish_timestamp(snapshot_version=snap.signed.version)

    def publish_timestamp(
        self, *, snapshot_version: int | None = None, expires: datetime | None = None
    ) -> int:
        """Sign a new timestamp (run it before the old one expires, e.g. daily from cron).

        Args:
            snapshot_version: the snapshot it names (default: the current one).
            expires: its expiry (default: one day from now).

        Returns:
            The new timestamp version.
        """
        root = self.root().signed
        path = self.metadata_dir / "timestamp.json"
        if path.exists():
            ts = Metadata[Timestamp].from_file(str(path))
            ts.signed.version += 1
        else:
            ts = Metadata(Timestamp(expires=_expiry(1)))
        if snapshot_version is None:
            snapshot_version = ts.signed.snapshot_meta.version
        ts.signed.snapshot_meta = MetaFile(version=snapshot_version)
        ts.signed.expires = (expires or _expiry(DEFAULT_EXPIRY_DAYS["timestamp"])).replace(
            microsecond=0
        )
        self._sign(ts, "timestamp", root)
        self._write(ts, "timestamp.json")
        return ts.signed.version

    def describe(self) -> str:
        """A JSON summary: role versions, expiries, and the targets with their custom data."""
        ts = Metadata[Timestamp].from_file(str(self.metadata_dir / "timestamp.json"))
        snap = self._current_snapshot()
        tgt = self.current_targets()
        return json.dumps(
            {
                "root": {"version": self.root().signed.version},
                "timestamp": {"version": ts.signed.version, "expires": str(ts.signed.expires)},
                "snapshot": {"version": snap.signed.version},
                "targets": {
                    "version": tgt.signed.version,
                    "expires": str(tgt.signed.expires),
                    "files": {p: t.custom for p, t in tgt.signed.targets.items()},
                },
            },
            indent=2,
        )
