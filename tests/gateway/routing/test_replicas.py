"""Two gateways sharing one real `redis-server`, and Redis failing under them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from gateway.app import create_app
from gateway.routing.state import RedisStore, StoreUnavailable
from gateway.settings.load import Settings
from tests.gateway.routing.test_conversations import ask, chat
from tests.gateway.scripted import RedisServer, ScriptedClassifier
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


def restart_keeping_data(redis: RedisServer) -> None:
    """Redis restarted as an operator's would be: its data saved to disk and loaded back."""
    import redis as redis_py

    with redis_py.Redis.from_url(redis.url) as direct:
        direct.save()
    redis.stop()
    redis.start()


def connected_clients(redis: RedisServer) -> int:
    import redis as redis_py

    with redis_py.Redis.from_url(redis.url) as direct:
        return int(direct.info("clients")["connected_clients"]) - 1  # less this one


POOL = 16


async def test_after_a_redis_restart_no_pooled_connection_fails(redis: RedisServer) -> None:
    store = RedisStore(redis.url, timeout=5)
    try:
        await asyncio.gather(
            *(store.put("conversation", str(i), {"model": "m"}, ttl=60) for i in range(POOL))
        )
        assert connected_clients(redis) >= POOL  # the pool holds a connection per caller
        restart_keeping_data(redis)
        # Each pooled connection is now dead; its first use must reconnect, not fail.
        values = await asyncio.gather(*(store.get("conversation", str(i)) for i in range(POOL)))
        assert values == [{"model": "m"}] * POOL
        await asyncio.gather(
            *(store.put("conversation", str(i), {"model": "n"}, ttl=60) for i in range(POOL))
        )
    finally:
        await store.aclose()


def test_after_a_redis_restart_no_turn_loses_its_pinning(
    replicas: tuple[str, str], redis: RedisServer
) -> None:
    import redis as redis_py

    chats = [list(chat([f"p=0.9 hard question {i}", "p=0.1 thanks"])) for i in range(POOL)]
    with ThreadPoolExecutor(POOL) as pool:
        with redis_py.Redis.from_url(redis.url) as direct:
            direct.client_pause(2000)  # the first turns' operations overlap: one connection each
        first = list(pool.map(lambda turns: ask(replicas[0], turns[0]), chats))
        assert [a["x-routellm-model"] for a in first] == ["strong"] * POOL
        assert connected_clients(redis) >= POOL
        restart_keeping_data(redis)
        second = list(pool.map(lambda turns: ask(replicas[0], turns[1]), chats))
    assert [(a["x-routellm-model"], a["x-routellm-reason"]) for a in second] == [
        ("strong", "pinned")
    ] * POOL
    health = httpx.get(f"{replicas[0]}/health").json()
    assert health["conversations"] == "ok"
    metrics = httpx.get(f"{replicas[0]}/metrics").text
    assert "routellm_conversation_store_failures_total 0" in metrics
