"""The shipped example config and config reference are generated from the settings model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from gateway.configdoc import TARGETS, UNSET, example_toml
from gateway.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def test_shipped_files_are_current() -> None:
    for rel, render in TARGETS.items():
        shipped = (REPO / rel).read_text(encoding="utf-8")
        assert shipped == render(), f"{rel} is stale: run `.venv/bin/python -m gateway.configdoc`"


def test_uncommented_example_is_the_defaults() -> None:
    # Every `# key = value` line uncommented must load and reproduce the defaults.
    lines = []
    for line in example_toml().splitlines():
        m = re.match(r"^# (\w+ = .*)$", line)
        if m and UNSET not in line:
            lines.append(m.group(1))
        elif line.startswith("["):
            lines.append(line)
    data = tomllib.loads("\n".join(lines))
    assert Settings(**data) == Settings()
    keys = sum(len(section) for section in data.values())
    assert keys >= 10


def test_the_reference_names_types_as_a_reader_knows_them() -> None:
    # A secret is a string the gateway never prints, not a pydantic class path.
    from gateway.configdoc import reference_markdown

    text = reference_markdown()
    assert "pydantic." not in text
    assert "| `password` | secret str \\| None |" in text
