"""The core stays pure: what it imports, and no float, true division, clock or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[3] / "src" / "perpx" / "core"
# msgspec gives the immutable record types; sortedcontainers keeps the book's sorted prices;
# mypy_extensions gives `i64`, plain int at run time, a machine word when mypyc compiles.
ALLOWED_THIRD_PARTY = {"msgspec", "sortedcontainers", "mypy_extensions"}
FORBIDDEN_STDLIB = {"time", "datetime", "random", "secrets", "uuid", "os", "socket", "threading",
                    "asyncio", "logging", "subprocess", "io", "pathlib", "sqlite3"}
STDLIB = {"__future__", "collections", "dataclasses", "enum", "typing", "hashlib", "json", "re",
          "bisect", "functools", "itertools", "operator", "math", "abc", "heapq", "copy",
          "fractions"}

CORE_FILES = sorted(CORE.rglob("*.py"))


def imported_roots(tree: ast.AST) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
            if node.module.startswith("perpx.") and not node.module.startswith("perpx.core"):
                roots.add(node.module)
    return roots


@pytest.mark.parametrize("path", CORE_FILES, ids=[p.name for p in CORE_FILES])
def test_core_module_imports_only_the_stdlib_itself_and_its_allowed_libraries(
        path: Path) -> None:
    roots = imported_roots(ast.parse(path.read_text()))
    outside = {r for r in roots if r.startswith("perpx.")}
    assert not outside, f"{path.name} imports outside the core: {outside}"
    roots = {r for r in roots if "." not in r} - {"perpx"}
    assert not roots & FORBIDDEN_STDLIB, f"{path.name} imports {roots & FORBIDDEN_STDLIB}"
    assert roots <= STDLIB | ALLOWED_THIRD_PARTY, f"{path.name}: {roots - STDLIB}"


@pytest.mark.parametrize("path", CORE_FILES, ids=[p.name for p in CORE_FILES])
def test_core_module_uses_no_float_and_no_true_division(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        assert not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)), (
            f"{path.name}:{node.lineno} divides with '/'; use div_floor or div_ceil")
        assert not (isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Div)), (
            f"{path.name}:{node.lineno} divides with '/='")
        assert not (isinstance(node, ast.Constant) and isinstance(node.value, float)), (
            f"{path.name}:{node.lineno} has a float literal")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in {"float", "round"}, (
                f"{path.name}:{node.lineno} calls {node.func.id}()")
