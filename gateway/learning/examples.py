"""Labelled prompts for `train` and `evaluate`, read from the shapes they are published in.

    examples = read_all([Path("mmlu_anatomy.csv")], strong="gpt-4-1106-preview",
                        weak="mistralai/Mixtral-8x7B-Instruct-v0.1", exclude=contaminated)

Each example is a prompt with the quality of the strong and of the weak model's answer; its label
is the router's: LABEL_0 the strong model's answer is better, LABEL_1 a tie, LABEL_2 the weak
model's is better. The shapes, by file:

- `.csv` with a `prompt` column and one column per model (RouteLLM's `mmlu_<domain>.csv`,
  `gsm8k_responses.csv`): each model's correctness, `True`/`False` or a number. An MMLU file's
  domain (from its name) is the key `domain`;
- `.csv` or `.jsonl` Arena battles: `prompt`, `model_a`, `model_b`, and `winner_model_a` /
  `winner_model_b` / `winner_tie` (1 on the outcome); battles between other models are skipped;
- MT-Bench's `judgements.jsonl` (GPT-4's 1-10 score per model and turn) with its `question.jsonl`
  (`questions=`): one example per question and turn, keys `category` and `question_id`;
- `evaluate`'s JSONL: `{"prompt": ..., "quality": {"<strong>": 1, "<weak>": 0}}`, or the models'
  scores as top-level keys, or chat `messages` instead of `prompt`;
- the ledger's export (`GET /v1/decisions?format=jsonl`): a shadow `verdict` gives both
  qualities (`strong`: 1/0, `tie`: 1/1, `weak`: 0/1); without one, a user's `feedback` on a weak
  model's answer does (good: a tie, bad: the strong model wins). The recorded P(LABEL_0) is kept,
  and the text when the ledger kept prompts. Rows with neither are skipped and counted.

Every other column of a row that holds a string is a key `split` can hold out by (`--split-by`).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from classifier.settings import SettingsError
from gateway.routing.decider import STRONG_LABEL
from gateway.routing.human_text import text_of

__all__ = ["Example", "Read", "label_of", "read_all", "read_excluded", "read_prompts"]

Label = Literal[0, 1, 2]
VERDICT_QUALITY = {"strong": (1.0, 0.0), "tie": (1.0, 1.0), "weak": (0.0, 1.0)}
ARENA_WINNERS = ("winner_model_a", "winner_model_b", "winner_tie")
MMLU_FILE = re.compile(r"^mmlu_(.+)\.csv$")
csv.field_size_limit(64 * 1024 * 1024)  # GSM8K's answer columns hold whole solutions


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled prompt: its text (None: a ledger row without its prompt) or its recorded
    P(LABEL_0), the quality of the strong and the weak model's answers, and its keys."""

    text: str | None
    win_rate: float | None
    strong: float
    weak: float
    keys: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> Label:
        return label_of(self.strong, self.weak)


def label_of(strong: float, weak: float) -> Label:
    """LABEL_0 when the strong model's answer is better, LABEL_1 a tie, LABEL_2 the weak's."""
    if strong > weak:
        return 0
    return 1 if strong == weak else 2


@dataclass(frozen=True, slots=True)
class Read:
    """What `read_all` found: the examples, and the rows it left out, by reason."""

    examples: list[Example]
    skipped: int = 0
    """Rows without a quality for both models (unjudged ledger rows, other models' battles)."""
    excluded: int = 0
    """Rows whose prompt is listed in an `exclude` file (contaminated prompts)."""
    files: tuple[tuple[str, int], ...] = ()
    """Each file read and how many examples it gave."""


def exclude_argument(parser: argparse.ArgumentParser) -> None:
    """`--exclude FILE...`, read by `read_excluded` (train, evaluate and their many-model twins)."""
    parser.add_argument(
        "--exclude",
        type=Path,
        nargs="*",
        default=[],
        metavar="FILE",
        help="prompts to drop, e.g. RouteLLM's contaminated_prompts.jsonl",
    )


