"""Labelled prompts for many-model routers: a quality matrix, one row per prompt and one column
per model, 1/0 or a 0–1 score, NaN where that model's answer is unknown.

    matrix = read_matrix([Path("mmlu_pro_29.csv")], parse_models("gemini-1.5-pro-002,Yi-6b-Chat"))
    matrix.labels          # (prompts × models) float32, NaN = unknown

`--models` names the data's columns, in order: `A,B,C`; a column can be given a configured
model's name with `column=name` (`mistralai/Mixtral-8x7B-Instruct-v0.1=mixtral`), and the router
then knows the model by that name. The shapes, by file:

- `.csv` with a `prompt` column and one column per model (RouteLLM's `mmlu_<domain>.csv` and
  `gsm8k_responses.csv`, `mmlu_pro_29.csv`): `1`/`0`, `True`/`False` or a 0–1 score; an empty
  cell, or a model the file has no column for, is unknown. Every other short text column
  (`category`, an MMLU file's `domain`) is a key `--split-by` can name;
- MMLU-Pro's published result files, `model_outputs_<model>_5shots.zip` (TIGER-AI-Lab/MMLU-Pro,
  `eval_results/`), read as they are: one column per file, right when `pred == answer` (a
  missing `pred` is wrong), the prompt the question with its lettered options; keys `category`,
  `src`; files of models not named are skipped;
- Arena battles (`.csv` or `.jsonl`: `prompt`, `model_a`, `model_b`, `winner_model_a` /
  `winner_model_b` / `winner_tie`) as pairwise preferences: the winner's answer 1, the loser's
  0, a tie 1 for both; the other models unknown;
- the ledger's export (`GET /v1/decisions?format=jsonl`, with prompts kept): a shadow
  `verdict` gives the strong and the weak model's quality (`strong` 1/0, `tie` 1/1, `weak` 0/1),
  else a user's `feedback` gives the answering model's (good, ≥ 0: 1; bad: 0);
- `evaluate`'s JSONL: `{"prompt": ..., "quality": {"A": 1, "B": 0}}` or the scores as top-level
  keys, `messages` for `prompt` allowed.

Rows where none of the named models has a quality are skipped and counted.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from classifier.settings import SettingsError
from gateway.learning.examples import (
    ARENA_WINNERS,
    VERDICT_QUALITY,
    csv_rows,
    json_object,
    numbered_lines,
    prompt_text,
    zero_one,
)

__all__ = ["Matrix", "ModelColumns", "parse_models", "read_matrix"]

MMLU_PRO_FILE = re.compile(r"model_outputs_(.+)_5shots\.zip$")
LETTERS = "ABCDEFGHIJKLMNOP"


@dataclass(frozen=True, slots=True)
class ModelColumns:
    """`--models`: the data's column for each model, and the name the router gives it."""

    columns: tuple[str, ...]
    names: tuple[str, ...]


def parse_models(spec: str) -> ModelColumns:
    """`A,B,C` or `column=name,...` (mixed allowed); `SettingsError` with the fix."""
    columns: list[str] = []
    names: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        column, _, name = part.partition("=")
        column, name = column.strip(), (name.strip() or column.strip())
        if not column:
            raise SettingsError(f"--models {spec!r}: an empty name; write A,B,C or column=name")
        columns.append(column)
        names.append(name)
    for what, values in (("column", columns), ("name", names)):
        if len(set(values)) != len(values):
            raise SettingsError(f"--models {spec!r}: a {what} is named twice")
    if len(columns) < 2:
        raise SettingsError(f"--models {spec!r}: a router chooses among two or more models")
    return ModelColumns(tuple(columns), tuple(names))


@dataclass(frozen=True, slots=True)
class Matrix:
    """Prompts, the quality of each model's answer to each (NaN unknown), and their keys."""

    texts: list[str]
    models: tuple[str, ...]
    labels: np.ndarray
    keys: list[dict[str, str]]
    skipped: int = 0
    files: tuple[tuple[str, int], ...] = ()

    def subset(self, rows: Sequence[int]) -> Matrix:
        index = list(rows)
        return Matrix(
            [self.texts[i] for i in index],
            self.models,
            self.labels[index],
            [self.keys[i] for i in index],
            self.skipped,
            self.files,
        )

    def complete(self) -> Matrix:
        """The rows where every model's quality is known (what `evaluate` scores)."""
        return self.subset(np.flatnonzero(~np.isnan(self.labels).any(axis=1)).tolist())


Row = tuple[str, dict[str, float], dict[str, str]]
"""A prompt, the qualities a row gives (by column), and its keys."""


def read_matrix(
    paths: Sequence[Path], models: ModelColumns, *, exclude: frozenset[str] = frozenset()
) -> Matrix:
    """Every row of `paths` with a quality for at least one of `models`; `SettingsError`
    naming the file and line of a bad row, or a model no file has a quality for."""
    texts: list[str] = []
    rows: list[list[float]] = []
    keys: list[dict[str, str]] = []
    skipped = 0
    files = []
    wanted = set(models.columns)
    results: dict[str, int] = {}  # MMLU-Pro: one file per model, merged by the question
    for path in paths:
        found = 0
        merge = path.suffix.lower() == ".zip"
        for text, quality, row_keys in _read(path, models.columns):
            known = {m: q for m, q in quality.items() if m in wanted}
            if not known or text.strip() in exclude:
                skipped += 1
                continue
            if merge and text in results:
                for m, q in known.items():
                    rows[results[text]][models.columns.index(m)] = q
                found += 1
                continue
            if merge:
                results[text] = len(texts)
            texts.append(text)
            rows.append([known.get(m, math.nan) for m in models.columns])
            keys.append(row_keys)
            found += 1
        files.append((str(path), found))
    labels = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(models.columns))
    absent = [m for j, m in enumerate(models.columns) if np.isnan(labels[:, j]).all()]
    if absent:
        raise SettingsError(
            f"{', '.join(str(p) for p in paths)}: no quality for {', '.join(absent)}: name the "
            "data's own columns (or result files) in --models, as column=name to rename"
        )
    return Matrix(texts, models.names, labels, keys, skipped, tuple(files))


