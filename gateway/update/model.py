"""Update targets as the gateway sees them: kind, version and what they fit. Pure.

A TUF target carries our fields in its ``custom`` object::

    "custom": {"kind": "config", "version": "1.4.0",
               "fits": {"gateway_id": ["site-a"], "chemistry": ["lfp"], "cells": [16]}}

``fits`` is optional; each key present must list the local value (``hardware`` is matched
against the BMS's ECU hardware number for ``bms-firmware``). Versions are dotted integers.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FITS_KEYS", "TargetKind", "UpdateTarget", "Version", "parse_target"]

_VERSION = re.compile(r"^\d{1,6}(\.\d{1,6}){0,3}$")
FITS_KEYS = ("gateway_id", "chemistry", "cells", "hardware")


class TargetKind(enum.Enum):
    """What a target is: a settings bundle, a release of this package, or a BMS image."""

    CONFIG = "config"
    GATEWAY = "gateway"
    BMS_FIRMWARE = "bms-firmware"


@dataclass(frozen=True, order=True, slots=True)
class Version:
    """A dotted integer version (``1.4.0``), compared part by part (``1.10 > 1.9``)."""

    parts: tuple[int, ...]
    text: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``"1.4.0"``.

        Raises:
            ValueError: not one to four dot-separated integers.
        """
        if not isinstance(text, str) or not _VERSION.match(text):
            raise ValueError(f"version (={text!r}) must be dotted integers like 1.4.0")
        parts = tuple(int(p) for p in text.split("."))
        # 1.4 == 1.4.0: trailing zeros do not make a version newer.
        while len(parts) > 1 and parts[-1] == 0:
            parts = parts[:-1]
        return cls(parts, text)

    def __str__(self) -> str:
        return self.text or ".".join(str(p) for p in self.parts)


@dataclass(frozen=True, slots=True)
class UpdateTarget:
    """One signed target: its TUF path, length and hashes, and our custom metadata."""

    path: str
    kind: TargetKind
    version: Version
    length: int
    hashes: Mapping[str, str]
    fits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def fits_here(
        self, local: Mapping[str, str | None], ignore: tuple[str, ...] = ()
    ) -> str | None:
        """``None`` when the target fits ``local`` (``gateway_id``, ``chemistry``, ...), else
        the reason (``"fits chemistry nmc, this pack is lfp"``). An unknown local value fits
        nothing that restricts it. Keys in ``ignore`` are not checked."""
        for key, allowed in self.fits.items():
            if key in ignore:
                continue
            value = local.get(key)
            if value is None or value not in allowed:
                return f"fits {key} {', '.join(allowed)}, this one is {value or 'unknown'}"
        return None


def parse_target(path: str, length: int, hashes: Mapping[str, str], custom: Any) -> UpdateTarget:
    """Build an :class:`UpdateTarget` from a TUF target's fields.

    Raises:
        ValueError: ``custom`` lacks ``kind`` or ``version``, or has an unknown kind or fits key;
            the message names the target path.
    """
    parts = path.split("/")
    if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or len(path) > 255:
        raise ValueError(f"target {path!r}: not a plain relative path")
    if not isinstance(custom, Mapping):
        raise ValueError(f"target {path}: no custom metadata (kind, version)")
    try:
        kind = TargetKind(custom.get("kind"))
    except ValueError:
        kinds = ", ".join(k.value for k in TargetKind)
        raise ValueError(
            f"target {path}: kind (={custom.get('kind')!r}) not one of {kinds}"
        ) from None
    try:
        version = Version.parse(str(custom.get("version")))
    except ValueError as e:
        raise ValueError(f"target {path}: {e}") from None
    raw_fits = custom.get("fits") or {}
    if not isinstance(raw_fits, Mapping):
        raise ValueError(f"target {path}: fits must be an object")
    fits: dict[str, tuple[str, ...]] = {}
    for key, values in raw_fits.items():
        if key not in FITS_KEYS:
            raise ValueError(f"target {path}: unknown fits key {key!r} (one of {FITS_KEYS})")
        seq = values if isinstance(values, list | tuple) else [values]
        fits[key] = tuple(str(v) for v in seq)
    return UpdateTarget(path, kind, version, length, dict(hashes), fits)
