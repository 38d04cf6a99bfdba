"""A many-model router whose encoder is an embeddings API: `train --encoder remote:<model>`
embeds through the API (a loopback stand-in for text-embeddings-inference running the real
MiniLM), and the gateway serves the directory through the same API."""

from __future__ import annotations

import csv
from pathlib import Path

import httpx
import pytest
import yaml
from huggingface_hub import constants

from gateway.app import create_app
from gateway.cli import main
from gateway.settings.load import load_settings
from routers.encoders import LocalEncoder
from routers.manifest import read_manifest
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.routers.fake_embeddings import FakeEmbeddings
from tests.routers.planted import LAW, MATHS, MODELS, PRICES, labels
from tests.servers import serve


def price(model: str) -> dict[str, float]:
    return {"input": PRICES[model][0], "output": PRICES[model][1]}


def test_train_and_serve_a_router_on_an_embeddings_api(
    tmp_path: Path,
    encoder: LocalEncoder,
    upstream: tuple[FakeUpstream, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tmp_path / "planted.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", *MODELS])
        for prompt, row in zip(MATHS + LAW, labels().tolist(), strict=True):
            writer.writerow([prompt, *("" if v != v else int(v) for v in row)])
    # An embeddings API also offers `router-mf-<t>`, whose default checkpoint is on the hub:
    # offline here, it is not served, and nothing else changes.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    api = FakeEmbeddings(encode=encoder.encode)
    with serve(api) as url:
        monkeypatch.setenv("ROUTELLM_EMBEDDINGS_URL", f"{url}/v1")
        out = tmp_path / "remote-router"
        code = main(
            [
                "train",
                *("--data", str(data), "--models", ",".join(MODELS), "--out", str(out)),
                *("--encoder", "remote:minilm", "--holdout", "0.1", "--no-progress"),
                *("--embedding-cache", str(tmp_path / "cache")),
            ]
        )
        assert code == 0
        trained_calls = len(api.calls)
        doc = {
            "upstreams": {"fake": {"base_url": f"{upstream[1]}/v1"}},
            "models": {
                m: {"upstream": "fake", "model": f"ok:{m}", "price": price(m)} for m in MODELS
            },
            "routing": {"strong": "generalist", "weak": "cheap"},
            "routers": {"team": {"router": str(out), "models": list(MODELS)}},
        }
        config = tmp_path / "gateway.yaml"
        config.write_text(yaml.safe_dump(doc))
        env = {"ROUTELLM_LEDGER": "off", "ROUTELLM_EMBEDDINGS_URL": f"{url}/v1"}
        app = create_app(load_settings(env, str(config)), classifier=ScriptedClassifier())
        with serve(app) as gateway:
            body = {"model": "team", "messages": [{"role": "user", "content": "Integrate x^3"}]}
            decided = httpx.post(f"{gateway}/v1/route", json=body, timeout=30).json()
    assert read_manifest(out).encoder == "remote:minilm"
    assert trained_calls >= 1
    assert set(api.models) == {"minilm"}
    assert len(api.calls) > trained_calls  # the gateway embedded the prompt through the API
    assert (decided["model"], decided["reason"]) == ("mathy", "scored")