def _read(path: Path, columns: Sequence[str]) -> Iterator[Row]:
    suffix = path.suffix.lower()
    if suffix == ".zip":
        yield from _mmlu_pro(path)
    elif suffix == ".csv":
        yield from _csv(path, columns)
    else:
        for where, line in numbered_lines(path):
            yield from _row(json_object(line, where), columns, where, {})


def _csv(path: Path, columns: Sequence[str]) -> Iterator[Row]:
    for where, row, extra in csv_rows(path):
        yield from _row(row, columns, where, extra)


def _row(
    row: Mapping[str, Any], columns: Sequence[str], where: str, extra: Mapping[str, str]
) -> Iterator[Row]:
    skip = {"prompt", *columns, *(f"{c}_response" for c in columns)}
    keys = {
        k: v for k, v in row.items() if isinstance(v, str) and k not in skip and len(v) < 200
    } | dict(extra)
    if "model_a" in row and "model_b" in row:
        yield _battle(row, where, keys)
    elif "verdict" in row or "feedback" in row:
        text, quality = _ledger(row, where) or ("", {})  # unjudged, or no prompt: skipped
        yield text, quality, keys
    else:
        quality = row.get("quality", row)
        if not isinstance(quality, Mapping):
            raise SettingsError(f"{where}: `quality` must map model names to scores")
        scores = {c: s for c in columns if (s := _score(quality.get(c), c, where)) is not None}
        yield prompt_text(row, where), scores, keys


def _score(value: Any, model: str, where: str) -> float | None:
    """A cell's quality: None when empty or absent; `SettingsError` when unreadable."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if isinstance(number, bool | int | float) and 0.0 <= float(number) <= 1.0:
        return float(number)
    raise SettingsError(
        f"{where}: {model!r} is {value!r}: a quality is 1/0, True/False or a score from 0 to 1 "
        "(leave the cell empty when unknown)"
    )


def _battle(row: Mapping[str, Any], where: str, keys: dict[str, str]) -> Row:
    won = [zero_one(row.get(name), where, name) for name in ARENA_WINNERS]
    if sum(won) != 1:
        raise SettingsError(f"{where}: exactly one of {', '.join(ARENA_WINNERS)} must be 1")
    a, b = (1.0, 0.0) if won[0] else (0.0, 1.0) if won[1] else (1.0, 1.0)
    return prompt_text(row, where), {str(row["model_a"]): a, str(row["model_b"]): b}, keys


def _ledger(row: Mapping[str, Any], where: str) -> tuple[str, dict[str, float]] | None:
    if not isinstance(row.get("prompt"), str):
        return None  # recorded without its prompt: nothing to embed
    judged = row.get("verdict")
    if isinstance(judged, Mapping) and judged.get("verdict") is not None:
        verdict = judged["verdict"]
        if verdict not in VERDICT_QUALITY:
            raise SettingsError(f"{where}: verdict {verdict!r} is not strong, tie or weak")
        strong, weak = VERDICT_QUALITY[verdict]
        return prompt_text(row, where), {str(judged["strong"]): strong, str(judged["weak"]): weak}
    scored = row.get("feedback")
    if isinstance(scored, Mapping) and isinstance(row.get("model"), str):
        return prompt_text(row, where), {row["model"]: float(float(scored["score"]) >= 0)}
    return None


def _mmlu_pro(path: Path) -> Iterator[Row]:
    named = MMLU_PRO_FILE.search(path.name)
    if named is None:
        raise SettingsError(
            f"{path}: a .zip is read as MMLU-Pro's model_outputs_<model>_5shots.zip; rename it "
            "so the model's name is in it"
        )
    model = named.group(1)
    try:
        with zipfile.ZipFile(path) as archive:
            inner = [n for n in archive.namelist() if n.endswith(".json")]
            if not inner:
                raise SettingsError(f"{path}: no .json inside")
            records = json.load(io.TextIOWrapper(archive.open(inner[0]), encoding="utf-8"))
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise SettingsError(f"cannot read {path} ({exc})") from None
    if isinstance(records, dict):
        records = list(records.values())
    for number, record in enumerate(r for r in records if isinstance(r, dict)):
        where = f"{path}:{inner[0]}[{number}]"
        options = record.get("options")
        if not isinstance(options, list) or "question" not in record or "answer" not in record:
            raise SettingsError(f"{where}: needs question, options and answer")
        # Laid out as build_mmlu_pro.py lays out mmlu_pro_29.csv, so both give the same text.
        lettered = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(options))
        prompt = f"{record['question']}\n{lettered}".strip()
        keys = {k: str(record[k]) for k in ("category", "src", "question_id") if k in record}
        yield prompt, {model: float(record.get("pred") == record["answer"])}, keys
