"""Fitting a sequence classifier with transformers' `Trainer`, the way `train` and `distil` both
do: texts tokenized a batch at a time (memory bounded by batch × `max_length`, never the whole
data), the held-out loss after every epoch, the best epoch kept, early stopping when the held-out
loss has not improved for `patience` epochs, a seed, and Trainer's progress bar on CPU or CUDA.

    result = fit(model, tokenizer, train_rows, held_rows, options)                # hard labels
    result = fit(model, tokenizer, train_rows, held_rows, options, soft=loss)     # teacher targets
    result = fit(..., soft=loss, score=rank)    # the best epoch by a held-out score, not the loss

A row is `{"text": str, "labels": int}`, or with `soft`, `{"text": str, "targets": [...]}`, and
`soft(outputs, targets)` is the loss (`distil`'s, on the teacher's log-probabilities and state).
`score(logits, targets)` (numpy, every held-out row) is a figure where higher is better; given
one, the epoch kept and early stopping follow it instead of the held-out loss.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from classifier.settings import SettingsError

__all__ = [
    "LABELS",
    "FitOptions",
    "FitResult",
    "HeldScore",
    "SoftLoss",
    "fit",
    "probabilities",
    "read_outputs",
    "resolve_device",
    "train_top_layers",
]

LABELS = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
"""The router's labels: the strong model wins, a tie, the weak model wins."""
Device = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True, slots=True)
class FitOptions:
    epochs: float = 3.0
    batch_size: int = 16
    learning_rate: float = 3e-5
    max_length: int = 512
    seed: int = 0
    patience: int = 1
    """Epochs without a better held-out loss before training stops."""
    device: Device = "auto"
    progress: bool = True


@dataclass(frozen=True, slots=True)
class FitResult:
    epochs_run: float
    best_epoch: float | None
    best_loss: float | None
    held_losses: tuple[float, ...]
    """The held-out loss after each epoch."""
    stopped_early: bool
    device: str
    held_scores: tuple[float, ...] = ()
    """`score`'s figure after each epoch, when `fit` was given one."""


