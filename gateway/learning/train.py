"""`routellm-gateway train`: fine-tune a 3-label router on labelled prompts.

    held, kept = split(read.examples, "domain", holdout=0.2, seed=0)
    card = train(kept, held, TrainOptions(base="path/or/hub-id", out=Path("my-router")))

The labels keep the router's contract: LABEL_0 the strong model's answer wins, LABEL_1 a tie,
LABEL_2 the weak model's wins; P(LABEL_0) is the strong model's win rate. The base is the
current router (`routellm/bert_gpt4_augmented`, or a directory of it) to fine-tune it on your
own data, or any encoder checkpoint (a fresh 3-label head is put on it) for a smaller, faster
router. The output directory loads like the shipped router (in process, in the classifier
service, as `ROUTELLM_BERT_MODEL`) and carries a model card (`README.md`) and the same figures
as JSON (`routellm-training.json`): data, split, base, and the held-out APGR and CPT.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from classifier.settings import SettingsError
from gateway.learning.evaluate import RouterReport, summarise, to_json
from gateway.learning.examples import Example
from gateway.learning.fitting import (
    LABELS,
    FitOptions,
    FitResult,
    fit,
    probabilities,
    resolve_device,
    train_top_layers,
)

__all__ = ["TrainOptions", "split", "train"]

CARD = "README.md"
FIGURES = "routellm-training.json"


@dataclass(frozen=True, slots=True)
class TrainOptions:
    base: str
    out: Path
    fit: FitOptions = field(default_factory=FitOptions)
    data: tuple[tuple[str, int], ...] = ()
    """The files read and how many examples each gave (for the card)."""
    split: str = "random"
    holdout: float = 0.2
    excluded: int = 0
    strong: str = ""
    weak: str = ""
    train_layers: int | None = None
    """Train only the top layers and the head (None: every layer)."""


def split(
    examples: Sequence[Example], key: str, holdout: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(held out, kept for training). `random`: examples drawn at random; any other key: whole
    groups of that key (e.g. MMLU's `domain`) are held out, so no group is on both sides, until
    at least `holdout` of the examples are."""
    if not 0 < holdout < 1:
        raise SettingsError(f"--holdout {holdout} must be between 0 and 1, e.g. 0.2")
    rng = np.random.default_rng(seed)
    if key == "random":
        order = rng.permutation(len(examples)).tolist()
        cut = max(1, round(len(examples) * holdout))
        chosen = set(order[:cut])
    else:
        missing = [e for e in examples if key not in e.keys]
        if missing:
            known = sorted({k for e in examples for k in e.keys}) or ["none"]
            raise SettingsError(
                f"--split-by {key!r}: {len(missing)} examples have no such key (keys in this "
                f"data: {', '.join(known)}; or use random)"
            )
        groups = [str(g) for g in rng.permutation(sorted({e.keys[key] for e in examples}))]
        if len(groups) < 2:
            raise SettingsError(f"--split-by {key!r}: the data has one group only ({groups[0]})")
        sizes = {g: 0 for g in groups}
        for e in examples:
            sizes[e.keys[key]] += 1
        held_groups: set[str] = set()
        for group in groups[:-1]:  # at least one group is kept for training
            if sum(sizes[g] for g in held_groups) >= holdout * len(examples):
                break
            held_groups.add(group)
        chosen = {i for i, e in enumerate(examples) if e.keys[key] in held_groups}
    held = [e for i, e in enumerate(examples) if i in chosen]
    kept = [e for i, e in enumerate(examples) if i not in chosen]
    if not kept or not held:
        raise SettingsError("the split leaves one side empty: give more data or another --holdout")
    return held, kept


def _rows(examples: Sequence[Example]) -> list[dict[str, Any]]:
    rows = [{"text": e.text, "labels": e.label} for e in examples if e.text]
    if len(rows) < len(examples):
        raise SettingsError(
            "some examples have no prompt (ledger rows recorded without prompts): keep prompts "
            "with ROUTELLM_LEDGER_PROMPTS=1 to train on the ledger"
        )
    return rows


