"""The direction of dependencies (docs/ARCHITECTURE.md), checked on the source.

The core is pure and clock-injected: it imports no adapter or I/O library and no clock. Above it,
``cli -> app -> control -> core`` and adapters -> core only; nothing lower imports anything higher.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"

# What the core may never import: adapter libraries, I/O, threads and the clock.
CORE_FORBIDDEN = {
    "aiohttp",
    "aiomqtt",
    "asyncio",
    "can",
    "cantools",
    "datetime",
    "isotp",
    "os",
    "prometheus_client",
    "pymodbus",
    "pysparkplug",
    "socket",
    "sqlite3",
    "subprocess",
    "sunspec2",
    "threading",
    "time",
    "tuf",
    "udsoncan",
}

# Modules of ours that sit above a layer: a layer must not import them.
ABOVE = {
    "core": ("gateway.",),  # anything of ours outside gateway.core
    "control": ("gateway.app", "gateway.cli", "gateway.demo"),
    "app": ("gateway.cli", "gateway.demo"),
}


def _modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def _imports(path: Path, package: str | None = None) -> list[str]:
    """Every module ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                names.append(f"{base}.{node.module}" if node.module else base)
            elif node.module:
                names.append(node.module)
    return names


CORE = _modules(PACKAGE / "core")


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_the_core_imports_no_adapter_library_and_no_clock(path: Path) -> None:
    bad = sorted(
        {n for n in _imports(path) if n.split(".")[0] in CORE_FORBIDDEN}
        | {
            n
            for n in _imports(path)
            if n.startswith("gateway.") and not n.startswith("gateway.core")
        }
    )
    assert not bad, f"gateway/core/{path.name} imports {bad}"


@pytest.mark.parametrize(
    ("layer", "path"),
    [("control", PACKAGE / "control.py"), ("app", PACKAGE / "app.py")],
    ids=["control", "app"],
)
def test_no_layer_imports_one_above_it(layer: str, path: Path) -> None:
    bad = [n for n in _imports(path) if n.startswith(ABOVE[layer])]
    assert not bad, f"gateway/{path.name} imports {bad}"


ADAPTERS = [p for p in PACKAGE.iterdir() if p.is_dir() and p.name not in {"core", "data", "sim"}]


@pytest.mark.parametrize("package", ADAPTERS, ids=lambda p: p.name)
def test_adapters_never_import_the_supervisor_or_the_control_step(package: Path) -> None:
    upward = (
        "gateway.app",
        "gateway.cli",
        "gateway.control",
        "gateway.demo",
        "gateway.replay",
        "gateway.supervisor",
    )
    for path in _modules(package):
        bad = [n for n in _imports(path) if n.startswith(upward)]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_check_sees_forbidden_imports(tmp_path: Path) -> None:
    """The parser finds what it must (a check that cannot fail proves nothing)."""
    probe = tmp_path / "probe.py"
    probe.write_text("import time\nfrom gateway.sunspec import maps\nfrom . import model\n")
    names = _imports(probe, package="gateway.core")
    assert names == ["time", "gateway.sunspec", "gateway.core"]
