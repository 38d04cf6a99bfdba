"""Two gateways sharing one real `redis-server`, and Redis failing under them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.routing.state import RedisStore, StoreUnavailable
from gateway.settings.load import Settings
from tests.gateway.scripted import RedisServer, ScriptedClassifier
from tests.gateway.routing.test_conversations import ask, chat
from tests.servers import serve


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def replicas(
    make_settings: Callable[..., Settings], redis: RedisServer
) -> Iterator[tuple[str, str]]:
    """Two gateway apps under uvicorn, each with its own classifier, one Redis. A generous
    timeout: a busy test machine must not turn a slow answer into a per-turn decision (a
    stopped Redis refuses connections at once)."""
    with ExitStack() as stack:
        urls = [
            stack.enter_context(
                serve(
                    create_app(
                        make_settings(ROUTELLM_REDIS_URL=redis.url, ROUTELLM_REDIS_TIMEOUT="5"),
                        classifier=ScriptedClassifier(),
                    )
                )
            )
            for _ in range(2)
        ]
        yield urls[0], urls[1]


TURNS = ["p=0.9 design the schema", "p=0.1 thanks", "p=0.2 and in Go?", "p=0.3 ok", "p=0.1 bye"]


def test_two_replicas_keep_one_conversation_on_one_model(replicas: tuple[str, str]) -> None:
    answers = [ask(replicas[i % 2], m) for i, m in enumerate(chat(TURNS))]
    assert [a["x-routellm-model"] for a in answers] == ["strong"] * 5
    assert [a["x-routellm-reason"] for a in answers] == ["strong"] + ["pinned"] * 4
    assert len({a["x-routellm-conversation"] for a in answers}) == 1


def test_redis_down_means_per_turn_decisions_and_pinning_resumes_after_restart(
    replicas: tuple[str, str], redis: RedisServer
) -> None:
    a, b = replicas
    turns = list(chat(TURNS))
    assert ask(a, turns[0])["x-routellm-model"] == "strong"
    assert ask(b, turns[1])["x-routellm-reason"] == "pinned"

    redis.stop()
    down = [ask(url, turns[2]) for url in (a, b)]  # never a failed request
    assert [(d["x-routellm-model"], d["x-routellm-reason"]) for d in down] == [("weak", "weak")] * 2
    for url in (a, b):
        health = httpx.get(f"{url}/health")
        assert health.status_code == 200
        assert health.json()["conversations"] == "degraded"
        metrics = httpx.get(f"{url}/metrics").text
        assert "routellm_conversation_store_failures_total 1" in metrics

    redis.start()  # empty: the conversation's state was lost with it
    hard = ask(a, [*turns[3][:-1], {"role": "user", "content": "p=0.8 harder"}])
    easy = ask(b, turns[4])
    assert (hard["x-routellm-model"], hard["x-routellm-reason"]) == ("strong", "strong")
    assert (easy["x-routellm-model"], easy["x-routellm-reason"]) == ("strong", "pinned")
    for url in (a, b):
        assert httpx.get(f"{url}/health").json()["conversations"] == "ok"


async def test_a_redis_that_never_answers_costs_one_short_timeout() -> None:
    release = asyncio.Event()
    handlers: list[asyncio.Task[None] | None] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await reader.read(1 << 16)  # takes the command, never answers
        await release.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.05)
    try:
        with pytest.raises(StoreUnavailable):
            await store.get("conversation", "x")
        with pytest.raises(StoreUnavailable):
            await store.put("conversation", "x", {"model": "m"}, ttl=60)
    finally:
        await store.aclose()
        release.set()
        await asyncio.gather(*(t for t in handlers if t is not None), return_exceptions=True)
        server.close()
        await server.wait_closed()
