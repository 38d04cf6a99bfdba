"""Forwarding to upstreams: the request, the first byte, fallback, circuit breaking, relaying.

A request is "committed" once its first byte leaves for the client. Before that, a routed
request whose upstream fails (refused, reset, 5xx, 408/409/429, timeout, open breaker) gets one
try on the fallback model; a model the client named itself is never swapped. After it, nothing is
retried: a failing stream ends with an error event and no `[DONE]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

from gateway.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from gateway.routing import Decision
from gateway.settings import ModelTarget, Settings, Upstream
from gateway.sse import DONE, DONE_FRAME, ChunkRepair, SSEParser, decode_event, frame

MAX_ERROR_BODY = 64 * 1024
# Never copied from an upstream response: they describe the upstream's connection, not the answer.
DROPPED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "content-type",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "set-cookie",
        "server",
        "date",
        "alt-svc",
        "via",
    }
)


def translate_httpx_error(exc: Exception, upstream: Upstream) -> UpstreamError:
    """The one place httpx's errors become the gateway's; the message never holds a key."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return UpstreamTimeout(f"upstream {upstream.name!r} did not answer in time")
    kind = type(exc).__name__
    return UpstreamError(f"upstream {upstream.name!r} failed: {kind}: {exc}".rstrip(": "))


def passthrough_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}


@dataclass
class Breaker:
    """Per-upstream circuit breaker: `failures` in a row open it for `cooldown` seconds; then one
    probe is let through, whose outcome closes or re-opens it."""

    failures: int
    cooldown: float
    streak: int = 0
    open_until: float = 0.0
    probing: bool = False

    def allow(self, now: float) -> bool:
        if self.streak < self.failures:
            return True
        if now < self.open_until or self.probing:
            return False
        self.probing = True
        return True

    def record(self, ok: bool, now: float) -> None:
        self.probing = False
        if ok:
            self.streak = 0
            return
        self.streak += 1
        if self.streak >= self.failures:
            self.open_until = now + self.cooldown

    def retry_after(self, now: float) -> int:
        return max(1, int(self.open_until - now + 0.999))


@dataclass
class Opened:
    """An upstream response whose first byte has arrived and nothing has gone to the client."""

    decision: Decision
    response: httpx.Response
    headers: dict[str, str]
    streaming: bool
    content: bytes = b""
    """The whole body, for a non-streamed answer."""
    parser: SSEParser = field(default_factory=SSEParser)
    first_events: list[str] = field(default_factory=list)
    chunks: AsyncIterator[bytes] | None = None


