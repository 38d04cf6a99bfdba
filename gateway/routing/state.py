"""Small shared state with expiry: conversation pins today, `previous_response_id` maps next.

A `Store` keeps JSON values under namespaced keys for a number of seconds. Two implementations:

- `MemoryStore`: in this process, bounded in size (least recently used entries go first);
- `RedisStore`: in Redis or Valkey (`ROUTELLM_REDIS_URL`), so every replica sees the same state.
  Each operation is bounded by a short timeout; any failure is raised as `StoreUnavailable`, and
  the caller decides without the state (a request never fails because of Redis).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Any, Protocol

import msgspec

KEY_PREFIX = "routellm"
DEFAULT_MAX_ENTRIES = 100_000


class StoreUnavailable(Exception):
    """The store did not answer in time, or not at all."""


class Store(Protocol):
    """JSON values under `namespace:key`, each kept `ttl` seconds after its last `put`."""

    name: str
    """`memory` or `redis`, for `/health`."""

    async def get(self, namespace: str, key: str) -> Any | None:
        """The value, or None when absent or expired; `StoreUnavailable` on failure."""
        ...

    async def put(self, namespace: str, key: str, value: Any, ttl: float) -> None:
        """Store `value` for `ttl` seconds; `StoreUnavailable` on failure."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """The store of a single process: an LRU of at most `max_entries`, with expiry."""

    name = "memory"

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._entries: OrderedDict[tuple[str, str], tuple[float, bytes]] = OrderedDict()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, namespace: str, key: str) -> Any | None:
        entry = self._entries.get((namespace, key))
        if entry is None:
            return None
        expires, raw = entry
        if expires <= time.monotonic():
            del self._entries[(namespace, key)]
            return None
        self._entries.move_to_end((namespace, key))
        return msgspec.json.decode(raw)

    async def put(self, namespace: str, key: str, value: Any, ttl: float) -> None:
        # Encoded like Redis would store it, so both stores accept and return the same values.
        self._entries[(namespace, key)] = (time.monotonic() + ttl, msgspec.json.encode(value))
        self._entries.move_to_end((namespace, key))
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def aclose(self) -> None:
        self._entries.clear()


class RedisStore:
    """The store shared by replicas. Keys are `routellm:<namespace>:<key>` with a Redis TTL."""

    name = "redis"

    def __init__(self, url: str, timeout: float) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # One immediate retry, on a new connection: after Redis restarts, every pooled
        # connection is dead and fails at its next use, however long after; the retry
        # reconnects instead. Both attempts share `_run`'s one timeout, so a slow or absent
        # Redis still costs a request one short wait.
        self._redis = Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
        )
        self._timeout = timeout

    async def get(self, namespace: str, key: str) -> Any | None:
        raw = await self._run(self._redis.get(f"{KEY_PREFIX}:{namespace}:{key}"))
        return None if raw is None else msgspec.json.decode(raw)

    async def put(self, namespace: str, key: str, value: Any, ttl: float) -> None:
        await self._run(
            self._redis.set(
                f"{KEY_PREFIX}:{namespace}:{key}",
                msgspec.json.encode(value),
                px=max(1, int(ttl * 1000)),
            )
        )

    async def _run(self, operation: Any) -> Any:
        from redis.exceptions import RedisError

        try:
            async with asyncio.timeout(self._timeout):
                return await operation
        except (RedisError, OSError, TimeoutError, msgspec.DecodeError) as exc:
            raise StoreUnavailable(f"redis: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        await self._redis.aclose()


def open_store(redis_url: str | None, timeout: float) -> Store:
    """Redis when a URL is set, else the in-process store. Opens no connection yet."""
    return RedisStore(redis_url, timeout) if redis_url else MemoryStore()
