"""Reading the project's source for the reference: which packages it ships, the string constants
of a shape found in them, the docstrings of dataclass fields, and how to print a field's type and
default value for a reader."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import itertools
import re
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


@cache
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def code_packages() -> list[str]:
    """The top-level packages the project ships (`[tool.setuptools.packages.find] include`), so
    a package added there is read too."""
    include = pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]
    names = {str(pattern).rstrip("*").rstrip(".") for pattern in include}
    return sorted(name for name in names if (ROOT / name / "__init__.py").exists())


def modules() -> Iterator[tuple[str, Path]]:
    """Every module of the shipped packages: its dotted name and its file."""
    for package in code_packages():
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


@cache
def tree_of(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def constants(pattern: str) -> dict[str, list[str]]:
    """String constants that are wholly `pattern` (not inside an f-string or a longer text),
    each with the `file:line` places they occur: the names the code reads."""
    shape = re.compile(pattern)
    found: dict[str, list[str]] = {}
    for _, path in modules():
        tree = tree_of(path)
        quoted = in_fstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in quoted
                and shape.fullmatch(node.value)
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(node.value, []).append(where)
    return found


def in_fstrings(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside f-strings: text shown to a user, never a name the code reads."""
    return {
        id(value)
        for node in ast.walk(tree)
        if isinstance(node, ast.JoinedStr)
        for value in ast.walk(node)
    }


def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a class (`x: int = 0` then `\"\"\"...\"\"\"`)."""
    path = Path(inspect.getfile(cls))
    for node in ast.walk(tree_of(path)):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            return _docs_in(node.body)
    return {}


def _docs_in(body: list[ast.stmt]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for statement, following in itertools.pairwise(body):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[statement.target.id] = " ".join(following.value.value.split())
    return docs


def documented_classes() -> Iterator[tuple[str, str, dict[str, str]]]:
    """Every class of the shipped packages whose fields carry docstrings: its module, its name
    and those docstrings, without importing anything."""
    for module, path in modules():
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.ClassDef) and (docs := _docs_in(node.body)):
                yield module, node.name, docs


def type_text(hint: Any) -> str:
    """A field's type for a reader: `integer`, `number`, `one of a, b`, `list of strings`."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Literal:
        return " or ".join(f"`{arg}`" for arg in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_text(arg) for arg in args if arg is not type(None))
    if origin is tuple:
        item = type_text(args[0]) if args else "value"
        return f"list of {item}s" if item in {"string", "number", "integer"} else "list"
    if origin is not None and isinstance(origin, type) and issubclass(origin, Mapping):
        return "mapping"
    simple = {int: "integer", float: "number", str: "string", bool: "boolean"}
    if isinstance(hint, type):
        return simple.get(hint, hint.__name__)
    return str(hint)


def value_text(value: Any, *, size: bool = False) -> str:
    """A default value for a reader: `unset` for none, lists comma-joined, and with `size` (a
    number of bytes) in KiB or MiB too."""
    if value is None or value in ("", ()):
        return "unset"
    if isinstance(value, bool):
        return "on" if value else "off"
    if size and isinstance(value, int) and value >= 1024 and value % 1024 == 0:
        unit = "MiB" if value % (1024 * 1024) == 0 else "KiB"
        amount = value // (1024 * 1024) if unit == "MiB" else value // 1024
        return f"{value} ({amount} {unit})"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(str(item) for item in value)
    if dataclasses.is_dataclass(value) or isinstance(value, Mapping):
        return "see meaning"
    return str(value)


def prose(text: str) -> str:
    """Text from the code as Markdown shows it: outside `code spans`, a `<t>` or a `*` is the
    character itself, not an HTML tag or emphasis."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")
    return "`".join(parts)


def cell(text: str) -> str:
    """Text from the code, safe inside a Markdown table cell."""
    return prose(text).replace("|", "\\|")