def resolve_device(device: Device) -> str:
    import torch

    if device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("--device cuda: this machine has no CUDA device torch can use")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class _Rows:
    """The rows as a map-style dataset (Trainer's data loader indexes and shuffles it)."""

    def __init__(self, rows: Sequence[dict[str, Any]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.rows[i]


def _collator(tokenizer: Any, max_length: int) -> Any:
    import torch

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        batch = dict(
            tokenizer(
                [r["text"] for r in rows],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
        )
        if "targets" in rows[0]:
            batch["targets"] = torch.tensor([r["targets"] for r in rows], dtype=torch.float32)
        else:
            batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        return batch

    return collate


SoftLoss = Callable[[Any, Any], Any]
"""`(outputs, targets) -> loss`: the student's outputs (`.logits`, and `.hidden_states`, every
layer's) and the teacher's targets, a tensor of one row per text."""
HeldScore = Callable[[np.ndarray, np.ndarray], float]
"""`(logits, targets) -> figure`, higher is better, over every held-out row (numpy arrays)."""


def _trainer_class(soft: SoftLoss | None) -> Any:
    from transformers import Trainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    if soft is None:
        return Trainer
    loss_of: SoftLoss = soft

    class SoftTargets(Trainer):  # type: ignore[misc]
        """`soft`'s loss against the teacher's targets instead of one label, on batches of
        prompts of similar lengths."""

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            # A batch is padded to its longest prompt: on 2,400 RouteLLM prompts (median 69
            # tokens, up to 512) shuffled batches of 16 held 3.1× their tokens, these 1.3×.
            # Transformers' own grouping needs tokenized rows; ours keep their text, whose
            # length in characters sorts them as well.
            dataset = cast(_Rows, train_dataset or self.train_dataset)
            lengths = [len(row["text"]) for row in dataset.rows]
            return LengthGroupedSampler(self.args.train_batch_size, lengths=lengths)

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            targets = inputs.pop("targets")
            outputs = model(**inputs, output_hidden_states=True)
            loss = loss_of(outputs, targets)
            # Held-out figures read the logits only: every layer's states stay out of them.
            return (loss, {"logits": outputs.logits}) if return_outputs else loss

    return SoftTargets


def fit(
    model: Any,
    tokenizer: Any,
    train_rows: Sequence[dict[str, Any]],
    held_rows: Sequence[dict[str, Any]],
    options: FitOptions,
    *,
    work_dir: Path,
    soft: SoftLoss | None = None,
    score: HeldScore | None = None,
) -> FitResult:
    """Train `model` in place; afterwards it holds the epoch of the lowest held-out loss (or of
    the highest `score`). `work_dir` takes Trainer's checkpoints and is removed at the end."""
    from transformers import EarlyStoppingCallback, TrainingArguments

    device = resolve_device(options.device)
    args = TrainingArguments(
        output_dir=str(work_dir),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        per_device_eval_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        seed=options.seed,
        data_seed=options.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=1,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss" if score is None else "eval_score",
        greater_is_better=score is not None,
        logging_strategy="epoch",
        report_to="none",
        disable_tqdm=not options.progress,
        use_cpu=device == "cpu",
        remove_unused_columns=False,
        label_names=["labels"] if soft is None else ["targets"],
        dataloader_num_workers=0,
    )
    trainer = _trainer_class(soft)(
        model=model,
        args=args,
        train_dataset=_Rows(train_rows),
        eval_dataset=_Rows(held_rows),
        data_collator=_collator(tokenizer, options.max_length),
        compute_metrics=None if score is None else _held_score(score),
        callbacks=[EarlyStoppingCallback(early_stopping_patience=options.patience)],
    )
    try:
        trainer.train()
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    history = trainer.state.log_history
    losses = tuple(float(e["eval_loss"]) for e in history if "eval_loss" in e)
    scores = tuple(float(e["eval_score"]) for e in history if "eval_score" in e)
    epochs_run = float(trainer.state.epoch or 0.0)
    best = int(np.argmax(scores)) if scores else int(np.argmin(losses)) if losses else None
    return FitResult(
        epochs_run=epochs_run,
        best_epoch=float(best + 1) if best is not None else None,
        best_loss=losses[best] if best is not None else None,
        held_losses=losses,
        stopped_early=epochs_run < options.epochs - 1e-9,
        device=device,
        held_scores=scores,
    )


def _held_score(score: HeldScore) -> Callable[[Any], dict[str, float]]:
    def compute_metrics(prediction: Any) -> dict[str, float]:
        logits, targets = prediction.predictions, prediction.label_ids
        return {"score": float(score(np.asarray(logits), np.asarray(targets)))}

    return compute_metrics


def train_top_layers(model: Any, layers: int) -> None:
    """Train only the top `layers` encoder layers and the head: the embeddings and the layers
    below stay as they are, which makes a step several times cheaper on a CPU."""
    encoder = model.base_model.encoder.layer
    if not 1 <= layers <= len(encoder):
        raise SettingsError(f"--train-layers {layers}: the base has {len(encoder)} layers")
    model.base_model.embeddings.requires_grad_(False)
    for layer in encoder[: len(encoder) - layers]:
        layer.requires_grad_(False)


def probabilities(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 32
) -> np.ndarray:
    """The model's three probabilities for each text (float32 softmax), in eval mode."""
    import torch

    def softmax(outputs: Any) -> Any:
        return torch.softmax(outputs.logits.float(), dim=-1)

    return read_outputs(
        model, tokenizer, texts, max_length, softmax, width=3, batch_size=batch_size
    )


def read_outputs(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    read: Callable[[Any], Any],
    *,
    width: int,
    hidden_states: bool = False,
    batch_size: int = 32,
) -> np.ndarray:
    """`read(outputs)`, a tensor of one row of `width` per text, for `texts` in batches of
    `batch_size` (each padded to its longest), in eval mode; `hidden_states` asks the model for
    every layer's states as well."""
    import torch

    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            outputs = model(**batch, output_hidden_states=hidden_states)
            out.append(read(outputs).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, width), dtype=np.float32)
