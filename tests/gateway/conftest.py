"""Gateway fixtures: a fake upstream on loopback, the tiny real classifier, and gateways built
from real settings (a YAML file plus ROUTELLM_* variables)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
import yaml

from classifier.local import LocalClassifier
from classifier.settings import ClassifierSettings
from gateway.app import create_app
from gateway.ledger import writer
from gateway.settings.load import Settings, load_settings
from tests.gateway.fake_upstream import FakeUpstream
from tests.servers import serve

BEHAVIOURS = [
    "crlf",
    "split",
    "status-500",
    "status-503",
    "status-429",
    "status-400",
    "status-401",
    "html-502",
    "hang",
    "slow-first",
    "cut",
    "stall",
    "no-done",
    "redirect",
    "endless-event",
    "endless-first",
    "drip",
    "huge-body",
    "slow-stream",
]


@pytest.fixture(scope="session")
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream()
    with serve(fake) as url:
        yield fake, url


@pytest.fixture(scope="session")
def classifiers(
    checkpoint_factory: Callable[[int | None], Path], onnx_cache: Path
) -> Iterator[dict[int, LocalClassifier]]:
    """Real in-process classifiers on tiny checkpoints: LABEL_<n> wins for every text."""
    loaded = {
        label: LocalClassifier.load(
            ClassifierSettings(
                model=str(checkpoint_factory(label)), cache_size=0, onnx_cache_dir=str(onnx_cache)
            )
        )
        for label in (0, 1, 2)
    }
    yield loaded
    for clf in loaded.values():
        asyncio.run(clf.aclose())


@pytest.fixture
def config_file(tmp_path: Path, upstream: tuple[FakeUpstream, str]) -> Path:
    _, url = upstream
    models: dict[str, Any] = {
        "strong": {"upstream": "fake", "model": "ok:strong"},
        "weak": {"upstream": "fake", "model": "ok:weak"},
        "middle": {"upstream": "fake", "model": "ok:middle"},
        "GPT3.5 Turbo": {"upstream": "fake", "model": "ok:gpt-3.5-turbo"},
    }
    models.update({b: {"upstream": "fake", "model": b} for b in BEHAVIOURS})
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1", "api_key": "${FAKE_UPSTREAM_KEY}"}},
        "models": models,
        "routing": {"strong": "strong", "weak": "weak", "fallback": "weak", "threshold": 0.5},
    }
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def make_settings(config_file: Path) -> Callable[..., Settings]:
    def make(**env: str) -> Settings:
        return load_settings({"FAKE_UPSTREAM_KEY": "upstream-secret", **env}, str(config_file))

    return make


@pytest.fixture
def gateway(
    make_settings: Callable[..., Settings], classifiers: dict[int, LocalClassifier]
) -> Callable[..., AbstractContextManager[str]]:
    """`with gateway(label=2, ROUTELLM_THRESHOLD="0.9") as url:` serves a gateway under uvicorn."""

    @contextmanager
    def run(label: int = 2, **env: str) -> Iterator[str]:
        app = create_app(make_settings(**env), classifier=classifiers[label])
        with serve(app) as url:
            yield url

    return run


@pytest.fixture(autouse=True)
def _ledger_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways without `ROUTELLM_LEDGER` keep their ledger here, never in the user's state dir."""
    monkeypatch.setattr(writer, "default_ledger_path", lambda: tmp_path / "ledger.sqlite3")


class SDK:
    """The official clients, closed when the test ends (an unclosed one leaves a socket for
    the garbage collector, which warns: an error under `filterwarnings = error`)."""

    def __init__(self) -> None:
        self.made: list[openai.OpenAI | anthropic.Anthropic] = []

    def openai(self, url: str, key: str = "client-key") -> openai.OpenAI:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
        self.made.append(client)
        return client

    def claude(self, url: str, **kw: Any) -> anthropic.Anthropic:
        kw.setdefault("api_key", "client-key")
        client = anthropic.Anthropic(base_url=url, max_retries=0, **kw)
        self.made.append(client)
        return client


@pytest.fixture
def sdk() -> Iterator[SDK]:
    clients = SDK()
    yield clients
    for client in clients.made:
        client.close()
