"""`routellm-gateway`: run the gateway, `calibrate` a `router-bert-<t>` threshold, or
`evaluate` a router on labelled prompts."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from classifier.base import ClassifierError
from classifier.logs import configure_logging, logging_config
from classifier.settings import SettingsError
from gateway.settings.load import Settings, load_settings
from routers.mf import DEFAULT_MF_MODEL


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["calibrate"]:
        return calibrate_main(args[1:])
    if args[:1] in (["evaluate"], ["train"], ["distil"]):
        from gateway.learning import commands

        return commands.MAINS[args[0]](args[1:])
    parser = argparse.ArgumentParser(
        prog="routellm-gateway",
        description="OpenAI-compatible gateway that routes each request with RouteLLM's BERT "
        "router. Subcommands: 'calibrate (--prompts FILE | --from-ledger [--since T]) "
        "[--strong-share S]', 'evaluate --data FILE... [--router NAME]... [--checkpoint DIR]...', "
        "'train --data FILE... --strong NAME --weak NAME --base MODEL --out DIR', "
        "'distil --teacher DIR --prompts FILE... --out DIR' (each with --help).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=6060, help="port (default: 6060)")
    parser.add_argument("--config", help="YAML file of upstreams/models/routing (ROUTELLM_CONFIG)")
    ns = parser.parse_args(args)
    try:
        settings = load_settings(os.environ, ns.config)
    except SettingsError as exc:
        print(f"routellm-gateway: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format)

    from classifier import open_classifier
    from gateway.app import create_app
    from gateway.drain import serve

    # An in-process model is loaded before the server starts, so one that cannot load is one
    # line, not the traceback uvicorn prints for a failed lifespan (its batcher serves any
    # event loop). A remote classifier only opens a connection pool: the lifespan does that.
    classifier = None
    if not settings.classifier.url:
        try:
            classifier = asyncio.run(open_classifier(settings.classifier))
        except ClassifierError as exc:
            print(f"routellm-gateway: {exc}", file=sys.stderr)
            return 2
    config = ns.config
    app = create_app(
        settings, classifier=classifier, reload=lambda: load_settings(os.environ, config)
    )
    try:
        started = serve(
            app,
            app.state.drain,
            host=ns.host,
            port=ns.port,
            loop="uvloop",
            http="httptools",
            access_log=False,
            log_config=logging_config(settings.log_format),
        )
    finally:
        if classifier is not None:
            asyncio.run(classifier.aclose())
    return 0 if started else 3  # 3: uvicorn's status for a server that failed to start


def calibrate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="routellm-gateway calibrate",
        description="Print the router-bert-<t> threshold that sends the share S of these prompts "
        "to the strong model (RouteLLM's method: the 1-S quantile of P(LABEL_0)). It holds for "
        "traffic like these prompts only.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--prompts", type=Path, help="prompts like your traffic: JSONL {'prompt': ...} or a CSV"
    )
    source.add_argument(
        "--from-ledger",
        action="store_true",
        help="use the P(LABEL_0) recorded in the decision ledger (ROUTELLM_LEDGER)",
    )
    parser.add_argument("--since", help="with --from-ledger: unix seconds, ISO-8601, or 7d/24h")
    parser.add_argument(
        "--strong-share",
        type=float,
        default=0.5,
        help="share of the prompts to send to the strong model, 0 to 1 (default: 0.5)",
    )
    parser.add_argument(
        "--mf",
        action="store_true",
        help="with --prompts: score them with RouteLLM's MF router (ROUTELLM_MF_MODEL, "
        "ROUTELLM_MF_PAIR, ROUTELLM_EMBEDDINGS_URL) and print a router-mf-<t> threshold",
    )
    parser.add_argument(
        "--shares",
        help="for tiers: the share of each tier, strongest first, e.g. 0.2,0.5,0.3; prints one "
        "min_win_rate per tier but the last",
    )
    source.add_argument(
        "--router",
        type=Path,
        metavar="DIR",
        help="a many-model router directory: print the cost_weight meeting --cost-share or "
        "--quality-share on --data (labelled prompts it was not trained on)",
    )
    many = parser.add_argument_group("many-model routers (--router DIR)")
    many.add_argument("--data", type=Path, nargs="+", metavar="FILE", help="labelled prompts")
    many.add_argument("--models", help="the data's model columns (default: the router's models)")
    many.add_argument("--prices", type=Path, metavar="FILE", help="a prices CSV (USD per Mtok)")
    target = many.add_mutually_exclusive_group()
    target.add_argument(
        "--cost-share", type=float, help="mean cost per request over the strongest model's price"
    )
    target.add_argument(
        "--quality-share", type=float, help="share of the strongest model's quality to keep"
    )
    many.add_argument(
        "--router-name",
        metavar="NAME",
        help="with --from-ledger: a configured many-model router; print the cost_weight meeting "
        "--cost-share or --quality-share on the predictions its decisions recorded",
    )
    many.add_argument("--holdout", type=float, default=0.0, help="train's held-out share (all)")
    many.add_argument("--split-by", default="random", help="train's --split-by (random)")
    many.add_argument("--seed", type=int, default=0, help="train's --seed (0)")
    parser.add_argument("--config", help="YAML file of upstreams/models/routing (ROUTELLM_CONFIG)")
    ns = parser.parse_args(argv)
    if ns.router is not None:
        from gateway.learning.many_commands import calibrate_router

        return calibrate_router(ns)
    if ns.mf and (ns.prompts is None or ns.shares is not None):
        print(
            "routellm-gateway calibrate: --mf goes with --prompts (one threshold)", file=sys.stderr
        )
        return 2
    if ns.shares is not None:
        return _calibrate_tiers(ns.shares, ns.prompts, ns.since, ns.config)
    if not 0.0 <= ns.strong_share <= 1.0:
        print("routellm-gateway calibrate: --strong-share must be between 0 and 1", file=sys.stderr)
        return 2
    if ns.from_ledger and ns.router_name is not None:
        return _weight_from_ledger(ns)
    if ns.from_ledger:
        return _calibrate_from_ledger(ns.config, ns.since, ns.strong_share)
    try:
        settings = load_settings(os.environ, ns.config)
        from gateway.learning.examples import read_prompts

        prompts = read_prompts(ns.prompts)
        threshold = asyncio.run(_calibrate(settings, prompts, ns.strong_share, ns.mf))
    except (SettingsError, ClassifierError, OSError) as exc:
        print(f"routellm-gateway calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"{threshold:.5f}")
    checkpoint = (
        (settings.mf_model or DEFAULT_MF_MODEL)
        if ns.mf
        else settings.classifier.url or settings.classifier.model
    )
    print(
        f"# {len(prompts)} prompts; use model 'router-{'mf' if ns.mf else 'bert'}-{threshold:.5f}' "
        f"to send about {ns.strong_share:.0%} of similar traffic to the strong model",
        f"\n# checkpoint: {checkpoint}",
        file=sys.stderr,
    )
    return 0


async def _calibrate(settings: Settings, prompts: list[str], share: float, mf: bool) -> float:
    import numpy as np

    return float(np.quantile(await _win_rates(settings, prompts, mf), 1.0 - share))


def _calibrate_tiers(
    raw_shares: str, prompts_path: Path | None, since: str | None, config: str | None
) -> int:
    """`calibrate --shares`: the `min_win_rate` of each tier but the last, so that the tiers
    answer those shares of the prompts, or of the ledger's classified requests when no prompts
    are given (quantiles of P(LABEL_0), as for one threshold)."""
    import numpy as np

    try:
        shares = [float(part) for part in raw_shares.split(",")]
    except ValueError:
        shares = []
    if len(shares) < 2 or any(not 0.0 <= s <= 1.0 for s in shares) or abs(sum(shares) - 1) > 1e-6:
        print(
            "routellm-gateway calibrate: --shares must be two or more numbers between 0 and 1 "
            "that add up to 1, strongest tier first, e.g. 0.2,0.5,0.3",
            file=sys.stderr,
        )
        return 2
    try:
        settings = load_settings(os.environ, config)
        if prompts_path is not None:
            from gateway.learning.examples import read_prompts

            rates = asyncio.run(_win_rates(settings, read_prompts(prompts_path)))
        else:
            rates = asyncio.run(_recorded_win_rates(settings, since))
    except (SettingsError, ClassifierError, ValueError, OSError) as exc:
        print(f"routellm-gateway calibrate: {exc}", file=sys.stderr)
        return 2
    if not rates:
        print("routellm-gateway calibrate: no classified requests to calibrate on", file=sys.stderr)
        return 2
    cumulative = np.cumsum(shares[:-1])
    thresholds = [float(np.quantile(rates, 1.0 - c)) for c in cumulative]
    for threshold in thresholds:
        print(f"{threshold:.5f}")
    models = [t.model for t in settings.tiers]
    if len(models) != len(shares):
        models = [f"<tier {i + 1} model>" for i in range(len(shares))]
    tiers: list[dict[str, object]] = [
        {"model": m, "min_win_rate": round(t, 5)} for m, t in zip(models, thresholds, strict=False)
    ]
    tiers.append({"model": models[-1]})
    print(
        f"# {len(rates)} prompts; for about {raw_shares} of similar traffic per tier set\n"
        f"ROUTELLM_TIERS='{json.dumps(tiers)}'",
        file=sys.stderr,
    )
    return 0


async def _win_rates(settings: Settings, prompts: list[str], mf: bool = False) -> list[float]:
    from classifier import open_classifier
    from gateway.routing.checkpoints import open_mf_of
    from gateway.routing.decider import STRONG_LABEL

    classifier = await (open_mf_of(settings) if mf else open_classifier(settings.classifier))
    try:
        scores = []
        for start in range(0, len(prompts), 64):
            scores += await classifier.classify(prompts[start : start + 64])
    finally:
        await classifier.aclose()
    return [s.get(STRONG_LABEL) for s in scores]


def _calibrate_from_ledger(config: str | None, since_text: str | None, share: float) -> int:
    """Print the threshold for `share` from recorded scores, then a table of strong share and
    cost at nearby thresholds (the ledger's what-if rule)."""
    from gateway.ledger.reports import parse_since

    try:
        settings = load_settings(os.environ, config)
        if not settings.ledger.enabled:
            raise SettingsError("ROUTELLM_LEDGER=off: there is no ledger to calibrate from")
        since = parse_since(since_text)
        threshold, table, count = asyncio.run(_ledger_table(settings, since, share))
    except (SettingsError, ValueError, OSError) as exc:
        print(f"routellm-gateway calibrate: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the store's own errors (SQLAlchemy), reported in one line
        print(f"routellm-gateway calibrate: cannot read the ledger ({exc})", file=sys.stderr)
        return 2
    if threshold is None:
        print("routellm-gateway calibrate: the ledger has no classified requests", file=sys.stderr)
        return 2
    print(f"{threshold:.5f}")
    print(
        f"# {count} requests classified by the default router in the ledger; "
        f"model 'router-bert-{threshold:.5f}'"
    )
    print(f"# {'threshold':>9}  {'strong':>7}  {'cost USD':>10}  {'saved':>6}")
    for item in table:
        cost = "unknown" if item["cost_usd"] is None else f"{item['cost_usd']:.4f}"
        saved = "-" if item["saved_share"] is None else f"{item['saved_share']:.0%}"
        strong = "-" if item["strong_share"] is None else f"{item['strong_share']:.0%}"
        print(f"  {item['threshold']:>9.3f}  {strong:>7}  {cost:>10}  {saved:>6}")
    return 0


def _weight_from_ledger(ns: argparse.Namespace) -> int:
    """`calibrate --from-ledger --router-name NAME (--cost-share S | --quality-share Q)`."""
    from gateway.learning.recorded import weight_from_ledger
    from gateway.ledger.reports import parse_since

    try:
        if (ns.cost_share is None) == (ns.quality_share is None):
            raise SettingsError("--router-name needs one of --cost-share or --quality-share")
        settings = load_settings(os.environ, ns.config)
        found, models, count = weight_from_ledger(
            settings,
            ns.router_name,
            parse_since(ns.since),
            cost_share=ns.cost_share,
            quality_share=ns.quality_share,
        )
    except (SettingsError, ValueError, OSError) as exc:
        print(f"routellm-gateway calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"{found.cost_weight:.5g}")
    print(
        f"# {count} decisions of {ns.router_name!r} in the ledger; at cost_weight "
        f"{found.cost_weight:.5g}: mean cost {found.cost_share:.1%} of "
        f"{models[found.strongest]}'s price, {found.quality_share:.1%} of its predicted quality; "
        f"use model 'router-{ns.router_name}-{found.cost_weight:.5g}'",
        file=sys.stderr,
    )
    return 0


async def _recorded_win_rates(settings: Settings, since: str | None) -> list[float]:
    from gateway.ledger import reports
    from gateway.ledger.writer import Ledger

    if not settings.ledger.enabled:
        raise SettingsError("ROUTELLM_LEDGER=off: there is no ledger to calibrate from")
    ledger = Ledger.open(settings)
    try:
        return await reports.win_rates(ledger, reports.parse_since(since))
    finally:
        await ledger.aclose()


async def _ledger_table(
    settings: Settings, since: float | None, share: float
) -> tuple[float | None, list[dict[str, Any]], int]:
    import numpy as np

    from gateway.ledger import reports
    from gateway.ledger.writer import Ledger

    ledger = Ledger.open(settings)
    try:
        # the gateway's own router's scores ('router-bert-<t>'), not MF's or named routers'
        rates = await reports.win_rates(ledger, since)
        if not rates:
            return None, [], 0
        threshold = float(np.quantile(np.array(rates), 1.0 - share))
        nearby = sorted({min(max(threshold + d, 0.0), 1.0) for d in (-0.1, -0.05, 0, 0.05, 0.1)})
        table = [await reports.what_if(ledger, t, since) for t in nearby]
    finally:
        await ledger.aclose()
    return threshold, table, len(rates)