def load_base(base: str) -> tuple[Any, Any]:
    """The base's tokenizer and a 3-label sequence classifier on it (a new head when the base
    has none, or another number of labels). `SettingsError` when it does not load."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = AutoModelForSequenceClassification.from_pretrained(
            base,
            num_labels=len(LABELS),
            id2label=LABELS,
            label2id={v: k for k, v in LABELS.items()},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SettingsError(f"--base {base!r} does not load ({first})") from None
    return model, tokenizer


def train(kept: Sequence[Example], held: Sequence[Example], options: TrainOptions) -> RouterReport:
    """Fine-tune the base on `kept`, stop early on `held`'s loss, save the best epoch to
    `options.out` with its card, and return its held-out figures."""
    started = time.monotonic()
    model, tokenizer = load_base(options.base)
    if options.train_layers is not None:
        train_top_layers(model, options.train_layers)
    model.to(resolve_device(options.fit.device))
    result = fit(
        model, tokenizer, _rows(kept), _rows(held), options.fit, work_dir=options.out / ".trainer"
    )
    texts = [e.text or "" for e in held]
    rates = probabilities(model, tokenizer, texts, options.fit.max_length)[:, 0]
    report = summarise(options.out.name, rates, held, 0.5, rounds=1000)
    model.save_pretrained(options.out)
    tokenizer.save_pretrained(options.out)
    write_card(options, result, report, len(kept), time.monotonic() - started)
    return report


def write_card(
    options: TrainOptions, result: FitResult, report: RouterReport, trained: int, seconds: float
) -> None:
    figures = {
        "base": options.base,
        "strong": options.strong,
        "weak": options.weak,
        "data": [{"file": f, "examples": n} for f, n in options.data],
        "excluded_prompts": options.excluded,
        "split": {"by": options.split, "holdout": options.holdout, "seed": options.fit.seed},
        "train_layers": options.train_layers,
        "train_examples": trained,
        "held_out_examples": report.examples,
        "fit": {**asdict(result), "options": asdict(options.fit)},
        "held_out": to_json([report])["routers"][0],
        "seconds": round(seconds, 1),
    }
    options.out.mkdir(parents=True, exist_ok=True)
    (options.out / FIGURES).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    held = figures["held_out"]

    def ci(name: str, share: bool) -> str:
        lo, hi = held[f"{name}_ci"] or (float("nan"), float("nan"))
        return f"[{lo:.1%}, {hi:.1%}]" if share else f"[{lo:.3f}, {hi:.3f}]"

    def pct(value: float | None) -> str:
        return "never" if value is None else f"{value:.1%}"

    files = "\n".join(f"- `{f}`: {n} examples" for f, n in options.data)
    card = f"""# {options.out.name}: a RouteLLM-style router

A 3-label sequence classifier trained by `routellm-gateway train`. LABEL_0: the strong model's
answer wins; LABEL_1: a tie; LABEL_2: the weak model's answer wins. P(LABEL_0) is the strong
model's win rate: serve it with `ROUTELLM_BERT_MODEL={options.out}`.

- base: `{options.base}`
- strong: `{options.strong}`, weak: `{options.weak}`
- data ({options.excluded} contaminated prompts excluded):
{files}
- split: held out by `{options.split}`, {options.holdout:.0%} of the examples, seed
  {options.fit.seed}: {trained} trained on, {report.examples} held out
- training: {result.epochs_run:g} epochs on {result.device}, best held-out loss
  {result.best_loss} after epoch {result.best_epoch}
  ({"stopped early" if result.stopped_early else "ran every epoch"})

## Held-out figures (95 % bootstrap intervals; random routing: APGR 0.500, CPT = the share)

| APGR | CPT(50 %) | CPT(80 %) |
|---|---|---|
| {held["apgr"]:.3f} {ci("apgr", False)} | {pct(held["cpt50"])} {ci("cpt50", True)} | \
{pct(held["cpt80"])} {ci("cpt80", True)} |
"""
    (options.out / CARD).write_text(card, encoding="utf-8")
