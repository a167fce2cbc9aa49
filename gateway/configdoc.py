"""Render the settings tree as a commented example TOML file and as a Markdown reference.

Both are generated from the pydantic models (types, defaults, attribute docstrings), so the docs
cannot drift from the code: ``tests/test_configdoc.py`` fails when the shipped files are stale.
Regenerate with ``.venv/bin/python -m gateway.configdoc``.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from gateway.config_report import chemistry_defaults
from gateway.core.chemistry import get_chemistry
from gateway.settings import DEPRECATED, ENV_PREFIX, RETIRED, Settings

__all__ = ["UNSET", "example_toml", "reference_markdown"]

UNSET = "(unset)"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if value is None:
        return UNSET
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def _sections() -> Iterator[tuple[str, type[BaseModel], BaseModel]]:
    defaults = Settings()
    for name, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"settings section {name} is not a model")
        yield name, model, getattr(defaults, name)


def _type_name(info: FieldInfo) -> str:
    ann = info.annotation
    text = getattr(ann, "__name__", None) or str(ann)
    # SecretStr: a string the gateway never prints or logs.
    return text.replace("typing.", "").replace("pydantic.types.SecretStr", "secret str")


def _chemistry_values() -> dict[str, Any]:
    """``section.key`` -> the value in force under the defaults, for each key left unset whose
    value the chemistry decides (from the resolvers ``check-config --defaults`` reads)."""
    settings = Settings()
    out: dict[str, Any] = {}
    for line in chemistry_defaults(settings):
        key, _, value = line.partition(" = ")
        try:
            out[key] = float(value)
        except ValueError:  # a line that explains, not a key's value
            continue
    tables = settings.limits.tables(settings.pack)
    for table, knots, fractions in (
        (tables.charge_cell, "charge_cell_v", "charge_cell_fraction"),
        (tables.discharge_cell, "discharge_cell_v", "discharge_cell_fraction"),
        (tables.charge_temp, "charge_temp_c", "charge_temp_fraction"),
        (tables.discharge_temp, "discharge_temp_c", "discharge_temp_fraction"),
        (tables.charge_soc, "charge_soc_pct", "charge_soc_fraction"),
        (tables.discharge_soc, "discharge_soc_pct", "discharge_soc_fraction"),
        (tables.imbalance, "imbalance_spread_v", "imbalance_fraction"),
    ):
        out[f"limits.{knots}"], out[f"limits.{fractions}"] = list(table.xs), list(table.ys)
    out["soc.ocv_hysteresis_mv"] = get_chemistry(settings.pack.chemistry).hysteresis_mv
    return out


def _unset_example(key: str, info: FieldInfo, chemistry: dict[str, Any]) -> tuple[str, Any]:
    """For a key unset by default: the line that introduces its example, and the example.

    Raises:
        ValueError: the key has neither a chemistry value nor ``Field(examples=[...])``.
    """
    if key in chemistry:
        pack = Settings().pack
        shown = f"{pack.chemistry}, {pack.cells} cells, {pack.capacity_ah:g} Ah"
        return f"Unset: the chemistry's value (shown: {shown}):", chemistry[key]
    if not info.examples:
        raise ValueError(f"{key}: unset by default and no example: give Field(examples=[...])")
    return "Unset by default (what that means: above); for example:", info.examples[0]


def _example_lines(
    section: str, key: str, info: FieldInfo, default: Any, chemistry: dict[str, Any]
) -> list[str]:
    """The lines after a key's description: ``# key = value`` that loads when uncommented, or
    words where the key must not be set (deprecated) or needs another key set first."""
    full = f"{section}.{key}"
    replaced = {d.key: d.new for d in DEPRECATED}
    if full in replaced:
        new = " and ".join(f"timeouts.{k}" for k in replaced[full])
        text = f"(deprecated, so not offered: set {new} instead)"
        return [f"#   {line}" for line in textwrap.wrap(text, 92)]
    if full in dict(RETIRED):
        return ["#   (no longer used, not an example: leave it out)"]
    if default is not None:
        return [f"# {key} = {_toml_value(default)}"]
    intro, example = _unset_example(full, info, chemistry)
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    needs = extra.get("example_needs")
    if needs is not None:  # uncommented alone it would not load
        return [f"#   Unset by default; for example (with {needs}): {key} = {_toml_value(example)}"]
    return [f"#   {intro}", f"# {key} = {_toml_value(example)}"]


def example_toml() -> str:
    """Every setting with its description, commented out at its default (an example where it
    has none); uncommenting every ``# key = value`` line gives a file that loads without a
    warning. Deprecated keys are described, not given a line."""
    lines = [
        "# bms-gateway settings: every key, commented out at its default (or an example where it",
        "# has none). Uncomment what you change. Environment variables win over this file:",
        f"# {ENV_PREFIX}<SECTION>__<KEY>, e.g. {ENV_PREFIX}PACK__CELLS=16.",
        "# Generated by `python -m gateway.configdoc` from gateway/settings.py; do not edit.",
    ]
    chemistry = _chemistry_values()
    for name, model, value in _sections():
        lines += ["", f"[{name}]"]
        doc = (model.__doc__ or "").strip().splitlines()
        if doc:
            lines.append(f"# {doc[0]}")
        dumped = value.model_dump(mode="json")
        for key, info in model.model_fields.items():
            for dline in (info.description or "").strip().splitlines():
                lines.append(f"#   {dline.strip()}")
            lines += _example_lines(name, key, info, dumped[key], chemistry)
    return "\n".join(lines) + "\n"


def reference_markdown() -> str:
    """A Markdown table per section: key, type, default, environment variable, meaning."""
    out = [
        "# Configuration reference",
        "",
        "Generated by `python -m gateway.configdoc` from the settings model; do not edit.",
        f"Every key can be set in the TOML file (`--config`) or as `{ENV_PREFIX}SECTION__KEY`",
        f'(a list as JSON: `{ENV_PREFIX}BALANCING__PASSIVE_STATES=\'["rest", "top"]\'`).',
        "Unknown keys are errors.",
    ]
    for name, model, value in _sections():
        dumped = value.model_dump(mode="json")
        out += ["", f"## [{name}]", "", (model.__doc__ or "").strip().splitlines()[0], ""]
        out += ["| key | type | default | env | meaning |", "|---|---|---|---|---|"]
        for key, info in model.model_fields.items():
            desc = " ".join((info.description or "").split()).replace("|", "\\|")
            default = _toml_value(dumped[key]).replace("|", "\\|")
            env = f"{ENV_PREFIX}{name.upper()}__{key.upper()}"
            typ = _type_name(info).replace("|", "\\|")
            out.append(f"| `{key}` | {typ} | `{default}` | `{env}` | {desc} |")
    return "\n".join(out + _deprecated_markdown()) + "\n"


def _deprecated_markdown() -> list[str]:
    """The deprecated keys, what replaces each and how its consumer reads the new keys."""
    out = [
        "",
        "## Deprecated keys",
        "",
        "Accepted until the next release. Each one set gives a warning in the log at start (and "
        "from `bms-gateway check-config`) that names the file or environment variable and the "
        "keys that replace it. While none of those keys is set, the old key works as before (one "
        "age for both inputs of its consumer); once one is set, the new keys win and the old key "
        "is ignored, with a warning. The consumers read the `[timeouts]` keys by the rules "
        "below, which keep each one's effective values under defaults (the fail-safe times the "
        "current out after 2 s and a temperature after 10 s; the SoC estimator and balancing "
        "used one age, 5 s, for both of their inputs).",
        "",
        "| old key | replaced by | the consumer's rule |",
        "|---|---|---|",
    ]
    for dep in DEPRECATED:
        new = ", ".join(f"`timeouts.{k}`" for k in dep.new)
        out.append(f"| `{dep.key}` | {new} | {dep.rule} |")
    out += [
        "",
        "Keys no longer used: accepted until the next release (a file that sets one still "
        "loads), with a warning that names where it was set.",
        "",
        "| key | why |",
        "|---|---|",
    ]
    out += [f"| `{key}` | {why} |" for key, why in RETIRED]
    return out


TARGETS = {
    Path("systemd/config.example.toml"): example_toml,
    Path("docs/CONFIG.md"): reference_markdown,
}


def main() -> int:
    """Write the generated files below the current directory."""
    for path, render in TARGETS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
