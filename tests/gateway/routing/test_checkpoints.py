"""Routers with their own checkpoints in one gateway: each decides with its own classifier, the
same checkpoint is loaded once, and every ledger row says which router and checkpoint decided."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from classifier.settings import SettingsError
from gateway.app import create_app
from gateway.settings.load import load_settings
from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import serve


def config(tmp_path: Path, url: str, routers: dict[str, Any]) -> str:
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1"}},
        "models": {"strong": {"upstream": "fake", "model": "ok:strong"},
                   "weak": {"upstream": "fake", "model": "ok:weak"}},
        "routing": {"strong": "strong", "weak": "weak", "threshold": 0.5},
        "routers": routers,
    }  # fmt: skip
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def ask(url: str, model: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "which model answers?"}]}
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)


def test_each_router_decides_with_its_own_checkpoint(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    checkpoint_factory: Callable[[int | None], Path],
) -> None:
    strong_wins, weak_wins = checkpoint_factory(0), checkpoint_factory(2)
    rule = {"strong": "strong", "weak": "weak", "threshold": 0.5}
    path = config(
        tmp_path,
        upstream[1],
        {
            "hard-router": {**rule, "classifier": str(strong_wins), "dtype": "float32"},
            "same-as-default": {**rule, "classifier": str(weak_wins)},
        },
    )
    env = {"ROUTELLM_BERT_MODEL": str(weak_wins), "ROUTELLM_LEDGER": str(tmp_path / "l.db")}
    app = create_app(load_settings(env, path))
    with serve(app) as url:
        gateway = app.state.gateway
        # The default's checkpoint, named again by a router, is the same classifier.
        assert gateway.decider.own["same-as-default"] is gateway.classifier
        assert gateway.decider.own["hard-router"] is not gateway.classifier
        answers = {name: ask(url, name) for name in ("router", "hard-router", "same-as-default")}
        assert {n: a.headers["x-routellm-model"] for n, a in answers.items()} == {
            "router": "weak",
            "hard-router": "strong",
            "same-as-default": "weak",
        }
        health = httpx.get(f"{url}/health").json()
        assert health["router_checkpoints"] == {
            "hard-router": str(strong_wins),
            "same-as-default": str(weak_wins),
        }
        deadline = time.monotonic() + 10
        while len(rows := httpx.get(f"{url}/v1/decisions").json()["data"]) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    decided = {r["requested"]: (r["router"], r["checkpoint"]) for r in rows}
    assert decided == {
        "router": ("router", str(weak_wins)),
        "hard-router": ("hard-router", str(strong_wins)),
        "same-as-default": ("same-as-default", str(weak_wins)),
    }


def test_a_router_checkpoint_is_checked_at_start(tmp_path: Path) -> None:
    rule = {"strong": "strong", "weak": "weak"}
    url = "http://127.0.0.1:9"
    with pytest.raises(SettingsError, match=r"dtype goes beside the router's own `classifier:`"):
        load_settings({}, config(tmp_path, url, {"r": {**rule, "dtype": "int8"}}))
    with pytest.raises(SettingsError, match=r"routers.r .*: dtype 'fp8': use auto, float32"):
        load_settings({}, config(tmp_path, url, {"r": {**rule, "classifier": "x", "dtype": "fp8"}}))
