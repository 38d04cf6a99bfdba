"""Reloading the config without a restart: `POST /v1/admin/reload` under streaming load (no
request fails, the new threshold and a router's new checkpoint take effect), a broken config
refused with the old one serving, and SIGHUP on the real process."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.app import create_app
from gateway.settings.load import load_settings
from tests.classifier.fake_servers import FakeRemote
from tests.gateway.fake_upstream import FakeUpstream
from tests.gateway.scripted import ScriptedClassifier
from tests.processes import Process
from tests.servers import serve, wait_for


def write(path: Path, url: str, threshold: float, **routers: Any) -> None:
    doc = {
        "upstreams": {"fake": {"base_url": f"{url}/v1"}},
        "models": {"strong": {"upstream": "fake", "model": "ok:strong"},
                   "weak": {"upstream": "fake", "model": "ok:weak"}},
        "routing": {"strong": "strong", "weak": "weak", "threshold": threshold},
        "routers": routers,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc))


def stream(url: str, model: str = "router", text: str = "p=0.5 a question") -> str:
    """One streamed answer, read to its end; the model that answered."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": text}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as answer:
        assert answer.status_code == 200, answer.read()
        lines = [line for line in answer.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return answer.headers["x-routellm-model"]


def reload(url: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/admin/reload", timeout=60)


def test_a_reload_under_streaming_load_fails_no_request_and_takes_effect(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    checkpoint_factory: Callable[[int | None], Path],
) -> None:
    path = tmp_path / "gateway.yaml"
    rule = {"strong": "strong", "weak": "weak", "threshold": 0.5}
    write(path, upstream[1], 0.9, own={**rule, "classifier": str(checkpoint_factory(2))})
    env = {"ROUTELLM_LEDGER": "off"}
    app = create_app(
        load_settings(env, str(path)),
        classifier=ScriptedClassifier(),
        reload=lambda: load_settings(env, str(path)),
    )
    failures: list[BaseException] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                stream(url)
            except BaseException as exc:  # any failed request fails the test
                failures.append(exc)

    with serve(app) as url:
        assert stream(url) == "weak"  # p=0.5 is below 0.9
        assert stream(url, "own") == "weak"  # its checkpoint makes the weak model win
        assert httpx.get(f"{url}/health").json()["config_version"] == 1
        clients = [threading.Thread(target=load) for _ in range(4)]
        for client in clients:
            client.start()
        write(path, upstream[1], 0.1, own={**rule, "classifier": str(checkpoint_factory(0))})
        answer = reload(url)
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"status": "reloaded", "config_version": 2}
        assert stream(url) == "strong"  # the new threshold
        assert stream(url, "own") == "strong"  # the new checkpoint
        stop.set()
        for client in clients:
            client.join(30)
        assert httpx.get(f"{url}/health").json()["config_version"] == 2
        assert httpx.get(f"{url}/v1/models").json()["config_version"] == 2
    assert failures == []


def test_a_broken_config_is_refused_and_the_old_one_keeps_serving(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    path = tmp_path / "gateway.yaml"
    write(path, upstream[1], 0.1)
    env = {"ROUTELLM_LEDGER": "off"}
    app = create_app(
        load_settings(env, str(path)),
        classifier=ScriptedClassifier(),
        reload=lambda: load_settings(env, str(path)),
    )
    with serve(app) as url:
        path.write_text("routing: {threshold: [oops")
        refused = reload(url)
        assert refused.status_code == 422
        error = refused.json()["error"]
        assert error["code"] == "reload_refused"
        assert "invalid YAML" in error["message"]
        assert "the old config keeps serving" in error["message"]
        write(path, upstream[1], 0.7)
        env["ROUTELLM_REDIS_URL"] = "redis://127.0.0.1:1/0"  # a restart-only setting
        restart = reload(url)
        assert restart.status_code == 422
        assert "redis_url change only with a restart" in restart.json()["error"]["message"]
        assert stream(url) == "strong"  # still the first config's threshold, 0.1
        assert httpx.get(f"{url}/health").json()["config_version"] == 1


def test_sighup_reloads_the_real_process(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    path = tmp_path / "gateway.yaml"
    write(path, upstream[1], 0.9)
    with serve(FakeRemote()) as bert:
        env = {"ROUTELLM_CONFIG": str(path), "ROUTELLM_BERT_URL": f"{bert}/tei/predict"}
        with Process(["-m", "gateway", "--port", "0"], {**env, "ROUTELLM_LEDGER": "off"}) as gw:
            first = httpx.get(f"{gw.url}/health").json()["config_version"]
            write(path, upstream[1], 0.2)
            gw.signal(signal.SIGHUP)

            def reloaded() -> bool:
                return bool(httpx.get(f"{gw.url}/health").json()["config_version"] == first + 1)

            assert wait_for(reloaded, 20)
            assert any("config reloaded: version 2" in line for line in gw.lines)
            gw.signal(signal.SIGTERM)
            assert gw.wait() == 0
    assert first == 1


def test_a_checkpoint_that_does_not_load_is_refused_and_the_loaded_ones_keep_serving(
    tmp_path: Path,
    upstream: tuple[FakeUpstream, str],
    checkpoint_factory: Callable[[int | None], Path],
) -> None:
    path = tmp_path / "gateway.yaml"
    rule = {"strong": "strong", "weak": "weak", "threshold": 0.5}
    own = {**rule, "classifier": str(checkpoint_factory(0))}
    write(path, upstream[1], 0.5, own=own)
    env = {"ROUTELLM_LEDGER": "off"}
    app = create_app(
        load_settings(env, str(path)),
        classifier=ScriptedClassifier(),
        reload=lambda: load_settings(env, str(path)),
    )
    with serve(app) as url:
        missing = {**rule, "classifier": str(tmp_path / "no-such-checkpoint")}
        write(path, upstream[1], 0.5, own=own, unloadable=missing)  # after `own`, sorted
        refused = reload(url)
        assert refused.status_code == 422
        assert "a checkpoint does not load" in refused.json()["error"]["message"]
        assert stream(url, "own") == "strong"  # its classifier, reused by the refused config
        write(path, upstream[1], 0.5, own=own)
        assert reload(url).status_code == 200  # and still reusable
        assert stream(url, "own") == "strong"
