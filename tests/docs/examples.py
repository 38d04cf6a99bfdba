"""The examples of the documentation (every page under docs/, and the README): their fenced code
blocks, and the checks a YAML or shell example must pass."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from classifier.settings import SettingsError
from gateway.reference.commands import parser_of, progs_in_code, scripts
from gateway.settings.load import load_settings

ROOT = Path(__file__).resolve().parents[2]
SHELLS = frozenset({"sh", "bash", "shell", "console"})
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")
SEPARATORS = frozenset({"|", "||", "&&", ";", ">", ">>", "<", "&"})


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language and its text."""

    path: Path
    line: int
    lang: str
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> Iterator[Block]:
    """The fenced code blocks of a Markdown file, indented ones (inside lists) included."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][indent:])
            j += 1
        yield Block(path, i + 1, opening["lang"].lower(), "\n".join(body) + "\n")
        i = j + 1


def all_blocks(langs: frozenset[str]) -> list[Block]:
    return [block for path in pages() for block in blocks(path) if block.lang in langs]


def yaml_problem(text: str, tmp: Path) -> str | None:
    """Why a config example does not load with the project's own loader (`load_settings`), or
    None. Each `${VAR}` it names is given a placeholder value, as a user would export one."""
    path = tmp / "example.yaml"
    path.write_text(text, encoding="utf-8")
    env = {name: f"placeholder-{name.lower()}" for name in re.findall(r"\$\{(\w+)\}", text)}
    try:
        load_settings(env, str(path))
    except SettingsError as exc:
        return str(exc)
    return None


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def commands(text: str) -> Iterator[list[str]]:
    """The shell commands of a block: comments dropped, `\\` continuations joined, split at
    pipes and `&&`, as lists of words."""
    joined = re.sub(r"\\\n", " ", text)
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            words = line.split()
        current: list[str] = []
        for word in words:
            if word in SEPARATORS:
                if current:
                    yield current
                current = []
            else:
                current.append(word)
        if current:
            yield current


def shell_problems(text: str) -> list[str]:
    """Each `make` target and each `routellm-gateway` / `routellm-classifier` subcommand and flag
    the block names that does not exist."""
    targets = make_targets()
    problems = []
    for words in commands(text):
        for k, word in enumerate(words):
            name = word.rsplit("/", 1)[-1]
            if name == "make":
                args = [w for w in words[k + 1 :] if "=" not in w and not w.startswith("-")]
                problems += [f"make {t}: no such target" for t in args if t not in targets]
            elif name in scripts():
                problems += _flag_problems(name, words[k + 1 :])
    return problems


def _flag_problems(script: str, args: list[str]) -> list[str]:
    """The flags of `script args` its parser does not know. The parser is the subcommand's
    (the first word), or a variant of it named by a flag (`prog="routellm-gateway train
    --models"`) when the arguments name that flag too."""
    variants = [p.split()[1:] for p in progs_in_code() if p.startswith(f"{script} ")]
    subcommands = sorted({words[0] for words in variants})
    if args and not args[0].startswith("-") and args[0] not in subcommands:
        return [f"{script} {args[0]}: no such subcommand (known: {', '.join(subcommands)})"]
    matching = [w for w in variants if args[:1] == w[:1] and all(x in args for x in w[1:])]
    argv = max(matching, key=len, default=[])
    parser = parser_of(script, argv)
    known = {option for action in parser._actions for option in action.option_strings}
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--")]
    prog = " ".join([script, *argv[:1]])
    return [f"{prog} {flag}: no such flag" for flag in flags if flag not in known]
