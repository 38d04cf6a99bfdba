"""The layout holds: no import cycles among the project's modules, no import from a lower floor
of `gateway/` into a higher one, a folder one can read, and modules one can read."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "classifier", "routers")
FLOORS = (
    ("gateway.errors", "gateway.settings"),
    ("gateway.ledger",),
    ("gateway.routing",),
    ("gateway.apis",),
    ("gateway.upstream",),
    ("gateway.observe",),
    ("gateway.quality",),
    ("gateway.learning",),
    ("gateway.drain",),
    ("gateway.exchange", "gateway.flow"),
    ("gateway.http",),
    ("gateway.app",),
    ("gateway.cli", "gateway.__main__"),
    ("gateway.reference",),
)
"""`gateway`'s floors, lowest first: a module imports only from its own floor or lower ones."""
MAX_TOP_LEVEL = 10
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def imports_of(path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The project modules `path` imports, at any depth of its code (a function's own imports
    included: they still make a cycle, only a later one)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            if name in modules:
                yield name
                break


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: set(imports_of(path, modules)) - {name} for name, path in modules.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def floor_of(module: str) -> int | None:
    for level, prefixes in enumerate(FLOORS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return level
    return None


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_gateway_module_has_a_floor() -> None:
    unplaced = [m for m in graph() if m.startswith("gateway.") and floor_of(m) is None]
    assert unplaced == []


def test_no_import_from_a_lower_floor_into_a_higher_one() -> None:
    upward = [
        f"{module} -> {target}"
        for module, targets in graph().items()
        for target in targets
        if (here := floor_of(module)) is not None
        and (there := floor_of(target)) is not None
        and there > here
    ]
    assert upward == []


def test_the_gateway_folder_holds_few_modules() -> None:
    top = sorted(p.name for p in (ROOT / "gateway").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_is_too_long(package: str) -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def test_every_package_says_what_it_holds() -> None:
    bare = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "gateway").rglob("__init__.py")
        if not ast.get_docstring(ast.parse(p.read_text(encoding="utf-8")))
    ]
    assert bare == []
