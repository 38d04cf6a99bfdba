"""`routellm-gateway`: run the gateway, or `calibrate` a `router-bert-<t>` threshold."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from classifier.base import ClassifierError
from gateway.logs import configure_logging, logging_config
from gateway.settings import Settings, SettingsError, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["calibrate"]:
        return calibrate_main(args[1:])
    parser = argparse.ArgumentParser(
        prog="routellm-gateway",
        description="OpenAI-compatible gateway that routes each request with RouteLLM's BERT "
        "router. Subcommand: 'calibrate --prompts FILE [--strong-share S]'.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default loopback)")
    parser.add_argument("--port", type=int, default=6060)
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
    from gateway.shutdown import serve

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
    app = create_app(settings, classifier=classifier)
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


def read_prompts(path: Path) -> list[str]:
    """JSONL of `{"prompt": ...}` or chat `{"messages": [...]}`, or plain text one per line."""
    from gateway.routing import text_to_classify

    prompts = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            item = line
        if isinstance(item, dict) and isinstance(item.get("prompt"), str):
            text = item["prompt"].strip()
        elif isinstance(item, dict) and isinstance(item.get("messages"), list):
            text = text_to_classify(item["messages"])
        elif isinstance(item, str):
            text = item.strip()
        else:
            raise SettingsError(
                f"{path}:{number}: expected a prompt, {{'prompt': ...}} or {{'messages': [...]}}"
            )
        if text:
            prompts.append(text)
    if not prompts:
        raise SettingsError(f"{path}: no prompts found")
    return prompts


def calibrate_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="routellm-gateway calibrate",
        description="Print the router-bert-<t> threshold that sends the share S of these prompts "
        "to the strong model (RouteLLM's method: the 1-S quantile of P(LABEL_0)). It holds for "
        "traffic like these prompts only.",
    )
    parser.add_argument("--prompts", required=True, type=Path)
    parser.add_argument("--strong-share", type=float, default=0.5)
    parser.add_argument("--config")
    ns = parser.parse_args(argv)
    if not 0.0 <= ns.strong_share <= 1.0:
        print("routellm-gateway calibrate: --strong-share must be between 0 and 1", file=sys.stderr)
        return 2
    try:
        settings = load_settings(os.environ, ns.config)
        prompts = read_prompts(ns.prompts)
        threshold = asyncio.run(_calibrate(settings, prompts, ns.strong_share))
    except (SettingsError, ClassifierError, OSError) as exc:
        print(f"routellm-gateway calibrate: {exc}", file=sys.stderr)
        return 2
    print(f"{threshold:.5f}")
    print(
        f"# {len(prompts)} prompts; use model 'router-bert-{threshold:.5f}' to send about "
        f"{ns.strong_share:.0%} of similar traffic to the strong model",
        file=sys.stderr,
    )
    return 0


async def _calibrate(settings: Settings, prompts: list[str], share: float) -> float:
    import numpy as np

    from classifier import open_classifier
    from gateway.routing import STRONG_LABEL

    classifier = await open_classifier(settings.classifier)
    try:
        scores = []
        for start in range(0, len(prompts), 64):
            scores += await classifier.classify(prompts[start : start + 64])
    finally:
        await classifier.aclose()
    win_rates = np.array([s.get(STRONG_LABEL) for s in scores])
    return float(np.quantile(win_rates, 1.0 - share))
