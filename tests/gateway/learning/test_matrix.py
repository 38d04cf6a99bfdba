"""The quality matrix many-model routers learn from, in each shape it is published in (small
generated files), with every cell worked out by hand: labels, unknown cells, renamed columns."""

from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from classifier.settings import SettingsError
from gateway.learning.matrix import parse_models, read_matrix


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def cells(matrix: np.ndarray) -> list[list[float | None]]:
    return [[None if math.isnan(v) else round(float(v), 3) for v in row] for row in matrix]


def test_csv_scores_booleans_and_unknown_cells(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "mmlu_pro.csv",
        ["question_id", "category", "prompt", "A", "B", "C"],
        [
            [1, "math", "q1", "1", "0", "True"],
            [2, "law", "q2", "False", "0.25", ""],  # C unknown
            [3, "law", "q3", "", "", ""],  # nothing known: skipped
            [4, "math", "q4", "true", "1.0", "0"],
        ],
    )
    matrix = read_matrix([data], parse_models("A,B,C"))
    assert matrix.texts == ["q1", "q2", "q4"]
    assert cells(matrix.labels) == [[1, 0, 1], [0, 0.25, None], [1, 1, 0]]
    assert matrix.skipped == 1
    assert [k["category"] for k in matrix.keys] == ["math", "law", "math"]
    assert matrix.files == ((str(data), 3),)
    assert matrix.complete().texts == ["q1", "q4"]


def test_a_model_missing_from_one_file_is_unknown_there(tmp_path: Path) -> None:
    # RouteLLM's MMLU files hold two models; a second file adds a third.
    mmlu = write_csv(tmp_path / "mmlu_anatomy.csv", ["prompt", "weak", "strong"], [["a", 0, 1]])
    more = write_csv(tmp_path / "more.csv", ["prompt", "strong", "third"], [["b", 1, 0]])
    matrix = read_matrix([mmlu, more], parse_models("strong,weak,third"))
    assert cells(matrix.labels) == [[1, 0, None], [1, None, 0]]
    assert matrix.keys[0]["domain"] == "anatomy"


def test_columns_can_be_given_configured_names(tmp_path: Path) -> None:
    data = write_csv(
        tmp_path / "d.csv",
        ["prompt", "mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4"],
        [["a", 1, 0]],
    )
    models = parse_models("gpt-4, mistralai/Mixtral-8x7B-Instruct-v0.1=mixtral")
    assert models.columns == ("gpt-4", "mistralai/Mixtral-8x7B-Instruct-v0.1")
    matrix = read_matrix([data], models)
    assert matrix.models == ("gpt-4", "mixtral")
    assert cells(matrix.labels) == [[0, 1]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [("A", "two or more"), ("A,A", "named twice"), ("A=x,B=x", "named twice"), ("A,,B", "empty")],
)
def test_bad_model_lists_say_how_to_write_them(spec: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_models(spec)


def test_bad_cells_and_absent_models_name_the_fix(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", ["prompt", "A", "B"], [["a", "yes", 1]])
    with pytest.raises(SettingsError, match=r"d\.csv:2: 'A' is 'yes'.*1/0, True/False"):
        read_matrix([data], parse_models("A,B"))
    fine = write_csv(tmp_path / "e.csv", ["prompt", "A", "B"], [["a", 1.5, 1]])
    with pytest.raises(SettingsError, match="score from 0 to 1"):
        read_matrix([fine], parse_models("A,B"))
    other = write_csv(tmp_path / "f.csv", ["prompt", "A", "B"], [["a", 1, 0]])
    with pytest.raises(SettingsError, match="no quality for C"):
        read_matrix([other], parse_models("A,C"))


def write_results(path: Path, records: list[dict[str, Any]]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("results.json", json.dumps(records))
    return path


def test_mmlu_pro_result_files_are_read_as_published(tmp_path: Path) -> None:
    def record(qid: int, pred: str | None) -> dict[str, Any]:
        return {
            "question_id": qid,
            "question": f"Question {qid}?",
            "options": ["yes", "no", "maybe"],
            "answer": "B",
            "pred": pred,
            "category": "law" if qid == 1 else "math",
            "src": "ori_mmlu",
        }

    a = write_results(tmp_path / "model_outputs_alpha_5shots.zip", [record(1, "B"), record(2, "A")])
    b = write_results(tmp_path / "model_outputs_beta_5shots.zip", [record(2, None), record(1, "B")])
    c = write_results(tmp_path / "model_outputs_gamma_5shots.zip", [record(1, "C")])
    matrix = read_matrix([a, b, c], parse_models("alpha,beta"))
    assert matrix.texts == [
        "Question 1?\nA. yes\nB. no\nC. maybe",
        "Question 2?\nA. yes\nB. no\nC. maybe",
    ]
    assert cells(matrix.labels) == [[1, 1], [0, 0]]  # a missing pred is wrong
    assert [k["category"] for k in matrix.keys] == ["law", "math"]
    assert matrix.skipped == 1  # gamma is not named
    with pytest.raises(SettingsError, match=r"model_outputs_<model>_5shots\.zip"):
        read_matrix([write_results(tmp_path / "other.zip", [])], parse_models("alpha,beta"))


def test_arena_battles_and_the_ledger_as_pairwise_and_single_qualities(tmp_path: Path) -> None:
    battles = tmp_path / "battles.jsonl"
    rows = [
        {
            "prompt": "p1",
            "model_a": "A",
            "model_b": "B",
            "winner_model_a": 1,
            "winner_model_b": 0,
            "winner_tie": 0,
        },
        {
            "prompt": "p2",
            "model_a": "C",
            "model_b": "A",
            "winner_model_a": 0,
            "winner_model_b": 0,
            "winner_tie": 1,
        },
        {
            "prompt": "p3",
            "model_a": "X",
            "model_b": "Y",
            "winner_model_a": 0,
            "winner_model_b": 1,
            "winner_tie": 0,
        },
    ]
    ledger = [
        {
            "prompt": "p4",
            "model": "B",
            "verdict": {"verdict": "strong", "strong": "A", "weak": "B"},
        },
        {"prompt": "p5", "model": "C", "verdict": None, "feedback": {"score": -1.0}},
        {"prompt": "p6", "model": "B", "verdict": None, "feedback": {"score": 0.5}},
        {"model": "B", "verdict": None, "feedback": {"score": 1.0}},  # no prompt kept
    ]
    battles.write_text("".join(json.dumps(r) + "\n" for r in rows + ledger), encoding="utf-8")
    matrix = read_matrix([battles], parse_models("A,B,C"))
    assert matrix.texts == ["p1", "p2", "p4", "p5", "p6"]
    assert cells(matrix.labels) == [
        [1, 0, None],
        [1, None, 1],
        [1, 0, None],
        [None, None, 0],
        [None, 1, None],
    ]
    assert matrix.skipped == 2


def test_excluded_prompts_are_left_out(tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", ["prompt", "A", "B"], [["keep", 1, 0], ["drop", 0, 1]])
    matrix = read_matrix([data], parse_models("A,B"), exclude=frozenset({"drop"}))
    assert matrix.texts == ["keep"]
