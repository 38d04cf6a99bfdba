"""`train` and `distil` on small generated data with the real transformers classes: early stopping
on the held-out loss, a checkpoint that loads and routes in the gateway as `ROUTELLM_BERT_MODEL`,
its model card, the CLI, and a student that agrees with its teacher (every epoch run, the one
ranking held-out prompts most like the teacher kept)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from classifier.local import LocalClassifier
from classifier.settings import ClassifierSettings
from classifier.synthetic import build_checkpoint
from gateway import cli
from gateway.app import create_app
from gateway.learning.distil import (
    DistilOptions,
    decision_loss,
    decision_rank,
    distil,
    from_teacher,
    student_loss,
)
from gateway.learning.examples import Example
from gateway.learning.fitting import FitOptions
from gateway.learning.train import TrainOptions, split, train
from gateway.settings.load import Settings
from tests.servers import serve

HARD = [
    "prove",
    "theorem",
    "integral",
    "matrix",
    "database",
    "query",
    "python",
    "code",
    "function",
    "error",
]
EASY = ["hello", "thanks", "good", "day", "you", "the", "a", "nice", "food", "home"]
FAST = FitOptions(epochs=10, patience=2, learning_rate=3e-4, batch_size=8, max_length=64)


def prompt(rng: random.Random, hard: bool) -> str:
    return " ".join(rng.choices(HARD if hard else EASY, k=8))


def labelled(n: int, seed: int = 0) -> list[Example]:
    """Hard prompts only the strong model answers (LABEL_0), easy ones both do (LABEL_1)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        hard = rng.random() < 0.5
        out.append(Example(prompt(rng, hard), None, 1.0, 0.0 if hard else 1.0, {"g": str(i % 4)}))
    return out


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small random XLM-RoBERTa, 4 layers, as the encoder to train on."""
    return build_checkpoint(tmp_path_factory.mktemp("base"), layers=4, seed=1)


@pytest.fixture(scope="session")
def trained(base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    held, kept = split(labelled(120), "g", holdout=0.25, seed=0)
    out = tmp_path_factory.mktemp("trained") / "router"
    report = train(kept, held, TrainOptions(str(base), out, FAST, strong="s", weak="w"))
    assert report.curve.apgr > 0.6  # it learnt the words that need the strong model
    return out


def test_training_stops_early_when_the_held_out_loss_rises(base: Path, tmp_path: Path) -> None:
    """Trained on LABEL_0 only and held out on LABEL_2 only: every epoch makes the held-out
    loss worse, so training stops after `patience` epochs and keeps the first."""
    rng = random.Random(0)
    kept = [Example(prompt(rng, True), None, 1.0, 0.0) for _ in range(40)]
    held = [Example(prompt(rng, False), None, 0.0, 1.0) for _ in range(8)] + [
        Example(prompt(rng, True), None, 1.0, 1.0)  # held-out data needs a quality gap
    ]
    options = FitOptions(epochs=8, patience=1, learning_rate=1e-3, batch_size=8, max_length=64)
    train(kept, held, TrainOptions(str(base), tmp_path / "out", options, strong="s", weak="w"))
    card = json.loads((tmp_path / "out" / "routellm-training.json").read_text())
    fitted = card["fit"]
    assert fitted["stopped_early"] is True
    assert fitted["epochs_run"] < 8
    assert fitted["best_epoch"] == 1
    assert fitted["held_losses"][1] > fitted["held_losses"][0]
    assert not (tmp_path / "out" / ".trainer").exists()  # Trainer's checkpoints are removed


def test_the_trained_checkpoint_loads_and_routes_in_the_gateway(
    trained: Path, make_settings: Callable[..., Settings]
) -> None:
    card = (trained / "README.md").read_text()
    assert "LABEL_0: the strong model's" in card
    assert "| APGR | CPT(50 %) | CPT(80 %) |" in card
    rng = random.Random(7)
    hard, easy = prompt(rng, True), prompt(rng, False)
    local = LocalClassifier.load(ClassifierSettings(model=str(trained)))
    try:
        scores = asyncio.run(local.classify([hard, easy]))
    finally:
        asyncio.run(local.aclose())
    p_hard, p_easy = (s.get("LABEL_0") for s in scores)
    assert p_hard > p_easy
    threshold = f"{(p_hard + p_easy) / 2:.6f}"
    settings = make_settings(ROUTELLM_BERT_MODEL=str(trained), ROUTELLM_THRESHOLD=threshold)
    with serve(create_app(settings)) as url:
        health = httpx.get(f"{url}/health").json()
        assert str(trained) in json.dumps(health)  # /health names the checkpoint
        for text, model in ((hard, "strong"), (easy, "weak")):
            body = {"model": "router", "messages": [{"role": "user", "content": text}]}
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            assert answer.status_code == 200
            assert answer.headers["x-routellm-model"] == model


def test_the_train_command_reads_mmlu_files_and_splits_by_domain(
    base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(3)
    for domain in ("anatomy", "algebra", "law", "virology"):
        lines = ["prompt,weak-model,strong-model"]
        for _ in range(12):
            hard = rng.random() < 0.5
            lines.append(f"{prompt(rng, hard)},{not hard},True")
        (tmp_path / f"mmlu_{domain}.csv").write_text("\n".join(lines) + "\n")
    files = sorted(str(p) for p in tmp_path.glob("mmlu_*.csv"))
    out = tmp_path / "router"
    argv = ["train", "--data", *files, "--strong", "strong-model", "--weak", "weak-model"]
    argv += ["--base", str(base), "--out", str(out), "--split-by", "domain", "--holdout", "0.25"]
    argv += ["--epochs", "2", "--max-length", "64", "--no-progress"]
    assert cli.main(argv) == 0
    captured = capsys.readouterr()
    assert "36 examples to train on, 12 held out by domain" in captured.err
    assert "APGR" in captured.out
    figures = json.loads((out / "routellm-training.json").read_text())
    assert figures["split"] == {"by": "domain", "holdout": 0.25, "seed": 0}
    assert figures["held_out_examples"] == 12
    assert (out / "model.safetensors").exists()

    missing = ["train", "--data", *files, "--strong", "s", "--weak", "w", "--base", str(base)]
    assert cli.main([*missing, "--out", str(tmp_path / "x")]) == 2
    assert "mmlu_algebra.csv:2: no quality for 's'" in capsys.readouterr().err


def test_a_student_from_every_other_layer_agrees_with_its_teacher(
    trained: Path, tmp_path: Path
) -> None:
    teacher = AutoModelForSequenceClassification.from_pretrained(trained)
    student, kept = from_teacher(teacher, layers=2)
    assert kept == [1, 3]  # down from the last, whose output the head was trained on
    assert student.config.num_hidden_layers == 2

    rng = random.Random(11)
    prompts = [prompt(rng, rng.random() < 0.5) for _ in range(160)]
    # distil's defaults (half the layers, its epochs, learning rate and loss): the figures a
    # user gets without choosing any.
    result = distil(str(trained), prompts, DistilOptions(tmp_path / "student", speed_prompts=16))
    assert (result.teacher_layers, result.student_layers, result.held_out) == (4, 2, 32)
    # Every epoch runs, and the one kept is the one ranking the held-out prompts most like the
    # teacher, not the one of least loss.
    fitted = result.fitted
    assert (fitted.epochs_run, fitted.stopped_early, len(fitted.held_scores)) == (6.0, False, 6)
    assert fitted.best_epoch == 1 + max(range(6), key=fitted.held_scores.__getitem__)
    # Measured on this data: 1.0 at each share and a largest change of 0.006; the floors leave
    # room for other CPUs' arithmetic.
    for share in ("0.25", "0.5", "0.75"):
        assert result.agreement[f"calibrated_{share}"] >= 0.9
    assert result.max_delta < 0.05
    assert set(result.speed) >= {"ratio_float32_1", "ratio_float32_16", "ratio_int8_16"}
    assert all(v > 0 for v in result.speed.values())
    loaded = LocalClassifier.load(ClassifierSettings(model=str(tmp_path / "student")))
    asyncio.run(loaded.aclose())


def test_the_decision_rank_is_the_rank_correlation_of_p0_whatever_the_other_labels() -> None:
    teacher = np.log(np.array([[0.10, 0.5, 0.4], [0.20, 0.4, 0.4], [0.15, 0.8, 0.05]]))
    # The student's logits: same order of P(LABEL_0) (0.1 < 0.15 < 0.2) on another scale, with
    # LABEL_1 and LABEL_2 split otherwise: a perfect ranking.
    alike = np.log(np.array([[0.3, 0.1, 0.6], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1]])) + 7.0
    assert decision_rank(alike, teacher) == pytest.approx(1.0)
    assert decision_rank(alike[[1, 0, 2]], teacher) == pytest.approx(-1.0)  # reversed


def test_the_student_loss_adds_the_state_error_relative_to_the_teachers_spread() -> None:
    log_p = torch.log(torch.tensor([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]]))
    teacher_state = torch.tensor([[1.0, -1.0, 3.0], [0.0, 2.0, -2.0]])
    targets = torch.cat([log_p, teacher_state], dim=1)

    def outputs(state: torch.Tensor) -> SimpleNamespace:
        # hidden_states[-1][:, 0]: the last layer's first token, as a classifier head reads it
        return SimpleNamespace(logits=log_p, hidden_states=(None, state.unsqueeze(1)))

    same = float(student_loss(outputs(teacher_state), targets))
    assert same == pytest.approx(float(decision_loss(log_p, log_p)), rel=1e-6)
    off = float(student_loss(outputs(teacher_state + 0.5), targets))
    assert off - same == pytest.approx(0.25 / float(teacher_state.var()), rel=1e-5)
    # A student from another base has its own state size: its targets are the three alone.
    assert float(student_loss(outputs(torch.zeros(2, 5)), log_p)) == pytest.approx(same)


def test_the_decision_loss_pulls_as_hard_on_a_crowded_p0_as_on_a_spread_one() -> None:
    """The same error in the decision's logit, log P(LABEL_0) / (1 − P(LABEL_0)), where the
    teacher's P(LABEL_0) is 0.02 and where it is 0.5: the decision loss's gradient on the
    student's LABEL_0 logit is about the same (0.9×); cross-entropy alone (the loss before)
    gives the first a twelfth of the second's, so a student learnt the crowded end of the
    teacher's ranking poorly."""

    def pull(p0: float, loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> float:
        teacher = torch.log(torch.tensor([[p0, (1 - p0) / 2, (1 - p0) / 2]]))
        student = (teacher + torch.tensor([[0.1, 0.0, 0.0]])).requires_grad_()
        loss(student, teacher).backward()
        assert student.grad is not None
        return float(student.grad[0, 0])

    def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -(targets.exp() * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()

    p = torch.tensor([[0.2, 0.5, 0.3]])
    entropy = float(-(p * p.log()).sum())  # a student equal to its teacher: only this is left
    assert float(decision_loss(p.log(), p.log())) == pytest.approx(entropy, rel=1e-5)
    ratio = pull(0.02, decision_loss) / pull(0.5, decision_loss)
    assert 0.8 < ratio < 1.25
    assert pull(0.02, cross_entropy) / pull(0.5, cross_entropy) < 0.2
