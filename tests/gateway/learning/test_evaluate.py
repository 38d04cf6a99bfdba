"""`routellm-gateway evaluate`: RouteLLM's APGR and CPT on a small dataset whose values are
worked out by hand below, through the real classifier service (scripted scores) and the CLI;
the plot is a real PNG."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classifier.local import LocalClassifier
from classifier.service import create_app as classifier_app
from classifier.settings import ClassifierSettings
from gateway import cli
from gateway.learning.evaluate import bootstrap, curve, evaluate
from gateway.learning.examples import read_all
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
    read = read_all([data], "gpt-4o", "gpt-4o-mini")
    report = asyncio.run(evaluate(read.examples, ScriptedClassifier(), 0.5, "router"))

    c = report.curve
    assert (c.q_strong, c.q_weak) == (0.75, 0.25)
    assert c.shares.tolist() == [0, 0.25, 0.5, 0.75, 1]
    assert c.quality.tolist() == [0.25, 0.5, 0.5, 0.75, 0.75]
    assert c.pgr.tolist() == [0, 0.5, 0.5, 1, 1]
    assert c.apgr == pytest.approx(APGR)
    assert (c.cpt(0.5), c.cpt(0.8)) == (CPT50, CPT80)
    # p ≥ 0.5: the first two prompts go to the strong model
    assert (report.at_share, report.at_quality, report.at_pgr) == (0.5, 0.5, 0.5)
    lo, hi = report.intervals["apgr"] or (0, 0)
    assert lo <= APGR <= hi
    assert lo < hi  # four prompts leave a wide interval


def test_the_bootstrap_interval_narrows_with_more_prompts_and_covers_the_figure() -> None:
    rng = np.random.default_rng(0)
    widths = []
    for n in (100, 2500):
        rates = rng.random(n)
        strong = (rng.random(n) < 0.4 + 0.5 * rates).astype(float)  # a router that helps
        weak = (rng.random(n) < 0.4).astype(float)
        figure = curve(rates, strong, weak).apgr
        lo, hi = bootstrap(rates, strong, weak, rounds=400)["apgr"] or (0, 0)
        assert lo <= figure <= hi
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2


def test_two_checkpoints_side_by_side_with_intervals(
    tmp_path: Path,
    checkpoint_factory: Callable[[int | None], Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two real checkpoints on the same data: each row's APGR is the one computed here by hand
    from that checkpoint's own P(LABEL_0), inside its interval; `--json` carries the same."""
    prompts = [
        f"{w} question {i}"
        for i, w in enumerate(["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] * 4)
    ]
    data = tmp_path / "eval.jsonl"
    qualities = [(1, 0), (1, 1), (0, 1), (1, 0), (0, 0), (1, 0)] * 4
    data.write_text(
        "".join(
            json.dumps({"prompt": p, "quality": {"s": q[0], "w": q[1]}}) + "\n"
            for p, q in zip(prompts, qualities, strict=True)
        )
    )
    dirs = [checkpoint_factory(None), checkpoint_factory(0)]
    argv = ["evaluate", "--data", str(data), "--strong", "s", "--weak", "w"]
    for d in dirs:
        argv += ["--checkpoint", str(d)]
    assert cli.main([*argv, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in figures["routers"]] == [str(d) for d in dirs]
    assert figures["random"] == {"apgr": 0.5, "cpt50": 0.5, "cpt80": 0.8}
    for d, row in zip(dirs, figures["routers"], strict=True):
        local = LocalClassifier.load(ClassifierSettings(model=str(d)))
        try:
            rates = [s.get("LABEL_0") for s in asyncio.run(local.classify(prompts))]
        finally:
            asyncio.run(local.aclose())
        by_hand = hand_apgr(rates, qualities)
        assert row["apgr"] == pytest.approx(by_hand)
        lo, hi = row["apgr_ci"]
        assert lo - 1e-9 <= by_hand <= hi + 1e-9
    assert cli.main(argv) == 0  # the table names both rows
    table = capsys.readouterr().out
    assert all(f"{d}  " in table for d in dirs)
    assert "random" in table


def hand_apgr(rates: list[float], qualities: list[tuple[int, int]]) -> float:
    """APGR the long way: every distinct threshold, strongest first, trapezoids."""
    n = len(rates)
    q_strong = sum(q[0] for q in qualities) / n
    q_weak = sum(q[1] for q in qualities) / n
    points = [(0.0, 0.0)]
    for t in sorted(set(rates), reverse=True):
        sent = [r >= t for r in rates]
        q = sum(s if go else w for (s, w), go in zip(qualities, sent, strict=True)) / n
        points.append((sum(sent) / n, (q - q_weak) / (q_strong - q_weak)))
    return sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in itertools.pairwise(points))


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
    assert "router-bert-0.5 at threshold 0.5000: strong share 50.0%, quality 0.5000" in out
    row = next(line for line in out.splitlines() if line.startswith("router-bert-0.5  "))
    assert row.split()[1:2] == [f"{APGR:.4f}"]
    assert "25.0%" in row  # CPT(50%)
    assert "75.0%" in row  # CPT(80%)
    assert "random" in out
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


def test_a_router_with_its_own_checkpoint_is_evaluated_on_it(
    tmp_path: Path,
    checkpoint_factory: Callable[[int | None], Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text(rows("strong-model", "weak-model"))
    config = tmp_path / "gateway.yaml"
    rule = {"strong": "strong-model", "weak": "weak-model", "threshold": 0.5}
    own = {**rule, "classifier": str(checkpoint_factory(0))}
    models = {m: {"upstream": "up", "model": m} for m in ("strong-model", "weak-model")}
    upstreams = {"up": {"base_url": "http://127.0.0.1:9/v1"}}  # never called
    doc = {"upstreams": upstreams, "models": models, "routing": rule, "routers": {"own": own}}
    config.write_text(json.dumps(doc))
    monkeypatch.setenv("ROUTELLM_BERT_MODEL", str(checkpoint_factory(2)))  # the gateway's own
    argv = ["evaluate", "--data", str(data), "--router", "router", "--router", "own", "--json"]
    assert cli.main([*argv, "--config", str(config)]) == 0
    shares = {r["name"]: r["strong_share"] for r in json.loads(capsys.readouterr().out)["routers"]}
    assert shares == {"router": 0.0, "own": 1.0}  # LABEL_2 wins on one, LABEL_0 on the other
