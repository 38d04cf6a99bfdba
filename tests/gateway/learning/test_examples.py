"""The labelled prompts `train` and `evaluate` read, in each shape they are published in (small
generated files laid out as RouteLLM's are), with labels worked out by hand, and the split."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from classifier.settings import SettingsError
from gateway.learning.examples import Example, read_all, read_excluded, read_prompts
from gateway.learning.train import split

STRONG = "gpt-4-1106-preview"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def labels(examples: list[Example]) -> list[int]:
    return [e.label for e in examples]


def test_mmlu_and_gsm8k_csvs_give_the_router_labels(tmp_path: Path) -> None:
    # RouteLLM's MMLU layout: prompt, weak's correctness, strong's correctness.
    mmlu = write_csv(
        tmp_path / "mmlu_anatomy.csv",
        ["prompt", WEAK, STRONG],
        [["q1", "False", "True"], ["q2", "True", "True"], ["q3", "True", "False"]],
    )
    gsm8k = write_csv(
        tmp_path / "gsm8k_responses.csv",
        ["prompt", WEAK, STRONG, f"{WEAK}_response", f"{STRONG}_response"],
        [["sum 2+2", "False", "False", "5", "3"], ["sum 3+3", "False", "True", "5", "6"]],
    )
    read = read_all([mmlu, gsm8k], STRONG, WEAK)
    assert labels(read.examples) == [0, 1, 2, 1, 0]  # strong wins, tie, weak wins, tie, strong
    assert [e.keys.get("domain") for e in read.examples] == ["anatomy"] * 3 + [None, None]
    assert read.files == ((str(mmlu), 3), (str(gsm8k), 2))
    assert "mistralai/Mixtral-8x7B-Instruct-v0.1_response" not in read.examples[3].keys


def test_arena_battles_in_csv_and_jsonl(tmp_path: Path) -> None:
    header = ["prompt", "model_a", "model_b", "winner_model_a", "winner_model_b", "winner_tie"]
    battles = [
        ["a wins", STRONG, WEAK, 1, 0, 0],  # strong wins
        ["b wins", STRONG, WEAK, 0, 1, 0],  # weak wins
        ["swapped", WEAK, STRONG, 1, 0, 0],  # weak (model_a) wins
        ["tie", WEAK, STRONG, 0, 0, 1],
        ["others", "llama", WEAK, 1, 0, 0],  # not this pair: skipped
    ]
    as_csv = write_csv(tmp_path / "arena.csv", header, battles)
    as_jsonl = write_jsonl(
        tmp_path / "arena.jsonl", [dict(zip(header, b, strict=True)) for b in battles]
    )
    for path in (as_csv, as_jsonl):
        read = read_all([path], STRONG, WEAK)
        assert labels(read.examples) == [0, 2, 2, 1]
        assert read.skipped == 1
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [dict(zip(header, ["x", STRONG, WEAK, 1, 1, 0], strict=True))]
    )
    with pytest.raises(SettingsError, match=r"bad.jsonl:1: exactly one of winner_model_a"):
        read_all([bad], STRONG, WEAK)


def test_mt_bench_judgements_with_their_questions(tmp_path: Path) -> None:
    questions = write_jsonl(
        tmp_path / "question.jsonl",
        [
            {"question_id": 81, "category": "writing", "turns": ["Write a blog", "Shorter"]},
            {"question_id": 101, "category": "math", "turns": ["Solve x", "Now y"]},
        ],
    )
    judged = [
        (81, STRONG, 1, 9),
        (81, WEAK, 1, 7),  # strong wins turn 1
        (81, STRONG, 2, 6),
        (81, WEAK, 2, 6),  # tie on turn 2
        (101, STRONG, 1, 4),
        (101, WEAK, 1, 8),  # weak wins
        (101, STRONG, 2, 5),
        (101, WEAK, 2, -1),  # the judge gave no score: this turn has no label
    ]
    judgements = write_jsonl(
        tmp_path / "judgements.jsonl",
        [{"question_id": q, "model": m, "turn": t, "score": s} for q, m, t, s in judged],
    )
    read = read_all([judgements], STRONG, WEAK, questions=questions)
    texts = [(e.text, e.label, e.keys["category"]) for e in read.examples]
    assert texts == [
        ("Solve x", 2, "math"),
        ("Write a blog", 0, "writing"),
        ("Shorter", 1, "writing"),
    ]
    assert read.skipped == 1


def test_the_ledger_export_and_evaluate_jsonl(tmp_path: Path) -> None:
    def row(prompt: str | None, model: str, rate: float, **more: Any) -> dict[str, Any]:
        shape = {"model": model, "scores": {"LABEL_0": rate}, "verdict": None, **more}
        return shape if prompt is None else {"prompt": prompt, **shape}

    bad, good = ({"score": s, "raw_score": s, "scale": "signed"} for s in (-1.0, 1.0))
    export = write_jsonl(
        tmp_path / "decisions.jsonl",
        [
            row("p1", WEAK, 0.8, verdict={"verdict": "strong"}),
            row("p2", WEAK, 0.2, verdict={"verdict": "tie"}),
            row("p3", WEAK, 0.3, feedback=bad),
            row("p4", WEAK, 0.1, feedback=good),
            row("p5", STRONG, 0.9, feedback=good),  # on the strong answer: compares nothing
            row(None, WEAK, 0.4, feedback=None),  # never judged or scored
        ],
    )
    read = read_all([export], STRONG, WEAK)
    assert labels(read.examples) == [0, 1, 0, 1]  # bad feedback on the weak answer: strong wins
    assert [e.win_rate for e in read.examples] == [0.8, 0.2, 0.3, 0.1]
    assert read.skipped == 2

    own = write_jsonl(
        tmp_path / "eval.jsonl",
        [
            {"prompt": "a", "quality": {STRONG: 1, WEAK: 0.5}},
            {"messages": [{"role": "user", "content": "b"}], STRONG: True, WEAK: True},
        ],
    )
    assert read_all([own], STRONG, WEAK).examples == [
        Example("a", None, 1.0, 0.5, {}),
        Example("b", None, 1.0, 1.0, {}),
    ]


def test_contaminated_prompts_are_dropped(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "gsm8k.csv",
        ["prompt", STRONG, WEAK],
        [["seen in training", 1, 0], ["new", 1, 0]],
    )
    contaminated = write_jsonl(
        tmp_path / "contaminated_prompts.jsonl",
        [{"train_prompt": "seen in training!", "eval_prompt": "seen in training\n"}],
    )
    read = read_all([data], STRONG, WEAK, exclude=read_excluded([contaminated]))
    assert [e.text for e in read.examples] == ["new"]
    assert read.excluded == 1


def test_unlabelled_prompts_for_distil(tmp_path: Path) -> None:
    lines = tmp_path / "prompts.txt"
    lines.write_text("first\n\nsecond\n")
    as_csv = write_csv(tmp_path / "mmlu_x.csv", ["prompt", STRONG], [["third", "True"]])
    jsonl = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "fourth"}])
    assert [p for f in (lines, as_csv, jsonl) for p in read_prompts(f)] == [
        "first",
        "second",
        "third",
        "fourth",
    ]


def examples(n: int, groups: int) -> list[Example]:
    return [
        Example(f"p{i}", None, 1.0, float(i % 2), {"domain": f"d{i % groups}"}) for i in range(n)
    ]


def test_a_split_by_key_holds_out_whole_groups() -> None:
    data = examples(100, groups=10)
    held, kept = split(data, "domain", holdout=0.3, seed=0)
    held_groups = {e.keys["domain"] for e in held}
    assert held_groups.isdisjoint({e.keys["domain"] for e in kept})
    assert len(held) == 30  # three groups of ten
    assert split(data, "domain", 0.3, seed=0) == (held, kept)  # the seed fixes it
    assert split(data, "domain", 0.3, seed=1) != (held, kept)

    random_held, random_kept = split(data, "random", holdout=0.2, seed=0)
    assert (len(random_held), len(random_kept)) == (20, 80)
    with pytest.raises(SettingsError, match=r"--split-by 'topic': 100 examples have no such key"):
        split(data, "topic", 0.2, seed=0)
