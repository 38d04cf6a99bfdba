"""Examples that cannot rot: every YAML example in docs/ and the README loads with the project's
own settings loader, and every shell example names `make` targets, subcommands and flags that
exist. The checks are shown to catch a broken example too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.examples import SHELLS, Block, all_blocks, shell_problems, yaml_problem

YAML = all_blocks(frozenset({"yaml", "yml"}))
SHELL = all_blocks(SHELLS)


def test_the_docs_have_examples_of_both_kinds() -> None:
    assert len(YAML) >= 5
    assert len(SHELL) >= 15


@pytest.mark.parametrize("block", YAML, ids=[b.where for b in YAML])
def test_every_yaml_example_loads(block: Block, tmp_path: Path) -> None:
    problem = yaml_problem(block.text, tmp_path)
    assert problem is None, f"{block.where}: the example does not load: {problem}"


@pytest.mark.parametrize("block", SHELL, ids=[b.where for b in SHELL])
def test_every_shell_example_names_real_targets_and_flags(block: Block) -> None:
    problems = shell_problems(block.text)
    assert problems == [], f"{block.where}: {'; '.join(problems)}"


def test_a_broken_yaml_example_is_caught(tmp_path: Path) -> None:
    broken = "routing:\n  strong: gpt-4o\n  weak: gpt-4o-mini\n  threshold: 1.5\n"
    assert "between 0 and 1" in str(yaml_problem(broken, tmp_path))
    unknown = "upstreams: {}\nrouting: {threshold: 0.5}\nrouter: {}\n"
    assert "unknown key 'router'" in str(yaml_problem(unknown, tmp_path))


def test_a_missing_target_subcommand_or_flag_is_caught() -> None:
    text = (
        "make serve && make no-such-target\n"
        "routellm-gateway calibrate --prompts p.jsonl --no-such-flag 1\n"
        ".venv/bin/routellm-gateway trian --data x\n"
        "routellm-classifier --port 8800 \\\n    --modle x  # a typo on a continued line\n"
    )
    problems = shell_problems(text)
    assert len(problems) == 4, problems
    assert problems[0] == "make no-such-target: no such target"
    assert problems[1] == "routellm-gateway calibrate --no-such-flag: no such flag"
    assert problems[2].startswith("routellm-gateway trian: no such subcommand (known: calibrate")
    assert problems[3] == "routellm-classifier --modle: no such flag"
