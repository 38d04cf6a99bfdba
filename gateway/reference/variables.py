"""Every environment variable, harvested from the settings code: a settings field whose docstring
begins with a variable's name (`\"\"\"`ROUTELLM_X`: what it does.\"\"\"`) documents that variable,
its type is the field's and its default the value the real loader gives with nothing set;
`gateway.settings.descriptions.VARIABLES` holds those that fill no single field."""

from __future__ import annotations

import dataclasses
import importlib
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from gateway.reference.source import (
    cell,
    constants,
    documented_classes,
    prose,
    type_text,
    value_text,
)
from gateway.settings.descriptions import VARIABLES
from gateway.settings.load import load_settings

VARIABLE = r"ROUTELLM_[A-Z0-9_]+"
"""What the reference must cover: every string in the code that is wholly such a name."""
NAMED = re.compile(r"^`([A-Z][A-Z0-9_]*)`(?:\s*\(([^)]*)\))?:\s*(.*)$")
"""A field docstring that documents a variable: its name in backticks, an optional aside in
brackets, a colon, then what it does."""
HOW_TO_DESCRIBE = (
    "begin the docstring of the settings field it fills with its name, "
    '"""`{name}`: what it does.""" (see classifier/settings.py), or, when it fills no single '
    "field, add Described('{name}', type, default, meaning) to VARIABLES in "
    "gateway/settings/descriptions.py"
)


@dataclass(frozen=True, slots=True)
class Variable:
    """One documented variable, as the reference shows it."""

    name: str
    type: str
    default: str
    meaning: str
    group: str
    """The settings class that reads it (`module.Class`), or `""` for the descriptions table."""


def variables() -> list[Variable]:
    """Every documented variable: the settings fields' first, by class, then the table's."""
    found = list(_from_fields())
    found += [Variable(d.name, d.type, d.default, d.meaning, "") for d in VARIABLES]
    return found


def variables_in_code() -> dict[str, list[str]]:
    """Every `ROUTELLM_*` name in the shipped code, with where it occurs."""
    return constants(VARIABLE)


def _from_fields() -> Iterator[Variable]:
    classes = [
        (module_name, class_name, named)
        for module_name, class_name, docs in documented_classes()
        if (named := {f: match for f, doc in docs.items() if (match := NAMED.match(doc))})
    ]
    # The gateway's own first, then the classifier's; the larger sections first within each.
    classes.sort(key=lambda c: (not c[0].startswith("gateway."), -len(c[2]), c[0], c[1]))
    for module_name, class_name, named in classes:
        cls = getattr(importlib.import_module(module_name), class_name)
        hints = typing.get_type_hints(cls)
        defaults = _defaults(cls)
        for field, match in named.items():
            name, aside, text = match.groups()
            meaning = text[:1].upper() + text[1:] + (f" ({aside})" if aside else "")
            yield Variable(
                name,
                type_text(hints.get(field, Any)),
                value_text(defaults.get(field), size=name.endswith("_BYTES")),
                meaning,
                f"{module_name}.{class_name}",
            )


def _defaults(cls: type) -> dict[str, Any]:
    """What each field holds when nothing is set: from the real loader where the class has
    one (`from_env({})`, or inside `load_settings({})`), else the dataclass's own default."""
    instance = _loaded(cls)
    if instance is None and dataclasses.is_dataclass(cls):
        return {
            f.name: f.default if f.default is not dataclasses.MISSING else None
            for f in dataclasses.fields(cls)
        }
    return {name: getattr(instance, name, None) for name in typing.get_type_hints(cls)}


def _loaded(cls: type) -> object | None:
    from_env = getattr(cls, "from_env", None)
    if callable(from_env):
        return typing.cast(object, from_env({}))
    pending: list[object] = [load_settings({})]
    while pending:
        value = pending.pop()
        if type(value) is cls:
            return value
        if dataclasses.is_dataclass(value):
            pending += [getattr(value, f.name) for f in dataclasses.fields(value)]
    return None


def page() -> str:
    """The environment variables page."""
    lines = [
        "# Environment variables",
        "",
        "Generated from the settings code when the site is built: a variable's type and "
        "default are the loader's own, its meaning the docstring of the field it fills. All "
        "are optional; the variables override the [config file](configuration.md), and an "
        "invalid value stops the process at start-up with one line naming the variable and "
        "the fix.",
    ]
    group = None
    for variable in variables():
        if variable.group != group:
            group = variable.group
            lines += ["", *_heading(group), "", "| variable | type | default | meaning |"]
            lines.append("|---|---|---|---|")
        lines.append(
            f"| `{variable.name}` | {cell(variable.type)} | {cell(variable.default)} "
            f"| {cell(variable.meaning)} |"
        )
    return "\n".join(lines) + "\n"


def _heading(group: str) -> list[str]:
    if not group:
        return [
            "## Read directly",
            "",
            "Variables that fill no single settings field (`gateway/settings/descriptions.py`).",
        ]
    module_name, class_name = group.rsplit(".", 1)
    doc = importlib.import_module(module_name).__dict__[class_name].__doc__ or ""
    first = " ".join(doc.split()).split(". ")[0].rstrip(".")
    return [f"## `{class_name}`", "", f"{prose(first)}. Read by `{module_name}`."]