def read_excluded(paths: Iterable[Path]) -> frozenset[str]:
    """Prompts to leave out: RouteLLM's `contaminated_prompts.jsonl` (`eval_prompt`), or any
    JSONL with `prompt`, or plain text one prompt per line."""
    prompts: set[str] = set()
    for path in paths:
        for where, line in numbered_lines(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = line
            if isinstance(row, dict):
                row = row.get("eval_prompt", row.get("prompt"))
            if not isinstance(row, str):
                raise SettingsError(f"{where}: an excluded prompt must be `eval_prompt` text")
            prompts.add(row.strip())
    return frozenset(prompts)


def read_all(
    paths: Sequence[Path],
    strong: str,
    weak: str,
    *,
    questions: Path | None = None,
    exclude: frozenset[str] = frozenset(),
) -> Read:
    """Every example of `paths`; `SettingsError` naming the file and line of a bad row."""
    examples: list[Example] = []
    skipped = excluded = 0
    files = []
    for path in paths:
        found = 0
        for example in _read(path, strong, weak, questions):
            if example is None:
                skipped += 1
            elif example.text is not None and example.text.strip() in exclude:
                excluded += 1
            else:
                examples.append(example)
                found += 1
        files.append((str(path), found))
    if not examples:
        raise SettingsError(
            f"{', '.join(str(p) for p in paths)}: no examples with a quality for both "
            f"{strong!r} and {weak!r} (name the data's models with --strong and --weak)"
        )
    return Read(examples, skipped, excluded, tuple(files))


def _read(path: Path, strong: str, weak: str, questions: Path | None) -> Iterator[Example | None]:
    if path.suffix.lower() == ".csv":
        yield from _csv(path, strong, weak)
        return
    rows = [(where, json_object(line, where)) for where, line in numbered_lines(path)]
    if rows and "question_id" in rows[0][1] and "score" in rows[0][1]:
        yield from _mt_bench(rows, strong, weak, questions, path)
        return
    for where, row in rows:
        yield _row(row, strong, weak, where, {})


def numbered_lines(path: Path) -> Iterator[tuple[str, str]]:
    """Each non-blank line of `path` with where it is (`path:number`), for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read {path} ({exc.strerror})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield f"{path}:{number}", line


def json_object(line: str, where: str) -> dict[str, Any]:
    """`line` parsed as a JSON object; `SettingsError` naming `where` otherwise."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        raise SettingsError(f"{where}: not a JSON object") from None
    if not isinstance(row, dict):
        raise SettingsError(f"{where}: not a JSON object")
    return row


def csv_rows(path: Path) -> Iterator[tuple[str, dict[str, Any], dict[str, str]]]:
    """Each row of a CSV with where it is (`path:line`) and the keys its file name gives (an
    MMLU file's `domain`)."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise SettingsError(f"cannot read {path} ({exc.strerror})") from None
    domain = MMLU_FILE.match(path.name)
    extra = {"domain": domain.group(1)} if domain else {}
    for number, row in enumerate(rows, 2):
        yield f"{path}:{number}", row, extra


def _csv(path: Path, strong: str, weak: str) -> Iterator[Example | None]:
    for where, row, extra in csv_rows(path):
        yield _row(row, strong, weak, where, extra)


def _row(
    row: Mapping[str, Any], strong: str, weak: str, where: str, extra: Mapping[str, str]
) -> Example | None:
    keys = {**_keys(row, (strong, weak)), **extra}
    if "model_a" in row and "model_b" in row:
        return _battle(row, strong, weak, where, keys)
    if "verdict" in row or "feedback" in row:
        return _ledger(row, strong, weak, where, keys)
    quality = row.get("quality", row)
    if not isinstance(quality, Mapping):
        raise SettingsError(f"{where}: `quality` must map model names to scores")
    return Example(
        prompt_text(row, where),
        None,
        _score(quality, strong, where),
        _score(quality, weak, where),
        keys,
    )


def _keys(row: Mapping[str, Any], models: Sequence[str]) -> dict[str, str]:
    """A row's string columns, less its text and the models' own: what `--split-by` can name."""
    skip = {"prompt", *models, *(f"{m}_response" for m in models)}
    return {k: v for k, v in row.items() if isinstance(v, str) and k not in skip and len(v) < 200}


def prompt_text(row: Mapping[str, Any], where: str) -> str:
    """A row's prompt: its `prompt` string, or the user's words in its chat `messages`."""
    if isinstance(row.get("prompt"), str):
        text: str = row["prompt"].strip()
    elif isinstance(row.get("messages"), list):
        text = text_of(row["messages"])
    else:
        raise SettingsError(f"{where}: needs a `prompt` string or chat `messages`")
    if not text:
        raise SettingsError(f"{where}: the prompt is empty")
    return text


def _score(quality: Mapping[str, Any], model: str, where: str) -> float:
    value = quality.get(model)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    raise SettingsError(
        f"{where}: no quality for {model!r}: give a number or a boolean for it (or name the "
        "data's model keys with --strong/--weak)"
    )


def _battle(
    row: Mapping[str, Any], strong: str, weak: str, where: str, keys: Mapping[str, str]
) -> Example | None:
    models = (row["model_a"], row["model_b"])
    if set(models) != {strong, weak}:
        return None
    won = [zero_one(row.get(name), where, name) for name in ARENA_WINNERS]
    if sum(won) != 1:
        raise SettingsError(f"{where}: exactly one of {', '.join(ARENA_WINNERS)} must be 1")
    a, b = (1.0, 0.0) if won[0] else (0.0, 1.0) if won[1] else (1.0, 1.0)
    strong_q, weak_q = (a, b) if models[0] == strong else (b, a)
    return Example(prompt_text(row, where), None, strong_q, weak_q, keys)


def zero_one(value: Any, where: str, name: str) -> bool:
    """A 0/1 (or True/False) cell as a bool; `SettingsError` naming the column otherwise."""
    if isinstance(value, str) and value.strip() in ("0", "1", "0.0", "1.0", "True", "False"):
        return value.strip() in ("1", "1.0", "True")
    if isinstance(value, bool | int | float) and value in (0, 1):
        return bool(value)
    raise SettingsError(f"{where}: {name} must be 0 or 1")


def _ledger(
    row: Mapping[str, Any], strong: str, weak: str, where: str, keys: Mapping[str, str]
) -> Example | None:
    scores = row.get("scores")
    win_rate = scores.get(STRONG_LABEL) if isinstance(scores, Mapping) else None
    text = row.get("prompt") if isinstance(row.get("prompt"), str) else None
    judged = row.get("verdict")
    verdict = judged.get("verdict") if isinstance(judged, Mapping) else None
    qualities: tuple[float, float] | None
    if verdict is not None:
        if verdict not in VERDICT_QUALITY:
            raise SettingsError(f"{where}: verdict {verdict!r} is not strong, tie or weak")
        qualities = VERDICT_QUALITY[verdict]
    else:
        qualities = _from_feedback(row.get("feedback"), row.get("model"), weak)
    if qualities is None or (text is None and not isinstance(win_rate, int | float)):
        return None  # never judged, or nothing to classify and no recorded score
    rate = float(win_rate) if isinstance(win_rate, int | float) else None
    return Example(text, rate, *qualities, {**keys, "model": str(row.get("model"))})


def _from_feedback(scored: Any, model: Any, weak: str) -> tuple[float, float] | None:
    """A user's score on a weak model's answer: good (≥ 0 on the ledger's -1..1 scale) is a tie,
    bad means the strong model would have won. On a strong model's answer it compares nothing."""
    if not isinstance(scored, Mapping) or model != weak:
        return None
    return (1.0, 1.0) if float(scored["score"]) >= 0 else (1.0, 0.0)


def _mt_bench(
    rows: Sequence[tuple[str, dict[str, Any]]],
    strong: str,
    weak: str,
    questions: Path | None,
    path: Path,
) -> Iterator[Example | None]:
    if questions is None:
        questions = path.with_name("question.jsonl")
        if not questions.exists():
            raise SettingsError(f"{path}: MT-Bench judgements need --questions question.jsonl")
    asked = {}
    for where, line in numbered_lines(questions):
        question = json_object(line, where)
        asked[question["question_id"]] = question
    scores: dict[tuple[Any, int], dict[str, float]] = {}
    for where, row in rows:
        if row.get("score", -1) < 0:
            continue  # the judge gave no score
        turn = int(row.get("turn", 1))
        scores.setdefault((row["question_id"], turn), {})[row["model"]] = float(row["score"])
        if row["question_id"] not in asked:
            raise SettingsError(f"{where}: question {row['question_id']} is not in {questions}")
    for (qid, turn), by_model in sorted(scores.items(), key=lambda item: str(item[0])):
        if strong not in by_model or weak not in by_model:
            yield None
            continue
        question = asked[qid]
        keys = {"category": str(question.get("category", "")), "question_id": str(qid)}
        text = question["turns"][turn - 1].strip()
        yield Example(text, None, by_model[strong], by_model[weak], keys)


def read_prompts(path: Path) -> list[str]:
    """Unlabelled prompts: JSONL of `{"prompt": ...}` or chat `{"messages": [...]}` (a ledger
    export that kept prompts, too), a CSV's `prompt` column, or plain text one per line."""
    if path.suffix.lower() == ".csv":
        prompts = list(_csv_prompts(path))
        if not prompts:
            raise SettingsError(f"{path}: no prompts found")
        return prompts
    prompts = []
    for where, line in numbered_lines(path):
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            item = line
        if isinstance(item, dict) and isinstance(item.get("prompt"), str):
            text = item["prompt"].strip()
        elif isinstance(item, dict) and isinstance(item.get("messages"), list):
            text = text_of(item["messages"])
        elif isinstance(item, str):
            text = item.strip()
        else:
            raise SettingsError(
                f"{where}: expected a prompt, {{'prompt': ...}} or {{'messages': [...]}}"
            )
        if text:
            prompts.append(text)
    if not prompts:
        raise SettingsError(f"{path}: no prompts found")
    return prompts


def _csv_prompts(path: Path) -> Iterator[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle), 2):
                yield prompt_text(row, f"{path}:{number}")
    except OSError as exc:
        raise SettingsError(f"cannot read {path} ({exc.strerror})") from None
