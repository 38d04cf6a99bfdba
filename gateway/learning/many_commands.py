"""The many-model subcommands: `train --models ...`, `evaluate --models ...` and
`calibrate --router DIR ...` (whose parser is `gateway.cli`'s).

Each parses, runs, prints and returns the exit status: 0, or 2 with one line on stderr for
anything the user can fix. `--models` lists the data's columns, `column=name` giving one a
configured model's name (`gateway.learning.matrix`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from classifier.base import ClassifierError
from classifier.settings import SettingsError
from gateway.learning.evaluate import RouterReport
from gateway.learning.examples import exclude_argument, read_excluded
from gateway.learning.heads_fit import DEFAULT, HeadSpec
from gateway.learning.matrix import Matrix, ModelColumns, parse_models, read_matrix
from gateway.learning.prices import blended_prices, configured_prices, read_prices_csv
from gateway.settings.prices import Price
from routers.encoders import DEFAULT_ENCODER, REMOTE_PREFIX, EmbeddingsApi
from routers.manifest import read_manifest

__all__ = ["calibrate_router", "evaluate_many_main", "train_many_main"]

MODELS_HELP = (
    "the data's model columns, comma-separated, e.g. A,B,C; column=name gives a column the "
    "configured model's name (mistralai/Mixtral-8x7B-Instruct-v0.1=mixtral)"
)
DATA_HELP = (
    "labelled prompts: a CSV with a prompt column and one score column per model (1/0, "
    "True/False or 0-1; empty = unknown), MMLU-Pro's model_outputs_<model>_5shots.zip files, "
    "Arena battles, a ledger export with verdicts or feedback, or evaluate's JSONL"
)


def _fail(command: str, exc: BaseException) -> int:
    print(f"routellm-gateway {command}: {exc}", file=sys.stderr)
    return 2


def data_arguments(parser: argparse.ArgumentParser) -> None:
    """--data, --models, --exclude, the split and the embedding cache (train and evaluate)."""
    parser.add_argument(
        "--data", type=Path, nargs="+", required=True, metavar="FILE", help=DATA_HELP
    )
    parser.add_argument("--models", required=True, help=MODELS_HELP)
    exclude_argument(parser)
    parser.add_argument(
        "--split-by",
        default="random",
        help="random, or a key whose groups are held out whole (e.g. category)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    parser.add_argument(
        "--embedding-cache",
        type=Path,
        metavar="DIR",
        help="where embeddings are cached by content (default: the user's "
        "cache directory, routellm-gateway/embeddings)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def prices_argument(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help=f"{what}: a CSV of model, input_usd_per_mtok, output_usd_per_mtok "
        "(USD per million tokens); the config's models.<name>.price also count",
    )


def _read(ns: argparse.Namespace) -> tuple[Matrix, ModelColumns]:
    columns = parse_models(ns.models)
    return read_matrix(ns.data, columns, exclude=read_excluded(ns.exclude)), columns


def _prices(path: Path | None, config: str | None, models: Sequence[str]) -> np.ndarray:
    found: dict[str, Price] = {}
    if config is not None:
        from gateway.settings.load import load_settings

        found |= configured_prices(load_settings(os.environ, config))
    if path is not None:
        found |= read_prices_csv(path)
    return blended_prices(models, found)


def train_many_main(argv: Sequence[str]) -> int:
    """`train --models ...`: an embedding router directory (`gateway.learning.router_training`)."""
    parser = argparse.ArgumentParser(
        prog="routellm-gateway train --models",
        description="Train a many-model router: a sentence encoder (frozen, embeddings cached) "
        "and a head that predicts each model's probability of a good answer. Writes a router "
        "directory (router.json, head.npz, README.md with the held-out figures).",
    )
    data_arguments(parser)
    parser.add_argument("--out", type=Path, required=True, help="the router directory")
    parser.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"a sentence-transformers directory or hub id ({DEFAULT_ENCODER}), or "
        "remote:<model> for that model on the embeddings API (ROUTELLM_EMBEDDINGS_URL, or "
        "`embeddings:` in --config)",
    )
    parser.add_argument(
        "--head",
        choices=("knn", "linear"),
        default=DEFAULT.kind,
        help=f"knn or linear (default {DEFAULT.kind}, measured best)",
    )
    parser.add_argument("--holdout", type=float, default=0.2, help="held-out share (0.2)")
    parser.add_argument("--k", type=int, default=DEFAULT.k, help=f"knn: neighbours ({DEFAULT.k})")
    parser.add_argument(
        "--prior-weight",
        type=float,
        help="knn: pseudo-neighbours at each model's mean (default: 2/3 of the neighbours used)",
    )
    parser.add_argument(
        "--c-shared",
        type=float,
        default=DEFAULT.c_shared,
        help=f"linear: inverse L2 of the shared part ({DEFAULT.c_shared})",
    )
    parser.add_argument(
        "--c-own",
        type=float,
        default=DEFAULT.c_own,
        help=f"linear: inverse L2 of each model's own part ({DEFAULT.c_own})",
    )
    prices_argument(parser, "for the model card's accuracy-cost figures (optional)")
    parser.add_argument("--config", help="YAML file of upstreams/models (for model prices)")
    ns = parser.parse_args(argv)
    from gateway.learning.router_training import RouterTrainOptions, split_matrix, train_router

    try:
        matrix, columns = _read(ns)
        prices = None
        if ns.prices is not None or ns.config is not None:
            prices = _prices(ns.prices, ns.config, columns.names)
        held, kept = split_matrix(matrix, ns.split_by, ns.holdout, ns.seed)
        print(
            f"# {len(kept.texts)} prompts to train on, {len(held.texts)} held out by "
            f"{ns.split_by}; {matrix.skipped} rows skipped",
            file=sys.stderr,
        )
        head = HeadSpec(
            ns.head, k=ns.k, prior_weight=ns.prior_weight, c_shared=ns.c_shared, c_own=ns.c_own
        )
        options = RouterTrainOptions(
            out=ns.out,
            encoder=ns.encoder,
            head=head,
            split=ns.split_by,
            holdout=ns.holdout,
            seed=ns.seed,
            columns=columns.columns,
            prices=prices,
            cache_dir=ns.embedding_cache,
            progress=not ns.no_progress,
            embeddings=_embeddings_api(ns.encoder, ns.config),
        )
        trained = train_router(kept, held, options)
    except (SettingsError, ClassifierError, OSError, ValueError) as exc:
        return _fail("train", exc)
    print(
        json.dumps(
            {
                "version": trained.manifest.version,
                "seconds": trained.seconds,
                "held_out": trained.figures,
            },
            indent=2,
            default=float,
        )
    )
    print(
        f"# router directory written to {ns.out} (model card: {ns.out / 'README.md'})",
        file=sys.stderr,
    )
    return 0


def _embeddings_api(encoder: str, config: str | None) -> EmbeddingsApi | None:
    """For a `remote:<model>` encoder: the embeddings API the settings name."""
    if not encoder.startswith(REMOTE_PREFIX):
        return None
    from gateway.settings.load import load_settings

    return load_settings(os.environ, config).embeddings


def held_side(ns: argparse.Namespace, matrix: Matrix) -> Matrix:
    """The rows to judge on: the held-out side of `train`'s split with the same --holdout,
    --split-by and --seed, or every row when --holdout is 0."""
    if not ns.holdout:
        return matrix
    from gateway.learning.router_training import split_matrix

    return split_matrix(matrix, ns.split_by, ns.holdout, ns.seed)[0]


def evaluate_many_main(argv: Sequence[str]) -> int:
    """`evaluate --models ...`: router directories on many-model data (`tradeoff`)."""
    parser = argparse.ArgumentParser(
        prog="routellm-gateway evaluate --models",
        description="Judge router directories on the same labelled prompts, as RouterBench "
        "does: accuracy against mean cost per request for a sweep of the cost weight, best "
        "accuracy, accuracy at the best single model's cost, the cost to match it, AIQ against "
        "the single models' hull and step curve, with 95% bootstrap intervals; random and "
        "oracle beside them. Two models also get APGR and CPT.",
    )
    data_arguments(parser)
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        type=Path,
        required=True,
        help="a router directory (from train --models); repeat to compare",
    )
    parser.add_argument(
        "--holdout",
        type=float,
        default=0.0,
        help="judge on the held-out side of train's split (same --split-by and "
        "--seed); 0 (default): every row",
    )
    prices_argument(parser, "model prices")
    parser.add_argument("--config", help="YAML file of upstreams/models (for model prices)")
    parser.add_argument("--plot", type=Path, help="write a PNG of accuracy against cost")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    ns = parser.parse_args(argv)
    from gateway.learning import tradeoff
    from gateway.learning.predict import predict_directory

    try:
        matrix, columns = _read(ns)
        judged = held_side(ns, matrix).complete()
        if not judged.texts:
            raise SettingsError("no rows where every model named in --models has a quality")
        prices = _prices(ns.prices, ns.config, columns.names)
        priced = float(prices.max()) > float(prices.min())
        if not priced and len(columns.names) > 2:
            raise SettingsError("the models cost the same: there is no cost range to judge on")
        predicted = {
            str(d): predict_directory(
                d,
                judged.texts,
                columns.names,
                cache_dir=ns.embedding_cache,
                progress=not ns.no_progress,
                api=_embeddings_api(read_manifest(d).encoder or "", ns.config),
            )
            for d in ns.checkpoint
        }
        reports, refs = [], None
        if priced:  # two models at one price: APGR and CPT only
            refs = tradeoff.references(judged.labels, prices, columns.names)
            reports = [tradeoff.judge(n, p, judged.labels, prices) for n, p in predicted.items()]
            if ns.plot is not None:
                tradeoff.plot_tradeoff(reports, refs, ns.plot)
        pairs = _two_models(predicted, judged) if len(columns.names) == 2 else []
    except (SettingsError, ClassifierError, OSError, ValueError) as exc:
        return _fail("evaluate", exc)
    from gateway.learning.evaluate import format_report, to_json

    if ns.json:
        out = tradeoff.to_json(reports, refs) if refs is not None else {}
        if pairs:
            out["two_models"] = to_json(pairs)
        print(json.dumps(out, indent=2))
    else:
        if refs is not None:
            print(tradeoff.format_tradeoff(reports, refs) + "\n")
        if pairs:
            print(format_report(pairs))
    if ns.plot is not None and refs is not None:
        print(f"# plot written to {ns.plot}", file=sys.stderr)
    return 0


def _two_models(predicted: dict[str, np.ndarray], judged: Matrix) -> list[RouterReport]:
    """APGR and CPT of each router on two-model data: the more accurate model is the strong
    one, and the router's P(strong) is its predicted quality gap (the cost weight's sweep
    orders prompts the same way)."""
    from gateway.learning.evaluate import summarise
    from gateway.learning.examples import Example

    means = judged.labels.mean(0)
    s, w = (0, 1) if means[0] >= means[1] else (1, 0)
    examples = [Example(None, None, float(r[s]), float(r[w])) for r in judged.labels]
    return [
        summarise(name, p[:, s] - p[:, w], examples, 0.0, 1000) for name, p in predicted.items()
    ]


def calibrate_router(ns: argparse.Namespace) -> int:
    """`calibrate --router DIR --data FILE... (--cost-share S | --quality-share Q)`: the cost
    weight meeting the target on labelled prompts (`gateway.learning.weights`)."""
    from gateway.learning.predict import predict_directory
    from gateway.learning.weights import calibrate_weight

    try:
        if not ns.data or (ns.cost_share is None) == (ns.quality_share is None):
            raise SettingsError(
                "--router needs --data FILE... and one of --cost-share or --quality-share"
            )
        models = ns.models or ",".join(read_manifest(ns.router).models)
        columns = parse_models(models)
        judged = held_side(ns, read_matrix(ns.data, columns)).complete()
        if not judged.texts:
            raise SettingsError("no rows where every model has a quality: name them in --models")
        prices = _prices(ns.prices, ns.config, columns.names)
        api = _embeddings_api(read_manifest(ns.router).encoder or "", ns.config)
        predicted = predict_directory(ns.router, judged.texts, columns.names, api=api)
        found = calibrate_weight(
            predicted,
            prices,
            cost_share=ns.cost_share,
            quality_share=ns.quality_share,
            quality=judged.labels,
        )
    except (SettingsError, ClassifierError, OSError, ValueError) as exc:
        return _fail("calibrate", exc)
    strongest = columns.names[found.strongest]
    print(f"{found.cost_weight:.5g}")
    print(
        f"# {len(judged.texts)} prompts; at cost_weight {found.cost_weight:.5g}: mean cost "
        f"{found.cost:.4f} USD per million tokens (blended), {found.cost_share:.1%} of "
        f"{strongest}'s price, {found.quality_share:.1%} of its quality kept",
        file=sys.stderr,
    )
    return 0
