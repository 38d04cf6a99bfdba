"""RouteLLM's MF router (`routers.mf`) on generated checkpoints in RouteLLM's format, with a
fake embeddings API on 127.0.0.1: the score, loading, the registry, batching and the cache,
and every way the embeddings call fails (each a `ClassifierError`; the breaker opens)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from huggingface_hub import constants

from classifier.base import ClassifierError, ClassifierUnavailable
from routers.embedding import RouterOptions
from routers.encoders import EmbeddingsApi
from routers.manifest import RouterDirectoryError
from routers.mf import MODEL_IDS, MODEL_NAMES, MFOptions, MFRouter, open_mf
from routers.registry import open_router
from tests.routers.fake_embeddings import FakeEmbeddings, vector, write_mf_checkpoint
from tests.servers import serve

PROMPTS = [f"question {i}: how would you {verb} this?" for i, verb in enumerate("abcdefgh")]


@pytest.fixture
def fake() -> Iterator[tuple[FakeEmbeddings, str]]:
    embeddings = FakeEmbeddings()
    with serve(embeddings) as url:
        yield embeddings, f"{url}/v1"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mf_checkpoint(tmp_path_factory.mktemp("mf"))


def options(url: str, *, timeout: float = 5.0, **kw: Any) -> MFOptions:
    api = EmbeddingsApi(url, "text-embedding-3-small", "emb-key", timeout=timeout)
    return MFOptions(embeddings=api, **kw)


def routellm_win_rate(directory: Path, text: str, strong: str, weak: str) -> float:
    """RouteLLM 0.2.0's `MFModel.forward` and `pred_win_rate`, restated in torch on one text."""
    from safetensors.torch import load_file

    w = load_file(str(directory / "model.safetensors"))
    model_embed = torch.nn.functional.normalize(
        w["P.weight"][torch.tensor([MODEL_IDS[strong], MODEL_IDS[weak]])], p=2, dim=1
    )
    prompt_embed = torch.tensor(vector(text).tolist()) @ w["text_proj.0.weight"].T
    logits = ((model_embed * prompt_embed) @ w["classifier.0.weight"].T).squeeze()
    return float(torch.sigmoid(logits[0] - logits[1]).item())


def test_the_table_is_routellms() -> None:
    assert len(MODEL_NAMES) == 64
    assert MODEL_IDS["gpt-4-1106-preview"] == 24
    assert MODEL_IDS["mixtral-8x7b-instruct-v0.1"] == 36
    assert MODEL_IDS["RWKV-4-Raven-14B"] == 0
    assert MODEL_IDS["zephyr-7b-beta"] == 63


