"""Settings of the CAN link and of the DBC/signal-map pair."""

from __future__ import annotations

import importlib.resources
import re
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

from pydantic import Field, model_validator

from gateway.core.config import Section

__all__ = ["CanConfig", "CanFilter", "packaged_dbc_dir"]

# A profile name without a path separator or suffix names one of the shipped profiles.
_PROFILE_NAME = r"^[A-Za-z0-9_-]+$"


def packaged_dbc_dir() -> AbstractContextManager[Path]:
    """The shipped ``dbc/`` directory (bms.dbc, profiles/) as a real path, while in the context.

    ``gateway/data/dbc`` links to the repository's ``dbc/`` in an editable install and is a copy
    inside a wheel; ``as_file`` also covers a zipped install by extracting to a temporary dir.
    """
    return importlib.resources.as_file(importlib.resources.files("gateway") / "data" / "dbc")


class CanFilter(Section):
    """One receive filter: a frame passes when ``frame_id & mask == can_id & mask``."""

    can_id: int = Field(ge=0, le=0x1FFFFFFF)
    """Identifier to match."""
    mask: int = Field(default=0x7FF, ge=0, le=0x1FFFFFFF)
    """Bits of the identifier that must match."""
    extended: bool = False
    """Match 29-bit (extended) identifiers instead of 11-bit ones."""


class CanConfig(Section):
    """The CAN interface and the DBC/profile pair that decodes it."""

    interface: str = Field(default="virtual", min_length=1)
    """python-can interface name: ``socketcan`` on a device, ``virtual`` in tests and the demo."""
    channel: str = Field(default="bms0", min_length=1)
    """Channel name (``can0`` for SocketCAN)."""
    bitrate: int | None = Field(default=None, gt=0, le=8_000_000, examples=[500_000])
    """Bit rate in bit/s for interfaces that set it (SocketCAN takes it from ``ip link``); unset:
    the interface's own."""
    profile: str = Field(default="bms", min_length=1)
    """Signal map: a shipped profile name (``bms``, ``foxbms``) or the path of a TOML file."""
    dbc: tuple[str, ...] = ()
    """DBC files (paths); empty means the DBC the profile ships with (``bms.dbc`` for ``bms``)."""
    receive_filters: tuple[CanFilter, ...] = ()
    """Receive filters ``[{ can_id = 0x100, mask = 0x7C0 }]``; empty: all (unmapped are ignored)."""
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    """First delay before reopening a failed interface (jittered, grows to the maximum)."""
    reconnect_max_s: float = Field(default=30.0, gt=0, le=600)
    """Upper bound of the jittered reconnect backoff."""

    @model_validator(mode="after")
    def _check_backoff(self) -> CanConfig:
        if self.reconnect_min_s > self.reconnect_max_s:
            raise ValueError(
                f"reconnect_min_s (={self.reconnect_min_s}) must not exceed "
                f"reconnect_max_s (={self.reconnect_max_s})"
            )
        return self

    def profile_is_packaged(self) -> bool:
        """Whether ``profile`` names a shipped profile rather than a file."""
        return re.fullmatch(_PROFILE_NAME, self.profile) is not None

    def profile_path(self, stack: ExitStack) -> Path:
        """The profile file; a shipped name resolves inside the package (kept open by ``stack``).

        Relative paths resolve against the current directory.
        """
        if self.profile_is_packaged():
            base = stack.enter_context(packaged_dbc_dir())
            return base / "profiles" / f"{self.profile}.toml"
        return Path(self.profile).expanduser().resolve()

    def dbc_paths(self) -> list[Path]:
        """The configured DBC files (relative paths resolve against the current directory)."""
        return [Path(p).expanduser().resolve() for p in self.dbc]
