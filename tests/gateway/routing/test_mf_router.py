"""`router-mf-<t>` and routers of `kind: mf` through the real app under uvicorn, with the
official SDKs: RouteLLM's MF router on a checkpoint generated in its format, the fake
embeddings API and the fake upstream on 127.0.0.1. Chat Completions, Responses and Messages;
the embeddings API failing, hanging and answering garbage (the fallback answers, the breaker
opens); the cache; a reload switching a router between bert and mf."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from gateway.app import create_app
from gateway.settings.load import SettingsError, load_settings
from tests.gateway.conftest import SDK
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.routers.fake_embeddings import FakeEmbeddings, write_mf_checkpoint
from tests.routers.test_mf import routellm_win_rate
from tests.servers import serve

Gateway = Callable[..., AbstractContextManager[str]]
PAIR = ("gpt-4-1106-preview", "mixtral-8x7b-instruct-v0.1")
PROMPT = "Prove that there are infinitely many primes"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mf_checkpoint(tmp_path_factory.mktemp("mf"))


@pytest.fixture
def embeddings() -> Iterator[tuple[FakeEmbeddings, str]]:
    fake = FakeEmbeddings()
    with serve(fake) as url:
        yield fake, f"{url}/v1"


def win_rate(checkpoint: Path, text: str) -> float:
    return routellm_win_rate(checkpoint, text, *PAIR)


def write_config(path: Path, upstream_url: str, **routers: Any) -> Path:
    models: dict[str, Any] = {
        name: {"upstream": "openai", "model": f"ok:{name}"} for name in ("strong", "weak")
    }
    for name in ("claude-strong", "claude-weak"):
        models[name] = {"upstream": "claude", "model": f"ok:{name}"}
    doc = {
        "upstreams": {
            "openai": {"base_url": f"{upstream_url}/v1", "api_key": "key-a"},
            "claude": {"base_url": f"{upstream_url}/v1", "api_key": "c", "kind": "anthropic"},
        },
        "models": models,
        "routing": {"strong": "strong", "weak": "weak", "fallback": "weak"},
        "routers": routers,
    }
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.fixture
def gateway(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> Gateway:
    """`with gateway(**env) as url`: `router-mf-<t>` on `checkpoint`, routing strong/weak, and
    `claude` (a router of `kind: mf`) routing claude-strong/claude-weak."""

    @contextmanager
    def run(**env: str) -> Iterator[str]:
        claude = {"strong": "claude-strong", "weak": "claude-weak", "kind": "mf"}
        path = write_config(tmp_path / "gateway.yaml", upstream[1], claude=claude)
        env = {
            "ROUTELLM_MF_MODEL": str(checkpoint),
            "ROUTELLM_EMBEDDINGS_URL": embeddings[1],
            "ROUTELLM_EMBEDDINGS_API_KEY": "emb-key",
            "ROUTELLM_LEDGER": "off",
            **env,
        }
        app = create_app(load_settings(env, str(path)), classifier=ScriptedClassifier())
        with serve(app) as url:
            yield url

    return run


def test_router_mf_through_chat_completions(
    sdk: SDK,
    gateway: Gateway,
    upstream: tuple[FakeUpstream, str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> None:
    rate = win_rate(checkpoint, PROMPT)
    asked = {"role": "user", "content": PROMPT}
    with gateway() as url:
        client = sdk.openai(url)
        below = client.chat.completions.with_raw_response.create(
            model=f"router-mf-{rate - 0.01:.6f}", messages=[asked]
        )
        above = client.chat.completions.with_raw_response.create(
            model=f"router-mf-{rate + 0.01:.6f}", messages=[asked], stream=True
        )
        streamed = "".join(c.choices[0].delta.content or "" for c in above.parse() if c.choices)
    assert below.headers["x-routellm-model"] == "strong"
    assert below.headers["x-routellm-reason"] == "strong"
    assert float(below.headers["x-routellm-score"]) == pytest.approx(rate, abs=1e-6)
    assert below.parse().choices[0].message.content == "Hello from ok:strong!"
    assert above.headers["x-routellm-model"] == "weak"
    assert streamed == "Hello from ok:weak!"
    fake, _ = embeddings
    assert fake.calls == [[PROMPT]]  # the second request's score came from the cache
    assert fake.keys == ["Bearer emb-key"]
    assert fake.models == ["text-embedding-3-small"]


def test_router_mf_through_responses(sdk: SDK, gateway: Gateway, checkpoint: Path) -> None:
    rate = win_rate(checkpoint, PROMPT)
    with gateway() as url:
        raw = sdk.openai(url).responses.with_raw_response.create(
            model=f"router-mf-{rate - 0.01:.6f}", input=PROMPT
        )
    assert raw.headers["x-routellm-model"] == "strong"
    assert raw.parse().output_text == "Hello from ok:strong!"


def test_a_kind_mf_router_through_messages(sdk: SDK, gateway: Gateway, checkpoint: Path) -> None:
    rate = win_rate(checkpoint, PROMPT)
    messages: Any = [{"role": "user", "content": PROMPT}]
    with gateway() as url:
        raw = sdk.claude(url).messages.with_raw_response.create(
            model="claude", max_tokens=16, messages=messages
        )
        health = httpx.get(f"{url}/health").json()
    chosen = "claude-strong" if rate >= 0.5 else "claude-weak"
    assert raw.headers["x-routellm-model"] == chosen
    assert float(raw.headers["x-routellm-score"]) == pytest.approx(rate, abs=1e-6)
    assert raw.parse().content[0].text == f"Hello from ok:{chosen}!"  # type: ignore[union-attr]
    # `claude` and router-mf-<t> name the same checkpoint: one MF router serves both.
    assert health["router_checkpoints"] == {"claude": str(checkpoint), "router-mf": str(checkpoint)}
    mf = health["mf_routers"]["router-mf"]
    assert (mf["strong"], mf["weak"]) == PAIR
    assert len(mf["models"]) == 64


@pytest.mark.parametrize("mode", ["status-500", "hang", "garbage"])
def test_an_embeddings_outage_goes_to_the_fallback_and_opens_the_breaker(
    gateway: Gateway, embeddings: tuple[FakeEmbeddings, str], mode: str
) -> None:
    fake, _ = embeddings
    fake.mode = mode
    env = {"ROUTELLM_EMBEDDINGS_TIMEOUT": "0.5", "ROUTELLM_BREAKER_FAILURES": "2"}
    with gateway(**env) as url:
        answers = [
            httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": "router-mf-0.1", "messages": [{"role": "user", "content": f"q{i}"}]},
                timeout=30,
            )
            for i in range(3)
        ]
        health = httpx.get(f"{url}/health").json()
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["x-routellm-model"] == "weak"
        assert answer.headers["x-routellm-reason"] == "classifier_error"
        assert answer.json()["choices"][0]["message"]["content"] == "Hello from ok:weak!"
    assert health["mf_routers"]["router-mf"]["embeddings_breaker"] == "open"
    assert ["q2"] not in fake.calls  # the open breaker answered without a call


def test_router_mf_is_refused_with_the_fix_when_not_configured(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    path = write_config(tmp_path / "gateway.yaml", upstream[1])
    app = create_app(
        load_settings({"ROUTELLM_LEDGER": "off"}, str(path)), classifier=ScriptedClassifier()
    )
    with serve(app) as url:
        answer = httpx.post(
            f"{url}/v1/chat/completions",
            json={"model": "router-mf-0.5", "messages": [{"role": "user", "content": "hi"}]},
        )
    assert answer.status_code == 400
    assert "ROUTELLM_MF_MODEL" in answer.json()["error"]["message"]
    assert "ROUTELLM_EMBEDDINGS_URL" in answer.json()["error"]["message"]


def test_the_mf_router_needs_an_embeddings_api(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], checkpoint: Path
) -> None:
    path = write_config(tmp_path / "gateway.yaml", upstream[1])
    with pytest.raises(SettingsError, match="ROUTELLM_EMBEDDINGS_URL"):
        load_settings({"ROUTELLM_MF_MODEL": str(checkpoint)}, str(path))
    routed = write_config(tmp_path / "routed.yaml", upstream[1], mine={"kind": "mf", **STRONG_WEAK})
    with pytest.raises(SettingsError, match=r"routers\.mine asks for RouteLLM's MF router"):
        load_settings({}, str(routed))
    bad = write_config(tmp_path / "bad.yaml", upstream[1], mine={"kind": "gpt", **STRONG_WEAK})
    with pytest.raises(SettingsError, match="kind 'gpt'"):
        load_settings({}, str(bad))


STRONG_WEAK = {"strong": "strong", "weak": "weak", "threshold": 0.9}


def test_a_reload_switches_a_router_between_bert_and_mf(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> None:
    text = f"p=0.95 {PROMPT}"
    rate = win_rate(checkpoint, text)
    assert rate < 0.9  # so the two kinds disagree at threshold 0.9: bert's 0.95 is above it
    path = write_config(tmp_path / "gateway.yaml", upstream[1], switch=STRONG_WEAK)
    env = {"ROUTELLM_EMBEDDINGS_URL": embeddings[1], "ROUTELLM_LEDGER": "off"}
    app = create_app(
        load_settings(env, str(path)),
        classifier=ScriptedClassifier(),
        reload=lambda: load_settings(env, str(path)),
    )

    def ask(url: str) -> httpx.Response:
        body = {"model": "switch", "messages": [{"role": "user", "content": text}]}
        return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)

    with serve(app) as url:
        bert = ask(url)
        write_config(
            path, upstream[1], switch={**STRONG_WEAK, "kind": "mf", "classifier": str(checkpoint)}
        )
        assert httpx.post(f"{url}/v1/admin/reload", timeout=60).status_code == 200
        mf = ask(url)
        mf_health = httpx.get(f"{url}/health").json()
        write_config(path, upstream[1], switch=STRONG_WEAK)
        assert httpx.post(f"{url}/v1/admin/reload", timeout=60).status_code == 200
        back = ask(url)
        bert_health = httpx.get(f"{url}/health").json()
    assert bert.headers["x-routellm-model"] == "strong"
    assert float(bert.headers["x-routellm-score"]) == 0.95
    assert mf.headers["x-routellm-model"] == "weak"
    assert float(mf.headers["x-routellm-score"]) == pytest.approx(rate, abs=1e-6)
    assert list(mf_health["mf_routers"]) == ["switch"]
    assert back.headers["x-routellm-model"] == "strong"
    assert bert_health["mf_routers"] == {}
    assert embeddings[0].calls == [[text]]


def test_the_scoring_pair_is_chosen_among_the_64(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> None:
    mine = {**STRONG_WEAK, "kind": "mf", "classifier": str(checkpoint), "threshold": 0.5}
    path = write_config(
        tmp_path / "gateway.yaml",
        upstream[1],
        mine={**mine, "mf_pair": ["claude-2.1", "vicuna-7b"]},
    )
    env = {
        "ROUTELLM_MF_MODEL": str(checkpoint),
        "ROUTELLM_MF_PAIR": "gpt-4-0613,llama-2-70b-chat",
        "ROUTELLM_EMBEDDINGS_URL": embeddings[1],
        "ROUTELLM_LEDGER": "off",
    }
    app = create_app(load_settings(env, str(path)), classifier=ScriptedClassifier())
    with serve(app) as url:
        scored = {}
        for model in ("mine", "router-mf-0.5"):
            body = {"model": model, "messages": [{"role": "user", "content": PROMPT}]}
            answer = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
            scored[model] = float(answer.headers["x-routellm-score"])
        health = httpx.get(f"{url}/health").json()["mf_routers"]
    expected = routellm_win_rate(checkpoint, PROMPT, "claude-2.1", "vicuna-7b")
    assert scored["mine"] == pytest.approx(expected, abs=1e-6)
    expected = routellm_win_rate(checkpoint, PROMPT, "gpt-4-0613", "llama-2-70b-chat")
    assert scored["router-mf-0.5"] == pytest.approx(expected, abs=1e-6)
    assert (health["mine"]["strong"], health["mine"]["weak"]) == ("claude-2.1", "vicuna-7b")
    assert health["router-mf"]["strong"] == "gpt-4-0613"


@pytest.mark.parametrize(
    ("env", "router", "why"),
    [
        ({"ROUTELLM_MF_PAIR": "gpt-4o,gpt-4o-mini"}, {}, "'gpt-4o' is not one of the 64"),
        ({"ROUTELLM_MF_PAIR": "claude-2.1"}, {}, "ROUTELLM_MF_PAIR must name two"),
        ({}, {"mf_pair": ["claude-2.1", "vicuna-7b"]}, "kind 'bert'"),
        ({}, {"kind": "mf", "mf_pair": ["claude-2.1", "claude-2.1"]}, "two different"),
    ],
)
def test_a_scoring_pair_outside_the_table_is_refused_with_the_fix(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    env: dict[str, str],
    router: dict[str, Any],
    why: str,
) -> None:
    path = write_config(tmp_path / "gateway.yaml", upstream[1], mine={**STRONG_WEAK, **router})
    with pytest.raises(SettingsError, match=why):
        load_settings({"ROUTELLM_EMBEDDINGS_URL": "http://127.0.0.1:9/v1", **env}, str(path))


async def test_an_mf_checkpoint_as_a_many_model_directory_names_kind_mf(
    tmp_path: Path, upstream: tuple[FakeUpstream, str], checkpoint: Path
) -> None:
    from gateway.routing.checkpoints import open_own
    from routers.manifest import RouterDirectoryError

    doc = yaml.safe_load(write_config(tmp_path / "gateway.yaml", upstream[1]).read_text())
    for name in ("strong", "weak"):
        doc["models"][name]["price"] = {"input": 1.0, "output": 2.0}
    doc["routers"] = {"team": {"router": str(checkpoint), "models": ["strong", "weak"]}}
    (tmp_path / "gateway.yaml").write_text(yaml.safe_dump(doc))
    settings = load_settings({}, str(tmp_path / "gateway.yaml"))
    with pytest.raises(RouterDirectoryError, match="`kind: mf`"):
        await open_own(settings, ScriptedClassifier())


def test_calibrate_mf_prints_the_router_mf_threshold(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> None:
    from gateway import cli

    prompts = [f"{PROMPT}, case {i}" for i in range(20)]
    (tmp_path / "prompts.jsonl").write_text("".join(f'{{"prompt": "{p}"}}\n' for p in prompts))
    monkeypatch.setenv("ROUTELLM_MF_MODEL", str(checkpoint))
    monkeypatch.setenv("ROUTELLM_EMBEDDINGS_URL", embeddings[1])
    argv = ["calibrate", "--prompts", str(tmp_path / "prompts.jsonl"), "--strong-share", "0.3"]

    assert cli.main([*argv, "--mf"]) == 0
    out, err = capsys.readouterr()
    expected = float(np.quantile([win_rate(checkpoint, p) for p in prompts], 0.7))
    assert float(out.strip()) == pytest.approx(expected, abs=1e-5)
    assert f"'router-mf-{expected:.5f}'" in err
    assert cli.main(["calibrate", "--from-ledger", "--mf"]) == 2
    assert "--mf goes with --prompts" in capsys.readouterr().err


def test_evaluate_takes_mf_routers(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    upstream: tuple[FakeUpstream, str],
    embeddings: tuple[FakeEmbeddings, str],
    checkpoint: Path,
) -> None:
    from gateway import cli

    prompts = [f"{PROMPT}, case {i}" for i in range(8)]
    rows = [{"prompt": p, "quality": {"strong": 1, "weak": i % 2}} for i, p in enumerate(prompts)]
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pair = ["claude-2.1", "vicuna-7b"]
    rates = sorted(win_rate(checkpoint, p) for p in prompts)
    theirs = sorted(routellm_win_rate(checkpoint, p, *pair) for p in prompts)
    t, t_pair = (rates[5] + rates[6]) / 2, (theirs[1] + theirs[2]) / 2
    mine = {**STRONG_WEAK, "kind": "mf", "mf_pair": pair, "threshold": t_pair}
    config = write_config(tmp_path / "gateway.yaml", upstream[1], mine=mine)
    monkeypatch.setenv("ROUTELLM_MF_MODEL", str(checkpoint))
    monkeypatch.setenv("ROUTELLM_EMBEDDINGS_URL", embeddings[1])
    monkeypatch.setenv("ROUTELLM_BERT_URL", "http://127.0.0.1:9/predict")  # never reached
    argv = ["evaluate", "--data", str(tmp_path / "eval.jsonl"), "--json", "--config", str(config)]

    assert cli.main([*argv, "--router", f"router-mf-{t:.6f}", "--router", "mine"]) == 0
    shares = {r["name"]: r["strong_share"] for r in json.loads(capsys.readouterr().out)["routers"]}
    assert shares == {f"router-mf-{t:.6f}": 2 / 8, "mine": 6 / 8}