async def test_win_rate_is_routellms_score(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    embeddings, url = fake
    router = await open_mf(str(checkpoint), options(url))
    try:
        scores = await router.classify(PROMPTS)
    finally:
        await router.aclose()
    rates = [s.get("LABEL_0") for s in scores]
    expected = [
        routellm_win_rate(checkpoint, p, "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
        for p in PROMPTS
    ]
    np.testing.assert_allclose(rates, expected, atol=1e-6)
    assert all(s.labels == ("LABEL_0", "LABEL_2") for s in scores)
    assert all(abs(s.get("LABEL_2") - (1 - s.get("LABEL_0"))) < 1e-12 for s in scores)
    assert min(rates) < 0.3 < 0.7 < max(rates)  # the generated weights spread the rates
    assert embeddings.models == ["text-embedding-3-small"] * len(embeddings.calls)
    assert embeddings.keys[0] == "Bearer emb-key"


async def test_scoring_pair_is_configurable(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    _, url = fake
    router = await open_mf(str(checkpoint), options(url, strong="claude-2.1", weak="vicuna-7b"))
    try:
        (scores,) = await router.classify([PROMPTS[0]])
        health = await router.health()
    finally:
        await router.aclose()
    expected = routellm_win_rate(checkpoint, PROMPTS[0], "claude-2.1", "vicuna-7b")
    assert scores.get("LABEL_0") == pytest.approx(expected, abs=1e-6)
    assert health["strong"] == "claude-2.1"
    assert health["models"] == list(MODEL_NAMES)


async def test_pytorch_bin_weights_score_the_same(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path, tmp_path: Path
) -> None:
    _, url = fake
    as_bin = write_mf_checkpoint(tmp_path / "bin", weights="pytorch_model.bin")
    both = [await open_mf(str(d), options(url)) for d in (checkpoint, as_bin)]
    try:
        a, b = [[s.get("LABEL_0") for s in await r.classify(PROMPTS)] for r in both]
    finally:
        for r in both:
            await r.aclose()
    assert a == b


async def test_the_registry_opens_an_mf_directory(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    _, url = fake
    api = EmbeddingsApi(url)
    router = await open_router(str(checkpoint), RouterOptions(embeddings=api))
    try:
        assert isinstance(router, MFRouter)
        (scores,) = await router.classify([PROMPTS[1]])
    finally:
        await router.aclose()
    assert scores.get("LABEL_0") == pytest.approx(
        routellm_win_rate(
            checkpoint, PROMPTS[1], "gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1"
        ),
        abs=1e-6,
    )


async def test_a_repeated_prompt_is_answered_from_the_cache(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    embeddings, url = fake
    router = await open_mf(str(checkpoint), options(url))
    try:
        (first,) = await router.classify(["the same prompt"])
        (again,) = await router.classify(["the same prompt"])
        health = await router.health()
    finally:
        await router.aclose()
    assert first == again
    assert embeddings.calls == [["the same prompt"]]
    assert health["cache_hits"] == 1


async def test_concurrent_prompts_share_embeddings_calls(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    embeddings, url = fake
    router = await open_mf(str(checkpoint), options(url, max_wait_ms=50.0, batch_size=32))
    try:
        scores = await asyncio.gather(*(router.classify([p]) for p in PROMPTS))
    finally:
        await router.aclose()
    assert len(scores) == len(PROMPTS)
    assert sorted(t for call in embeddings.calls for t in call) == sorted(PROMPTS)
    assert len(embeddings.calls) < len(PROMPTS)


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("status-500", "answered 500"),
        ("garbage", "unreadable"),
        ("wrong-dim", "ROUTELLM_EMBEDDINGS_MODEL"),
        ("hang", "no answer within"),
    ],
)
async def test_failing_embeddings_fail_the_text_and_open_the_breaker(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path, mode: str, why: str
) -> None:
    embeddings, url = fake
    embeddings.mode = mode
    router = await open_mf(
        str(checkpoint),
        options(url, timeout=0.5, breaker_failures=2, breaker_cooldown=60.0),
    )
    try:
        for i in range(2):
            with pytest.raises(ClassifierError, match=why):
                await router.classify([f"prompt {i}"])
        with pytest.raises(ClassifierError):
            await router.classify(["after the breaker opened"])
        health = await router.health()
    finally:
        await router.aclose()
    assert health["embeddings_breaker"] == "open"
    assert ["after the breaker opened"] not in embeddings.calls  # failed without a call


async def test_a_probe_after_the_cooldown_closes_the_breaker(
    fake: tuple[FakeEmbeddings, str], checkpoint: Path
) -> None:
    embeddings, url = fake
    embeddings.mode = "status-500"
    router = await open_mf(str(checkpoint), options(url, breaker_failures=1, breaker_cooldown=0.0))
    try:
        with pytest.raises(ClassifierError):
            await router.classify(["down"])
        embeddings.mode = "ok"
        (scores,) = await router.classify(["up again"])
        health = await router.health()
    finally:
        await router.aclose()
    assert 0.0 < scores.get("LABEL_0") < 1.0
    assert health["embeddings_breaker"] == "closed"


async def test_without_an_embeddings_api_the_error_names_the_variable(checkpoint: Path) -> None:
    with pytest.raises(ClassifierUnavailable, match="ROUTELLM_EMBEDDINGS_URL"):
        await open_mf(str(checkpoint), MFOptions())


async def test_a_scoring_model_outside_the_table_is_refused(checkpoint: Path) -> None:
    with pytest.raises(RouterDirectoryError, match="nearest your models"):
        await open_mf(str(checkpoint), options("http://127.0.0.1:9/v1", strong="gpt-4o"))


async def test_a_hub_id_that_cannot_be_downloaded_names_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(RouterDirectoryError, match="ROUTELLM_MF_MODEL=DIR") as caught:
        await open_mf("routellm-gateway-tests/no-such-mf", options("http://127.0.0.1:9/v1"))
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"num_classes": 3}, "num_classes"),
        ({"dim": 64}, "P.weight"),
        ({"use_proj": "yes"}, "whole numbers"),
        ({"text_dim": None}, "lacks text_dim"),
    ],
)
async def test_a_checkpoint_that_is_not_routellms_is_refused(
    tmp_path: Path, change: dict[str, object], why: str
) -> None:
    directory = write_mf_checkpoint(tmp_path / "mf", dim=8, text_dim=16)
    config = json.loads((directory / "config.json").read_text())
    for key, value in change.items():
        if value is None:
            del config[key]
        else:
            config[key] = value
    (directory / "config.json").write_text(json.dumps(config))
    with pytest.raises(RouterDirectoryError, match=why):
        await open_mf(str(directory), options("http://127.0.0.1:9/v1"))


async def test_saturated_scores_stay_finite_probabilities(
    fake: tuple[FakeEmbeddings, str], tmp_path: Path
) -> None:
    _, url = fake
    directory = write_mf_checkpoint(tmp_path / "steep", spread=1e5)
    router = await open_mf(str(directory), options(url))
    try:
        rates = [s.get("LABEL_0") for s in await router.classify(PROMPTS)]
    finally:
        await router.aclose()
    assert set(rates) <= {0.0, 1.0}  # |logit| in the thousands: no overflow warning either
    assert len(set(rates)) == 2
