"""Loading DBC files with cantools (strict mode), with errors that name the file and line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cantools
import textparser  # cantools' parser; its errors carry the line
from cantools.database.errors import Error as CantoolsError

from gateway.errors import ConfigError

__all__ = ["DbcSet", "load_dbcs"]


class DbcSet:
    """One cantools database built from one or more DBC files, remembering which file said what."""

    def __init__(self, db: cantools.database.can.Database, origin: dict[str, Path]) -> None:
        self.db = db
        self._origin = origin  # message name -> file that defined it

    @property
    def files(self) -> list[Path]:
        """The files, in load order."""
        return list(dict.fromkeys(self._origin.values()))

    def describe(self) -> str:
        """The file names for error messages (``bms.dbc`` or ``a.dbc, b.dbc``)."""
        return ", ".join(str(p) for p in self.files) or "(no DBC)"

    def origin(self, message_name: str) -> Path | None:
        """The file that defined ``message_name``."""
        return self._origin.get(message_name)


def _parse_one(path: Path) -> cantools.database.can.Database:
    try:
        # DBC files are Windows-1252 by convention (cantools' own default); reading them here
        # keeps "cannot read" apart from "cannot parse".
        text = path.read_bytes().decode("cp1252", errors="replace")
    except OSError as e:
        raise ConfigError(f"DBC {path}: cannot read: {e.strerror}") from None
    db = cantools.database.can.Database(strict=True)
    try:
        db.add_dbc_string(text)
    except textparser.ParseError as e:
        # "Invalid syntax at line 12, column 5: ..." names the line and marks the spot.
        raise ConfigError(f"DBC {path}: {e}") from None
    except (CantoolsError, ValueError, KeyError, IndexError, TypeError) as e:
        # Strict mode: overlapping signals, signals outside the frame, bad mux references...
        raise ConfigError(f"DBC {path}: {e}") from None
    if not db.messages:
        raise ConfigError(f"DBC {path}: defines no messages")
    return db


def load_dbcs(paths: Sequence[Path]) -> DbcSet:
    """Load every file into one database; a frame id or message name defined twice is an error.

    Raises:
        ConfigError: one line naming the file (and line, where cantools reports it).
    """
    if not paths:
        raise ConfigError("no DBC file configured (set can.dbc)")
    merged = cantools.database.can.Database(strict=True)
    origin: dict[str, Path] = {}
    by_id: dict[tuple[int, bool], str] = {}
    for path in paths:
        for msg in _parse_one(path).messages:
            key = (msg.frame_id, bool(msg.is_extended_frame))
            if msg.name in origin:
                raise ConfigError(
                    f"DBC {path}: message {msg.name!r} is already defined in {origin[msg.name]}"
                )
            if key in by_id:
                other = by_id[key]
                raise ConfigError(
                    f"DBC {path}: frame id 0x{msg.frame_id:X} of {msg.name!r} is already used by "
                    f"{other!r} in {origin[other]}"
                )
            origin[msg.name] = path
            by_id[key] = msg.name
            merged.messages.append(msg)
    merged.refresh()
    return DbcSet(merged, origin)
