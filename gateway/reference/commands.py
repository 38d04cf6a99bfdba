"""Every command and flag, from the argument parsers themselves: each console script of
`pyproject.toml` is run with no arguments, and each of its subcommands (a parser built with
`prog="<script> <subcommand>"` anywhere in the code) with its name, until it parses its
arguments; the parser is taken there, before anything runs."""

from __future__ import annotations

import argparse
import ast
import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.reference.source import ROOT, cell, modules, prose, pyproject, tree_of

HOW_TO_DESCRIBE = "give it help='...' in its add_argument call in {where}"


@dataclass(frozen=True, slots=True)
class Flag:
    """One argument of a command, as the reference shows it."""

    names: tuple[str, ...]
    value: str
    """What it takes: its metavar or choices; empty for a switch."""
    default: str
    required: bool
    help: str


@dataclass(frozen=True, slots=True)
class Command:
    """A console script or one of its subcommands."""

    prog: str
    description: str
    flags: tuple[Flag, ...]


class _Parsed(Exception):
    """Raised in place of parsing: carries the parser out of the command."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser


@contextmanager
def _stop_at_parse() -> Iterator[None]:
    """While active, a parser about to parse raises `_Parsed` with itself instead."""
    original = argparse.ArgumentParser.parse_args

    def capture(self: argparse.ArgumentParser, *_: Any, **__: Any) -> NoReturn:
        raise _Parsed(self)

    argparse.ArgumentParser.parse_args = capture  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.parse_args = original  # type: ignore[method-assign]


def scripts() -> dict[str, str]:
    """The console scripts (`[project.scripts]`): name → `module:function`."""
    return dict(pyproject()["project"]["scripts"])


def progs_in_code() -> dict[str, list[str]]:
    """Every `ArgumentParser(prog=...)` in the shipped code, with where."""
    found: dict[str, list[str]] = {}
    for _, path in modules():
        for node in ast.walk(tree_of(path)):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "ArgumentParser":
                for keyword in node.keywords:
                    if keyword.arg == "prog" and isinstance(keyword.value, ast.Constant):
                        where = str(path.relative_to(ROOT))
                        found.setdefault(str(keyword.value.value), []).append(where)
    return found


def parser_of(script: str, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser `script` builds for `argv` (no command runs)."""
    module, function = scripts()[script].split(":")
    main: Callable[[Sequence[str]], int] = getattr(importlib.import_module(module), function)
    with _stop_at_parse():
        try:
            main(list(argv))
        except _Parsed as parsed:
            return parsed.parser
    raise LookupError(f"{script} {' '.join(argv)} ran without parsing its arguments")


def commands() -> list[Command]:
    """Every script, then each of its subcommands in name order; the script with the most
    subcommands first."""
    progs = progs_in_code()
    found = []
    for script in sorted(scripts(), key=lambda s: (-sum(p.startswith(s) for p in progs), s)):
        found.append(_command(parser_of(script, [])))
        for prog in sorted(p for p in progs if p.startswith(f"{script} ")):
            found.append(_command(parser_of(script, prog.split()[1:])))
    return found


def _command(parser: argparse.ArgumentParser) -> Command:
    flags = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if action.choices:
            value = " or ".join(f"`{choice}`" for choice in action.choices)
        elif action.nargs == 0:
            value = ""
        else:
            value = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            value += " ..." if action.nargs in ("+", "*") or isinstance(action, _Append) else ""
        default = action.default
        unset = default is None or default is False or default in ([], argparse.SUPPRESS)
        shown = "" if unset else str(default)
        flags.append(
            Flag(
                tuple(action.option_strings) or (action.dest,),
                value,
                shown,
                bool(action.required),
                " ".join((action.help or "").split()),
            )
        )
    return Command(parser.prog, " ".join((parser.description or "").split()), tuple(flags))


_Append = argparse._AppendAction


def page() -> str:
    """The command-line page."""
    lines = [
        "# Command line",
        "",
        "Generated from the argument parsers when the site is built; `--help` on any "
        "command prints the same. Every command exits 0 on success and 2, with one line on "
        "stderr, on anything you can fix.",
    ]
    for command in commands():
        lines += ["", f"## `{command.prog}`", "", prose(command.description), ""]
        lines += ["| flag | takes | default | meaning |", "|---|---|---|---|"]
        for flag in command.flags:
            names = ", ".join(f"`{name}`" for name in flag.names)
            needed = " **(required)**" if flag.required else ""
            lines.append(
                f"| {names}{needed} | {cell(flag.value)} | {cell(flag.default)} "
                f"| {cell(flag.help)} |"
            )
    return "\n".join(lines) + "\n"
