"""The size rule (STYLE.md, issue 17): one concept per module, functions short enough to read.

No module in ``gateway/`` over ``MAX_MODULE_LINES`` lines and no function or method over
``MAX_FUNCTION_LINES`` (from its ``def`` to its last line, docstring included), checked on the
source. The allow-lists below name the exceptions, each with its reason; an entry that fits
the rule again fails the test, so the lists only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway"

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80

# Path (from the repository root) -> why it may be longer.
LONG_MODULES: dict[str, str] = {}

# (path, qualified function name) -> why it may be longer.
LONG_FUNCTIONS: dict[tuple[str, str], str] = {}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _functions(path: Path) -> list[tuple[str, int]]:
    """``(qualified name, lines)`` of every function and method in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno if child.end_lineno is not None else child.lineno
                found.append((name, end - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def test_modules_are_at_most_400_lines() -> None:
    too_long = {
        _rel(p): n
        for p in _modules()
        if (n := _line_count(p)) > MAX_MODULE_LINES and _rel(p) not in LONG_MODULES
    }
    assert too_long == {}, f"split these along their concepts (lines): {too_long}"


def test_functions_are_at_most_80_lines() -> None:
    too_long = {
        f"{_rel(p)}:{name}": n
        for p in _modules()
        for name, n in _functions(p)
        if n > MAX_FUNCTION_LINES and (_rel(p), name) not in LONG_FUNCTIONS
    }
    assert too_long == {}, f"split these into named steps (lines): {too_long}"


def test_the_allow_lists_name_only_what_still_breaks_the_rule() -> None:
    fits = [path for path in LONG_MODULES if _line_count(ROOT / path) <= MAX_MODULE_LINES]
    lengths = {
        (path, name): n
        for path in {p for p, _ in LONG_FUNCTIONS}
        for name, n in _functions(ROOT / path)
    }
    fits += [
        f"{path}:{name}"
        for (path, name) in LONG_FUNCTIONS
        if lengths.get((path, name), 0) <= MAX_FUNCTION_LINES
    ]
    assert fits == [], f"these fit the rule now: take them off the allow-list: {fits}"


def test_the_rule_sees_a_long_function_and_a_long_module(tmp_path: Path) -> None:
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    src = tmp_path / "long.py"
    src.write_text(f"class A:\n    def f(self):\n{body}\n", encoding="utf-8")
    assert _functions(src) == [("A.f", MAX_FUNCTION_LINES + 1)]
    assert _line_count(src) == MAX_FUNCTION_LINES + 2