class Proxy:
    """Sends chat requests to the upstream of a decision, with fallback, deadlines, breaker."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient) -> None:
        self.settings = settings
        self.client = client
        self.breakers = {
            name: Breaker(settings.breaker_failures, settings.breaker_cooldown)
            for name in settings.upstreams
        }

    async def open(self, decision: Decision, body: Mapping[str, Any], stream: bool) -> Opened:
        """Send `body` for `decision` and wait for its first byte; fall back once if allowed."""
        try:
            return await self._attempt(decision, body, stream)
        except UpstreamError as exc:
            fallback = self.settings.fallback
            if not (exc.retryable and decision.routed and fallback and fallback != decision.model):
                raise
        moved = decision.fall_back(fallback)
        try:
            return await self._attempt(moved, body, stream)
        except UpstreamError as exc:
            exc.headers = {**moved.headers(), **exc.headers}
            raise

    async def _attempt(self, decision: Decision, body: Mapping[str, Any], stream: bool) -> Opened:
        target: ModelTarget = self.settings.models[decision.model]
        upstream = self.settings.upstreams[target.upstream]
        breaker = self.breakers[upstream.name]
        now = time.monotonic()
        if not breaker.allow(now):
            raise UpstreamError(
                f"upstream {upstream.name!r} is failing and skipped for now",
                code="upstream_unavailable",
                headers={"retry-after": str(breaker.retry_after(now))},
            )
        try:
            opened = await self._send(decision, target, upstream, body, stream)
        except UpstreamStatus as exc:
            breaker.record(ok=not exc.retryable, now=time.monotonic())
            raise
        except UpstreamError:
            breaker.record(ok=False, now=time.monotonic())
            raise
        except BaseException:
            breaker.probing = False  # cancelled by the client: says nothing about the upstream
            raise
        breaker.record(ok=True, now=time.monotonic())
        return opened

    async def _send(
        self,
        decision: Decision,
        target: ModelTarget,
        upstream: Upstream,
        body: Mapping[str, Any],
        stream: bool,
    ) -> Opened:
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream" if stream else "application/json",
        }
        if upstream.api_key:
            headers["authorization"] = f"Bearer {upstream.api_key}"
        content = msgspec.json.encode({**body, "model": target.upstream_model})
        request = self.client.build_request(
            "POST", f"{upstream.base_url}/chat/completions", content=content, headers=headers
        )
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(self.settings.upstream_timeout):
                response = await self.client.send(request, stream=True)
                if response.status_code >= 400:
                    raise await _status_error(response)
                if response.status_code >= 300:
                    # Redirects are never followed: they could carry the upstream key elsewhere.
                    raise UpstreamError(
                        f"upstream {upstream.name!r} answered a redirect "
                        f"(HTTP {response.status_code}), which the gateway does not follow"
                    )
                sse = response.headers.get("content-type", "").startswith("text/event-stream")
                opened = Opened(decision, response, passthrough_headers(response.headers), sse)
                if not sse:
                    opened.content = await response.aread()
                    await response.aclose()
                    return opened
                opened.chunks = response.aiter_bytes()
                async for chunk in opened.chunks:
                    opened.first_events = opened.parser.feed(chunk)
                    if opened.first_events:
                        break
                return opened
        except BaseException as exc:
            # Nothing has reached the client: whatever went wrong, the upstream request closes.
            if response is not None:
                await response.aclose()
            if isinstance(exc, httpx.HTTPError | TimeoutError | OSError):
                raise translate_httpx_error(exc, upstream) from exc
            raise

    async def relay(self, opened: Opened) -> AsyncGenerator[bytes, None]:
        """Client frames for a streamed answer: re-framed, repaired, ended by `[DONE]` only when
        the upstream finished; on any failure an error event and no `[DONE]`."""
        repair = ChunkRepair()
        idle = self.settings.upstream_timeout
        upstream = self.settings.upstreams[self.settings.models[opened.decision.model].upstream]
        events = opened.first_events
        try:
            while True:
                for data in events:
                    if data == DONE:
                        yield DONE_FRAME
                        return
                    try:
                        chunk = decode_event(data)
                    except ValueError:
                        yield _error_frame(
                            f"upstream sent an event that is not JSON: {data[:200]!r}"
                        )
                        return
                    if not isinstance(chunk, dict):
                        yield _error_frame(
                            f"upstream sent an event that is not an object: {data[:200]!r}"
                        )
                        return
                    if "error" in chunk:
                        yield frame(chunk)
                        return
                    for out in repair.frames(chunk):
                        yield out
                if opened.chunks is None:
                    break
                try:
                    async with asyncio.timeout(idle):
                        raw = await anext(opened.chunks)
                except StopAsyncIteration:
                    opened.chunks = None
                    events = opened.parser.close()
                    continue
                events = opened.parser.feed(raw)
            if repair.finished:
                yield DONE_FRAME  # the answer was complete; only the upstream's [DONE] was missing
            else:
                yield _error_frame(
                    f"upstream {upstream.name!r} closed the stream before it finished"
                )
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            error = translate_httpx_error(exc, upstream)
            yield _error_frame(error.message, error.type, error.code)
        finally:
            await opened.response.aclose()


def _error_frame(
    message: str, type_: str = "upstream_error", code: str | None = "upstream_error"
) -> bytes:
    return frame({"error": {"message": message, "type": type_, "param": None, "code": code}})


async def _status_error(response: httpx.Response) -> UpstreamStatus:
    raw = b""
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) > MAX_ERROR_BODY:
            break
    await response.aclose()
    payload: Any
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        payload = None
    if not isinstance(payload, dict):
        text = raw[:500].decode("utf-8", "replace").strip()
        message = f"upstream answered HTTP {response.status_code}" + (f": {text}" if text else "")
        payload = {
            "error": {
                "message": message,
                "type": "upstream_error",
                "code": "upstream_error",
                "param": None,
            }
        }
    headers = {
        k: v for k, v in response.headers.items() if k.lower() in ("retry-after", "retry-after-ms")
    }
    return UpstreamStatus(response.status_code, payload, headers=headers)
