"""The shipped example config and config reference are generated from the settings model."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from gateway.configdoc import TARGETS, example_toml
from gateway.settings import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent


def test_shipped_files_are_current() -> None:
    for rel, render in TARGETS.items():
        shipped = (REPO / rel).read_text(encoding="utf-8")
        assert shipped == render(), f"{rel} is stale: run `.venv/bin/python -m gateway.configdoc`"


def test_uncommented_example_is_the_defaults() -> None:
    # Every `# key = value` line of a key with a default, uncommented, must load and reproduce
    # the defaults (keys unset by default show an example instead).
    lines = []
    for line in example_toml().splitlines():
        m = re.match(r"^# (\w+ = .*)$", line)
        if m:
            lines.append(m.group(1))
        elif line.startswith("["):
            lines.append(line)
    defaults = Settings()
    data = {
        section: {
            k: v for k, v in table.items() if getattr(getattr(defaults, section), k) is not None
        }
        for section, table in tomllib.loads("\n".join(lines)).items()
    }
    assert Settings(**data) == defaults
    keys = sum(len(section) for section in data.values())
    assert keys >= 10


def test_the_reference_names_types_as_a_reader_knows_them() -> None:
    # A secret is a string the gateway never prints, not a pydantic class path.
    from gateway.configdoc import reference_markdown

    text = reference_markdown()
    assert "pydantic." not in text
    assert "| `password` | secret str \\| None |" in text


def test_every_example_line_uncommented_loads_without_a_warning(tmp_path: Path) -> None:
    # The shipped example as a user edits it: every `# key = value` line uncommented in its
    # section, keys without a default at their example, deprecated keys not offered.
    lines = []
    for line in (REPO / "systemd" / "config.example.toml").read_text().splitlines():
        m = re.match(r"^# (\w+ = .*)$", line)
        if m:
            lines.append(m.group(1))
        elif line.startswith("["):
            lines.append(line)
    f = tmp_path / "all.toml"
    f.write_text("\n".join(lines) + "\n")
    settings = load_settings(f)
    assert settings.deprecations == ()
    unset = [
        f"{section}.{key}"
        for section, value in settings.model_dump().items()
        for key, v in value.items()
        if v is None
    ]
    # Left unset: the deprecated keys and those an example needs another key for.
    assert sorted(unset) == [
        "balancing.max_data_age_s",
        "charge.float_cell_v",
        "mqtt.tls_ca_file",
        "mqtt.tls_cert_file",
        "mqtt.tls_key_file",
        "soc.ocv_table",
        "soc.stale_s",
        "sparkplug.tls_ca_file",
    ]
