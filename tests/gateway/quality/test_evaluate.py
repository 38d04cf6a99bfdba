"""`routellm-gateway evaluate`: RouteLLM's APGR and CPT on a small dataset whose values are
worked out by hand below, through the real classifier service (scripted scores) and the CLI;
the plot is a real PNG."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from PIL import Image

from classifier.service import create_app as classifier_app
from classifier.settings import SettingsError
from gateway import cli
from gateway.quality.evaluate import Example, evaluate, read_examples
from tests.gateway.scripted import ScriptedClassifier
from tests.servers import serve

# (P(LABEL_0), strong model's score, weak model's score)
DATA = [(0.9, 1, 0), (0.7, 1, 1), (0.4, 1, 0), (0.2, 0, 0)]
# By hand: q_strong = 3/4, q_weak = 1/4, gap 1/2. Sending the top-p prompts to the strong
# model, one more at a time: shares 0, 1/4, 1/2, 3/4, 1 reach quality 1/4, 1/2, 1/2, 3/4, 3/4,
# so PGR 0, 1/2, 1/2, 1, 1. APGR (trapezoids of width 1/4):
# (0 + .5)/2/4 + (.5 + .5)/2/4 + (.5 + 1)/2/4 + (1 + 1)/2/4 = .0625 + .125 + .1875 + .25.
APGR = 0.625
CPT50 = 0.25  # PGR first reaches 1/2 at a quarter of the calls
CPT80 = 0.75


def rows(strong: str = "gpt-4o", weak: str = "gpt-4o-mini") -> str:
    return "".join(
        json.dumps({"prompt": f"question {i} p={p}", "quality": {strong: s, weak: w}}) + "\n"
        for i, (p, s, w) in enumerate(DATA)
    )


def test_apgr_and_cpt_match_the_hand_computed_values(tmp_path: Path) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(rows())
    examples, skipped = read_examples(data, "gpt-4o", "gpt-4o-mini")
    report = asyncio.run(evaluate(examples, ScriptedClassifier(), threshold=0.5))

    assert skipped == 0
    assert (report.q_strong, report.q_weak) == (0.75, 0.25)
    assert [p.strong_share for p in report.points] == [0, 0.25, 0.5, 0.75, 1]
    assert [p.quality for p in report.points] == [0.25, 0.5, 0.5, 0.75, 0.75]
    assert [p.pgr for p in report.points] == [0, 0.5, 0.5, 1, 1]
    assert report.apgr == pytest.approx(APGR)
    assert (report.cpt50, report.cpt80) == (CPT50, CPT80)
    at = report.at_threshold  # p ≥ 0.5: the first two prompts go to the strong model
    assert (at.strong_share, at.quality, at.pgr) == (0.5, 0.5, 0.5)


def test_routellm_columns_and_a_ledger_export_are_read(tmp_path: Path) -> None:
    columns = tmp_path / "columns.jsonl"
    columns.write_text(
        json.dumps({"messages": [{"role": "user", "content": "hi"}], "big": True, "small": 0.5})
        + "\n"
    )
    assert read_examples(columns, "big", "small") == ([Example("hi", None, 1.0, 0.5)], 0)

    export = tmp_path / "export.jsonl"
    lines = [
        {"id": "a", "scores": {"LABEL_0": 0.8}, "verdict": {"verdict": "strong"}},
        {"id": "b", "scores": {"LABEL_0": 0.3}, "verdict": {"verdict": "tie"}},
        {"id": "c", "scores": {"LABEL_0": 0.1}, "verdict": {"verdict": "weak"}},
        {"id": "d", "scores": {"LABEL_0": 0.5}, "verdict": None},  # never judged
        {"id": "e", "scores": {"LABEL_0": 0.5}, "verdict": {"verdict": None, "error": "x"}},
    ]
    export.write_text("".join(json.dumps(line) + "\n" for line in lines))
    examples, skipped = read_examples(export, "s", "w")
    assert skipped == 2
    assert examples == [
        Example(None, 0.8, 1.0, 0.0),
        Example(None, 0.3, 1.0, 1.0),
        Example(None, 0.1, 0.0, 1.0),
    ]

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"prompt": "hi", "quality": {"gpt-4o": 1}}) + "\n")
    with pytest.raises(SettingsError, match=r"broken.jsonl:1: no quality for 'gpt-4o-mini'"):
        read_examples(broken, "gpt-4o", "gpt-4o-mini")


def test_the_cli_classifies_prints_the_table_and_writes_a_png(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(rows("strong-model", "weak-model"))
    png = tmp_path / "curve.png"
    with serve(classifier_app(classifier=ScriptedClassifier())) as bert:
        monkeypatch.setenv("ROUTELLM_BERT_URL", f"{bert}/predict")
        monkeypatch.setenv("ROUTELLM_STRONG_MODEL", "strong-model")
        monkeypatch.setenv("ROUTELLM_WEAK_MODEL", "weak-model")
        code = cli.main(
            ["evaluate", "--data", str(data), "--router", "router-bert-0.5", "--plot", str(png)]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert f"APGR          {APGR:.4f}    0.5000" in out
    assert "CPT(50%)       25.0%     50.0%" in out
    assert "CPT(80%)       75.0%     80.0%" in out
    assert "router-bert-0.5 at threshold 0.5000: strong share 50.0%, quality 0.5000" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (840, 540)  # 7 x 4.5 inches at 120 dpi


def test_the_cli_names_a_router_it_cannot_evaluate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(rows())
    monkeypatch.setenv("ROUTELLM_BERT_URL", "http://127.0.0.1:9/predict")  # never reached
    assert cli.main(["evaluate", "--data", str(data), "--router", "nope"]) == 2
    assert "--router: The model 'nope' does not exist" in capsys.readouterr().err
