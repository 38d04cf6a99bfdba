"""`routellm-gateway distil`: a smaller student that matches a teacher router's three
probabilities on unlabelled prompts, and how closely and how much faster it does.

    student, kept = from_teacher(teacher_model, layers=6)       # 1, 3, ..., 11 of 12
    result = distil(teacher_dir, prompts, DistilOptions(out=Path("student"), layers=6))

The student is built from the teacher's own layers (as DistilBERT was: its embeddings, kept
frozen, every k-th encoder layer down from the last, and its head, so it keeps the teacher's
tokenizer and languages), or from another base (`base=`), with its own tokenizer. It learns the
teacher's decisions (`decision_loss`: the squared error of the logit of P(LABEL_0), whose ranks
are the router's decisions, plus the cross-entropy of the three probabilities) and, when built
from the teacher, the last-layer state the head reads (`student_loss`), for six epochs, keeping
the one whose ranking of held-out prompts is most like the teacher's (`decision_rank`), then is
compared with the teacher on those held-out prompts:

- decision agreement at the thresholds that send 25/50/75 % of prompts to the strong model
  (each model at its own such threshold, as a user calibrating each would), and at the
  teacher's thresholds unchanged;
- the largest change in P(LABEL_0);
- speed: prompts/s through the gateway's own classifier (`LocalClassifier`, batched) at 1 and
  16 callers, float32 and int8, teacher and student, and their ratio.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from classifier.settings import ClassifierSettings, SettingsError
from gateway.learning.fitting import (
    FitOptions,
    FitResult,
    fit,
    probabilities,
    read_outputs,
    resolve_device,
)
from gateway.learning.train import load_base

__all__ = [
    "DISTIL_FIT",
    "DistilOptions",
    "DistilResult",
    "by_length",
    "decision_loss",
    "decision_rank",
    "distil",
    "from_teacher",
    "speed",
    "student_loss",
    "teacher_targets",
]

# Six epochs, every one run, the one whose ranking of P(LABEL_0) is most like the teacher's kept
# (`decision_rank`). On a MiniLM router whose P(LABEL_0) spans 0.15-0.20, the student's
# agreement climbed from 89.8 % after one epoch to 90.8 % by the fifth while its held-out loss
# rose: the loss picked epoch two, and stopping at the first epoch without a better loss kept a
# student of 87-89 %. The ranking settles as the learning rate decays, so no epoch is skipped.
DISTIL_FIT = FitOptions(epochs=6.0, learning_rate=5e-5, patience=6)
SHARES = (0.25, 0.5, 0.75)
CALLERS = (1, 16)
DTYPES: tuple[Literal["float32", "int8"], ...] = ("float32", "int8")
LAYER_KEY = re.compile(r"^(.*encoder\.layer\.)(\d+)(\..*)$")


@dataclass(frozen=True, slots=True)
class DistilOptions:
    out: Path
    layers: int | None = None
    """Encoder layers the student keeps from the teacher (default: half)."""
    base: str | None = None
    """Another checkpoint to build the student from instead (with its own tokenizer)."""
    holdout: float = 0.2
    fit: FitOptions = DISTIL_FIT
    speed_prompts: int = 128
    """Prompts timed per speed figure; 0 skips the speed figures."""


@dataclass(frozen=True, slots=True)
class DistilResult:
    student: str
    teacher_layers: int
    student_layers: int
    held_out: int
    agreement: dict[str, float]
    """`calibrated_<share>` (each at its own threshold) and `same_<share>` (the teacher's)."""
    max_delta: float
    """The largest |P(LABEL_0) student − teacher| on held-out prompts."""
    fitted: FitResult
    speed: dict[str, float] = field(default_factory=dict)
    """`<model>_<dtype>_<callers>`: prompts/s; `ratio_<dtype>_<callers>`: student/teacher."""


def from_teacher(teacher: Any, layers: int | None) -> tuple[Any, list[int]]:
    """A student with `layers` of the teacher model's encoder layers, evenly spaced down from
    the last (6 of 12: 1, 3, ..., 11), its embeddings and its head; and the layers kept."""
    total = int(teacher.config.num_hidden_layers)
    keep_n = layers if layers is not None else max(1, total // 2)
    if not 1 <= keep_n < total:
        raise SettingsError(f"--layers {keep_n}: the teacher has {total}; give 1 to {total - 1}")
    # The last layer stays: the head was fine-tuned on its output. A MiniLM router fine-tuned
    # in its top two layers, kept as layers 1, 3, 5, agreed with itself on 80 % of decisions
    # before the student had learnt anything; as 0, 2, 4 (from the first), on 64 %.
    keep = [total - 1 - round(i * total / keep_n) for i in reversed(range(keep_n))]
    config = copy.deepcopy(teacher.config)
    config.num_hidden_layers = keep_n
    student = type(teacher)(config)
    weights = {}
    for name, tensor in teacher.state_dict().items():
        match = LAYER_KEY.match(name)
        if match is None:
            weights[name] = tensor
        elif int(match.group(2)) in keep:
            weights[f"{match.group(1)}{keep.index(int(match.group(2)))}{match.group(3)}"] = tensor
    student.load_state_dict(weights)
    # The embeddings are the teacher's and stay so: a large vocabulary's table (XLM-R: 192M of
    # its 278M weights) would otherwise dominate every optimiser step.
    student.base_model.embeddings.requires_grad_(False)
    return student, keep


def decision_loss(logits: Any, targets: Any) -> Any:
    """The student's loss against the teacher's log-probabilities: the squared error of the
    decision's own logit, log P(LABEL_0) / (1 − P(LABEL_0)), plus the cross-entropy of the three
    probabilities."""
    import torch

    log_p = torch.log_softmax(logits, dim=-1)

    def decision(log_q: Any) -> Any:
        return log_q[:, 0] - torch.logsumexp(log_q[:, 1:], dim=-1)

    # A router's decisions are ranks of P(LABEL_0); where the teacher's probabilities crowd
    # together (a quarter of them within 0.01), cross-entropy's gradient, P(student) − P(teacher),
    # all but vanishes, while the logit's error does not.
    squared = (decision(log_p) - decision(targets)) ** 2
    cross_entropy = -(targets.exp() * log_p).sum(dim=-1)
    return (squared + cross_entropy).mean()


def student_loss(outputs: Any, targets: Any) -> Any:
    """`decision_loss` on the student's logits against the teacher's log-probabilities
    (`targets[:, :3]`); where `targets` also holds the teacher's last-layer state of the first
    token, the one its head reads (`targets[:, 3:]`), plus the squared error of the student's
    state, relative to the spread of the teacher's.

    The logits give a student one number per prompt to learn from, and a teacher whose P(LABEL_0)
    crowds into a narrow band gives it little; the state gives it the hidden size's worth, and a
    student whose state is the teacher's decides as the teacher does, the head being the same."""
    loss = decision_loss(outputs.logits.float(), targets[:, :3])
    if targets.shape[1] > 3:
        teacher = targets[:, 3:]
        student = outputs.hidden_states[-1][:, 0].float()
        loss = loss + ((student - teacher) ** 2).mean() / teacher.var().clamp_min(1e-6)
    return loss


def teacher_targets(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    *,
    states: bool,
    batch_size: int = 32,
) -> np.ndarray:
    """One row per text, in `texts`' order: the teacher's three log-probabilities and, with
    `states`, its last-layer state of the first token (what its head reads), from one pass in
    batches of like lengths."""
    import torch

    def read(outputs: Any) -> Any:
        log_p = torch.log_softmax(outputs.logits.float(), dim=-1)
        return torch.cat([log_p, outputs.hidden_states[-1][:, 0].float()], 1) if states else log_p

    width = 3 + (int(model.config.hidden_size) if states else 0)
    return by_length(
        texts,
        lambda batch: read_outputs(
            model,
            tokenizer,
            batch,
            max_length,
            read,
            width=width,
            hidden_states=states,
            batch_size=batch_size,
        ),
    )


def decision_rank(logits: np.ndarray, targets: np.ndarray) -> float:
    """Spearman's rank correlation of the student's P(LABEL_0) (from its `logits`) with the
    teacher's (from its log-probabilities `targets`) over the held-out prompts: the router's
    decisions are those ranks cut at a threshold, so this is how alike they are at every one."""
    from scipy.stats import spearmanr

    shifted = logits - logits.max(axis=1, keepdims=True)
    student = shifted[:, 0] - np.log(np.exp(shifted).sum(axis=1))
    return float(spearmanr(student, targets[:, 0]).statistic)


def by_length(texts: Sequence[str], compute: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """`compute`'s rows for `texts`, in their order, computed on them sorted by length (so that
    each batch it pads is padded to a like length)."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    sorted_rows = compute([texts[i] for i in order])
    out = np.empty_like(sorted_rows)
    out[order] = sorted_rows
    return out


def agreement(teacher: np.ndarray, student: np.ndarray) -> dict[str, float]:
    out = {}
    for share in SHARES:
        t_cut = float(np.quantile(teacher, 1 - share))
        s_cut = float(np.quantile(student, 1 - share))
        out[f"calibrated_{share:g}"] = float(np.mean((teacher >= t_cut) == (student >= s_cut)))
        out[f"same_{share:g}"] = float(np.mean((teacher >= t_cut) == (student >= t_cut)))
    return out


def distil(teacher_dir: str, prompts: Sequence[str], options: DistilOptions) -> DistilResult:
    """Train the student on the teacher's probabilities, save it to `options.out`, and
    measure it against the teacher on held-out prompts."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if len(prompts) < 4:
        raise SettingsError(f"--prompts: {len(prompts)} prompts; distilling needs at least 4")
    device = resolve_device(options.fit.device)
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).to(device)
    teacher_tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    order = [prompts[i] for i in np.random.default_rng(options.fit.seed).permutation(len(prompts))]
    cut = max(1, round(len(order) * options.holdout))
    held, kept = order[:cut], order[cut:]
    # A student built from the teacher has its head and state size: it also learns the state
    # that head reads (`student_loss`).
    from_itself = options.base is None
    log_targets = teacher_targets(
        teacher, teacher_tokenizer, order, options.fit.max_length, states=from_itself
    )
    teacher_layers = int(teacher.config.num_hidden_layers)
    if from_itself:  # from the teacher already loaded: a base-size model is not read twice
        student, _ = from_teacher(teacher, options.layers)
        tokenizer = teacher_tokenizer
    else:
        student, tokenizer = load_base(str(options.base))
    del teacher
    student.to(device)

    def rows(texts: Sequence[str], offset: int) -> list[dict[str, Any]]:
        return [
            {"text": t, "targets": log_targets[offset + i].tolist()} for i, t in enumerate(texts)
        ]

    fitted = fit(
        student,
        tokenizer,
        rows(kept, cut),
        sorted(rows(held, 0), key=lambda row: len(row["text"])),  # batches of like lengths
        options.fit,
        work_dir=options.out / ".trainer",
        soft=student_loss,
        score=decision_rank,
    )
    max_length = options.fit.max_length
    student_p0 = by_length(held, lambda t: probabilities(student, tokenizer, t, max_length))[:, 0]
    teacher_p0 = np.exp(log_targets[:cut, 0])
    student.save_pretrained(options.out)
    tokenizer.save_pretrained(options.out)
    result = DistilResult(
        str(options.out),
        teacher_layers,
        int(student.config.num_hidden_layers),
        len(held),
        agreement(teacher_p0, student_p0),
        float(np.max(np.abs(student_p0 - teacher_p0))),
        fitted,
    )
    if options.speed_prompts > 0:
        timed = [held[i % len(held)] for i in range(options.speed_prompts)]
        figures = asyncio.run(speed(teacher_dir, str(options.out), timed, options.fit.max_length))
        result = dataclasses.replace(result, speed=figures)
    return result


async def speed(
    teacher: str, student: str, prompts: Sequence[str], max_length: int
) -> dict[str, float]:
    """Prompts/s of both models through `LocalClassifier` (its ONNX Runtime path for float32
    and int8 on CPU), with 1 and 16 callers each sending its share of `prompts`, and the ratios.
    Each cached prompt is distinct per round, so nothing is served from the result cache."""
    from classifier.local import LocalClassifier

    figures: dict[str, float] = {}
    for dtype in DTYPES:
        for name, model in (("teacher", teacher), ("student", student)):
            settings = ClassifierSettings(
                model=model, dtype=dtype, device="cpu", max_length=max_length, cache_size=0
            )
            classifier = await asyncio.to_thread(LocalClassifier.load, settings)
            try:
                for callers in CALLERS:
                    figures[f"{name}_{dtype}_{callers}"] = await _rate(classifier, prompts, callers)
            finally:
                await classifier.aclose()
        for callers in CALLERS:
            figures[f"ratio_{dtype}_{callers}"] = (
                figures[f"student_{dtype}_{callers}"] / figures[f"teacher_{dtype}_{callers}"]
            )
    return figures


async def _rate(classifier: Any, prompts: Sequence[str], callers: int) -> float:
    queue = list(prompts)

    async def caller() -> None:
        while queue:
            await classifier.classify([queue.pop()])

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return len(prompts) / (time.perf_counter() - started)
