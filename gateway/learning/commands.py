"""The quality subcommands of `routellm-gateway`: `evaluate`, `train` and `distil`.

Each parses its arguments, runs, prints, and returns the exit status: 0, or 2 with one line
on stderr for anything the user can fix (a bad file, an unknown router, a base that does not
load)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from classifier.base import Classifier, ClassifierError
from classifier.settings import DtypeSetting, SettingsError
from gateway.learning.evaluate import OnDemand, RouterReport
from gateway.learning.examples import Read, exclude_argument, read_all, read_excluded
from gateway.learning.fitting import FitOptions
from gateway.settings.load import Settings, load_settings

__all__ = ["MAINS"]


def _fail(command: str, exc: BaseException) -> int:
    print(f"routellm-gateway {command}: {exc}", file=sys.stderr)
    return 2


def _data_arguments(parser: argparse.ArgumentParser, strong_required: bool) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        required=True,
        metavar="FILE",
        help="labelled prompts: RouteLLM's benchmark CSV (prompt + one True/False column per "
        "model), MT-Bench judgements.jsonl, Arena battle rows, a ledger export with verdicts "
        "or feedback, or evaluate's JSONL",
    )
    parser.add_argument(
        "--strong", required=strong_required, help="the data's name for the strong model"
    )
    parser.add_argument("--weak", required=strong_required, help="the data's name for the weak")
    parser.add_argument("--questions", type=Path, help="MT-Bench's question.jsonl")
    exclude_argument(parser)


def _read(ns: argparse.Namespace, strong: str, weak: str) -> Read:
    return read_all(
        ns.data, strong, weak, questions=ns.questions, exclude=read_excluded(ns.exclude)
    )


def _many(argv: Sequence[str]) -> bool:
    """Many-model data: `--models` names the models (`gateway.learning.many_commands`)."""
    return any(a == "--models" or a.startswith("--models=") for a in argv)


def evaluate_main(argv: Sequence[str]) -> int:
    """`evaluate`: routers side by side on labelled prompts, with RouteLLM's APGR and CPT and
    their bootstrap intervals, beside random routing (see `gateway.learning.evaluate`); with
    `--models`, many-model router directories (`gateway.learning.many_commands`)."""
    if _many(argv):
        from gateway.learning.many_commands import evaluate_many_main

        return evaluate_many_main(argv)
    parser = argparse.ArgumentParser(
        prog="routellm-gateway evaluate",
        description="Classify labelled prompts with each router, then print the first router's "
        "strong-call share and quality per threshold and, for every router, APGR, CPT(50%) "
        "and CPT(80%) with 95% bootstrap intervals, beside random routing. With --models "
        "A,B,...: many-model router directories (see 'evaluate --models A,B --help').",
    )
    _data_arguments(parser, strong_required=False)
    parser.add_argument(
        "--router",
        action="append",
        default=[],
        help="router, router-bert-<t> or a name under routers: (a strong/weak router), with the "
        "configured classifier; repeat to compare. Default: router, when no --checkpoint",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        help="a router checkpoint directory (e.g. from train or distil); repeat to compare",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG of quality against strong share")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--config", help="YAML file of upstreams/models/routing (ROUTELLM_CONFIG)")
    ns = parser.parse_args(argv)
    try:
        settings = load_settings(os.environ, ns.config)
        reports, read = asyncio.run(_evaluate(settings, ns))
        if ns.plot is not None:
            from gateway.learning.evaluate import plot

            plot(reports, ns.plot)
    except (SettingsError, ClassifierError, OSError) as exc:
        return _fail("evaluate", exc)
    from gateway.learning.evaluate import format_report, to_json

    if ns.json:
        print(json.dumps(to_json(reports), indent=2))
    else:
        print(format_report(reports, read.skipped, read.excluded))
    if ns.plot is not None:
        print(f"# plot written to {ns.plot}", file=sys.stderr)
    return 0


async def _evaluate(settings: Settings, ns: argparse.Namespace) -> tuple[list[RouterReport], Read]:
    from gateway.errors import GatewayError
    from gateway.learning.evaluate import evaluate
    from gateway.routing.checkpoints import mf_options
    from gateway.routing.decider import Decider
    from gateway.settings.routing import MF_ROUTER
    from routers.mf import DEFAULT_MF_MODEL, open_mf

    names: list[str] = ns.router or ([] if ns.checkpoint else ["router"])
    configured = OnDemand(settings.classifier)
    # router-mf-<t> is a name the decider knows once an MF router is there; opened per arm.
    decider = Decider(settings, configured, {MF_ROUTER: configured} if settings.mf_model else None)
    opened: list[Classifier] = [configured]
    try:
        arms: list[tuple[str, float, str | None, str | None, Classifier]] = []
        for name in names:
            try:
                policy = decider.policy(name)
            except GatewayError as exc:
                raise SettingsError(f"--router: {exc.message}") from None
            spec = policy.router
            if spec is None or not (spec.strong and spec.weak):
                raise SettingsError(
                    f"--router {name!r} does not choose between a strong and a weak model: name "
                    "router, router-bert-<t> or a strong/weak router under routers:"
                )
            threshold = policy.threshold if policy.threshold is not None else spec.threshold
            # A router with its own checkpoint (`routers.<name>.classifier`) is judged on it.
            classifier: Classifier = configured
            if spec.name == MF_ROUTER or spec.classifier_kind == "mf":
                source = spec.classifier or settings.mf_model or DEFAULT_MF_MODEL
                classifier = await open_mf(source, mf_options(settings, spec.mf_pair))
                opened.append(classifier)
            elif spec.classifier is not None:
                classifier = _on_demand(settings, spec.classifier, spec.dtype)
                opened.append(classifier)
            arms.append((name, threshold, spec.strong, spec.weak, classifier))
        for directory in ns.checkpoint:
            classifier = _on_demand(settings, str(directory), None)
            opened.append(classifier)
            threshold = arms[0][1] if arms else 0.5
            arms.append((str(directory), threshold, None, None, classifier))
        strong = ns.strong or arms[0][2]
        weak = ns.weak or arms[0][3]
        if strong is None or weak is None:
            raise SettingsError("name the data's models with --strong and --weak")
        read = _read(ns, strong, weak)
        reports = [
            # Recorded scores (a ledger export) stand only for the configured classifier.
            await evaluate(read.examples, c, t, name, recorded=c is configured)
            for name, t, _, _, c in arms
        ]
        return reports, read
    finally:
        for classifier in opened:
            await classifier.aclose()


def _on_demand(settings: Settings, checkpoint: str, dtype: DtypeSetting | None) -> OnDemand:
    own = dataclasses.replace(
        settings.classifier, model=checkpoint, dtype=dtype or settings.classifier.dtype, url=None
    )
    return OnDemand(own)


def _fit_arguments(
    parser: argparse.ArgumentParser,
    epochs: float,
    learning_rate: float,
    patience: int = 1,
    watched: str = "held-out loss",
) -> None:
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint directory")
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share (0.2)")
    parser.add_argument("--epochs", type=float, default=epochs, help=f"most epochs ({epochs:g})")
    parser.add_argument("--batch-size", type=int, default=16, help="examples per step (16)")
    parser.add_argument(
        "--learning-rate", type=float, default=learning_rate, help=f"step size ({learning_rate:g})"
    )
    parser.add_argument("--max-length", type=int, default=512, help="tokens read per prompt")
    parser.add_argument(
        "--patience",
        type=int,
        default=patience,
        help=f"epochs without a better {watched} before stopping ({patience})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and training (0)")
    parser.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train: auto (cuda when available), cpu or cuda",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _fit_options(ns: argparse.Namespace) -> FitOptions:
    return FitOptions(
        epochs=ns.epochs,
        batch_size=ns.batch_size,
        learning_rate=ns.learning_rate,
        max_length=ns.max_length,
        seed=ns.seed,
        patience=ns.patience,
        device=ns.device,
        progress=not ns.no_progress,
    )


def train_main(argv: Sequence[str]) -> int:
    """`train`: fine-tune a 3-label router on labelled prompts (see `gateway.learning.train`);
    with `--models`, a many-model router (`gateway.learning.many_commands`)."""
    if _many(argv):
        from gateway.learning.many_commands import train_many_main

        return train_many_main(argv)
    parser = argparse.ArgumentParser(
        prog="routellm-gateway train",
        description="Fine-tune a router: LABEL_0 the strong model's answer wins, LABEL_1 a tie, "
        "LABEL_2 the weak model's wins. Early stopping on the held-out loss; the output loads "
        "like routellm/bert_gpt4_augmented and carries a model card with held-out APGR and CPT. "
        "With --models A,B,... instead of --strong/--weak: a many-model router (see "
        "'train --models A,B --help').",
    )
    _data_arguments(parser, strong_required=True)
    parser.add_argument(
        "--base",
        required=True,
        help="a checkpoint directory or hub id: the current router to fine-tune it, or any "
        "encoder for a smaller router",
    )
    parser.add_argument(
        "--split-by",
        default="random",
        help="random, or a key whose groups are held out whole (e.g. domain for MMLU)",
    )
    parser.add_argument(
        "--train-layers",
        type=int,
        help="train only the top N encoder layers and the head (faster on a CPU); default: all",
    )
    _fit_arguments(parser, epochs=3.0, learning_rate=3e-5)
    ns = parser.parse_args(argv)
    from gateway.learning.train import TrainOptions, split, train

    try:
        read = _read(ns, ns.strong, ns.weak)
        held, kept = split(read.examples, ns.split_by, ns.holdout, ns.seed)
        options = TrainOptions(
            base=ns.base,
            out=ns.out,
            fit=_fit_options(ns),
            data=read.files,
            split=ns.split_by,
            holdout=ns.holdout,
            excluded=read.excluded,
            strong=ns.strong,
            weak=ns.weak,
            train_layers=ns.train_layers,
        )
        print(
            f"# {len(kept)} examples to train on, {len(held)} held out by {ns.split_by}; "
            f"{read.skipped} rows skipped, {read.excluded} excluded",
            file=sys.stderr,
        )
        report = train(kept, held, options)
    except (SettingsError, OSError) as exc:
        return _fail("train", exc)
    from gateway.learning.evaluate import format_report

    print(format_report([report]))
    print(f"# checkpoint written to {ns.out} (model card: {ns.out / 'README.md'})", file=sys.stderr)
    return 0


def distil_main(argv: Sequence[str]) -> int:
    """`distil`: a smaller student matching a teacher router (see `gateway.learning.distil`)."""
    parser = argparse.ArgumentParser(
        prog="routellm-gateway distil",
        description="Train a student to match the teacher's three probabilities on unlabelled "
        "prompts; print decision agreement at 25/50/75% strong shares, the largest change in "
        "P(LABEL_0) and the speed ratio, on held-out prompts.",
    )
    parser.add_argument("--teacher", required=True, help="the teacher's checkpoint directory")
    parser.add_argument(
        "--prompts",
        type=Path,
        nargs="+",
        required=True,
        metavar="FILE",
        help="JSONL {'prompt': ...}, a CSV's prompt column, or one prompt per line",
    )
    student = parser.add_mutually_exclusive_group()
    student.add_argument(
        "--layers",
        type=int,
        help="teacher layers the student keeps, evenly spaced down from the last (half)",
    )
    student.add_argument("--base", help="build the student from this checkpoint instead")
    parser.add_argument(
        "--speed-prompts", type=int, default=128, help="prompts timed per speed figure (0: none)"
    )
    from gateway.learning.distil import DISTIL_FIT, DistilOptions, distil
    from gateway.learning.examples import read_prompts

    _fit_arguments(
        parser,
        DISTIL_FIT.epochs,
        DISTIL_FIT.learning_rate,
        DISTIL_FIT.patience,
        watched="held-out ranking of P(LABEL_0) against the teacher's",
    )
    ns = parser.parse_args(argv)

    try:
        prompts = [p for path in ns.prompts for p in read_prompts(path)]
        options = DistilOptions(
            out=ns.out,
            layers=ns.layers,
            base=ns.base,
            holdout=ns.holdout,
            fit=_fit_options(ns),
            speed_prompts=ns.speed_prompts,
        )
        result = distil(ns.teacher, prompts, options)
    except (SettingsError, ClassifierError, OSError) as exc:
        return _fail("distil", exc)
    print(
        f"student {result.student}: {result.student_layers} of the teacher's "
        f"{result.teacher_layers} layers; {result.held_out} held-out prompts"
    )
    for share in (0.25, 0.5, 0.75):
        print(
            f"agreement at {share:.0%} strong: {result.agreement[f'calibrated_{share:g}']:.1%} "
            f"(each at its own threshold), {result.agreement[f'same_{share:g}']:.1%} "
            "(the teacher's threshold)"
        )
    print(f"largest change in P(LABEL_0): {result.max_delta:.4f}")
    for key, value in result.speed.items():
        unit = "x" if key.startswith("ratio") else " prompts/s"
        print(f"{key}: {value:.2f}{unit}")
    return 0


MAINS: dict[str, Callable[[Sequence[str]], int]] = {
    "evaluate": evaluate_main,
    "train": train_main,
    "distil": distil_main,
}
