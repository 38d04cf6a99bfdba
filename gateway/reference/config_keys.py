"""Every key of the config file, from `gateway.settings.descriptions.CONFIG_KEYS` (a key tied to
a settings field takes its type, default and meaning from that field), and the key names the
settings parsers read, found in their source, to check the table against."""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from dataclasses import dataclass

from gateway.reference.source import (
    ROOT,
    cell,
    field_docstrings,
    in_fstrings,
    modules,
    tree_of,
    type_text,
    value_text,
)
from gateway.settings.descriptions import CONFIG_KEYS, Described

KEY = "[a-z][a-z0-9_]*"
READERS = {"get": 0, "number": 0, "optional_model": 1, "config_section": 1}
"""Calls that read a config key, and which argument names it: `section.get("threshold")`,
`number("queue", ...)`, `optional_model(section, "strong", ...)`."""
HOW_TO_DESCRIBE = (
    "add Described('<its.dotted.path>', type, default, meaning) to CONFIG_KEYS in "
    "gateway/settings/descriptions.py (`<name>` for a name of the user's choosing, e.g. "
    "'routers.<name>.{name}')"
)


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One key of the config file, as the reference shows it."""

    path: str
    type: str
    default: str
    meaning: str

    @property
    def name(self) -> str:
        """The key itself, the last part of its path."""
        return self.path.rsplit(".", 1)[-1].removesuffix("[]")


def config_keys() -> list[ConfigKey]:
    return [_filled(described) for described in CONFIG_KEYS]


def _filled(described: Described) -> ConfigKey:
    kind, default, meaning = described.type, described.default, described.meaning
    if described.field is not None:
        cls, name = described.field
        field = {f.name: f for f in dataclasses.fields(cls)}[name]
        kind = kind or type_text(typing.get_type_hints(cls)[name])
        default = default or value_text(
            None if field.default is dataclasses.MISSING else field.default
        )
        meaning = meaning or field_docstrings(cls).get(name, "")
    return ConfigKey(described.name, kind, default, meaning)


def keys_in_code() -> dict[str, list[str]]:
    """The key names the settings parsers read (modules named `settings`, or inside a
    `settings` package), with where: string arguments of the readers in `READERS`, subscripts
    (`spec["model"]`), `"key" in section`, and the allowed-key sets (`{"input", "output"}`,
    `ROUTER_KEYS`). Text inside f-strings is never a key."""
    found: dict[str, list[str]] = {}
    pattern = re.compile(KEY)
    for name, path in modules():
        if "settings" not in name.split(".")[-1] and ".settings." not in f"{name}.":
            continue
        tree = tree_of(path)
        quoted = in_fstrings(tree)
        for node in _key_nodes(tree):
            if (
                id(node) not in quoted
                and isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and pattern.fullmatch(node.value)
            ):
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                found.setdefault(node.value, []).append(where)
    return found


def _key_nodes(tree: ast.Module) -> typing.Iterator[ast.expr]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in READERS and len(node.args) > READERS[called]:
                yield node.args[READERS[called]]
        elif isinstance(node, ast.Subscript):
            yield node.slice
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            yield node.left
        elif isinstance(node, ast.Set):
            yield from node.elts


def page() -> str:
    """The configuration file page."""
    lines = [
        "# Configuration file",
        "",
        "Generated from the settings code when the site is built "
        "(`gateway/settings/descriptions.py`). The file is YAML, given with `--config` or "
        "`ROUTELLM_CONFIG`; the [environment variables](environment.md) override it. "
        "`<name>` is a name of your choosing; `[]` is each item of a list; `${VAR}` in an "
        "upstream's `base_url` or `api_key` is replaced by the variable's value. Anything "
        "invalid stops the process at start-up with one line naming the key and the fix. "
        "[Configuration](../configuration.md) shows whole files.",
    ]
    section = None
    for key in config_keys():
        top = key.path.split(".", 1)[0]
        if top != section:
            section = top
            lines += ["", f"## `{top}:`", "", "| key | type | default | meaning |"]
            lines.append("|---|---|---|---|")
        lines.append(
            f"| `{key.path}` | {cell(key.type)} | {cell(key.default)} | {cell(key.meaning)} |"
        )
    return "\n".join(lines) + "\n"
