"""Where a setting came from: the TOML file, a ``BMSGW_`` variable, or both, for error messages.

Every config error names its key (``soc.rest_s``, ``charge.float_cell_v``); :class:`Origin`
finds the keys a message names and says where each was set, so a field's error, a cross-check
in a model validator and an error found after loading (a file the settings name, a check in the
control core) all name their source the same way:
``config error: environment BMSGW_CHARGE__FLOAT_CELL_V: charge.float_cell_v (=3.5 V) ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

__all__ = ["Origin"]

_DOTTED = re.compile(r"(?<![\w./-])([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\b")
_WORD = re.compile(r"(?<![\w.])([a-z][a-z0-9_]*)\b")


@dataclass(frozen=True, slots=True)
class Origin:
    """The sources of one load of the settings.

    Attributes:
        tree: the settings model (its fields are the sections, theirs the keys).
        prefix: the environment prefix (``BMSGW_``).
        path: the TOML file, or ``None``.
        data: what the file held (section name -> table).
        env_names: the upper-cased names of the ``BMSGW_`` variables set at load.
    """

    tree: type[BaseModel]
    prefix: str
    path: Path | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    env_names: frozenset[str] = frozenset()

    def overall(self) -> str:
        """Where the settings came from at all: ``FILE``, ``FILE + environment``,
        ``environment`` or ``defaults``."""
        if self.path is None:
            return "environment" if self.env_names else "defaults"
        return f"{self.path} + environment" if self.env_names else str(self.path)

    def keys_named(self, text: str, section: str | None = None) -> list[tuple[str, str]]:
        """The ``(section, key)`` pairs ``text`` names as ``section.key``, in order; with
        ``section``, also its keys named alone (a section's own check words them so)."""
        sections = self.tree.model_fields
        found: list[tuple[str, str]] = []
        for sec, key in _DOTTED.findall(text):
            if sec in sections and key in _keys(sections[sec].annotation):
                found.append((sec, key))
        if section is not None and section in sections:
            own = _keys(sections[section].annotation)
            found += [(section, w) for w in _WORD.findall(text) if w in own]
        return list(dict.fromkeys(found))

    def of(self, text: str, section: str | None = None) -> str:
        """Where the keys ``text`` names were set: the file, ``environment VAR[, VAR]``, or
        both joined by `` + ``; :meth:`overall` when it names none set in either (a default
        that another key chose, or no key)."""
        in_file = False
        env: list[str] = []
        for sec, key in self.keys_named(text, section):
            var = f"{self.prefix}{sec.upper()}__{key.upper()}"
            if var in self.env_names:  # the environment wins over the file
                env.append(var)
            elif self.path is not None and _has(self.data.get(sec), key):
                in_file = True
        parts = ([str(self.path)] if in_file else []) + (
            [f"environment {', '.join(env)}"] if env else []
        )
        return " + ".join(parts) if parts else self.overall()

    def label(self, text: str, section: str | None = None) -> str:
        """``text`` behind its source (:meth:`of`), unless it already begins with it."""
        source = self.of(text, section)
        return text if text.startswith(source) else f"{source}: {text}"


def _keys(model: Any) -> Mapping[str, Any]:
    return getattr(model, "model_fields", None) or {}


def _has(table: object, key: str) -> bool:
    return isinstance(table, Mapping) and key in table
