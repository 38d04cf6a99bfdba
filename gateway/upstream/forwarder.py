"""Forwarding to upstreams: the request, the first byte, fallback, breakers, relaying.

Protocol-agnostic: what differs between APIs (path, auth, error shape, stream events, end of
answer) comes from the call's `Provider`. A request is "committed" once its first byte leaves
for the client. Before that, a routed request whose upstream fails (refused, reset, 5xx,
408/409/429, timeout, open breaker) gets one try on the fallback model; a model the client named
itself is never swapped. After it, nothing is retried: a failing stream ends with the API's error
event (for Chat Completions, no `[DONE]`).

Nothing an upstream sends is unbounded: a non-streamed answer is read up to
`max_response_bytes`, a stream event up to `max_event_bytes` (past either, the upstream request
is closed and the client gets a 502 or the API's error event), and a stream must complete an
event within `upstream_timeout`: bytes that never finish one count as silence.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import httpx
import msgspec

from gateway.apis.base import Provider, StreamFailed, StreamReader
from gateway.apis.sse import EventTooLarge, SSEParser
from gateway.errors import UpstreamError, UpstreamStatus, UpstreamTimeout
from gateway.routing.call import Call
from gateway.routing.decider import Decision
from gateway.settings.load import Settings
from gateway.settings.upstreams import Upstream
from gateway.upstream.breakers import Breakers

MAX_ERROR_BODY = 64 * 1024
REST_BYTES = 64 * 1024
REST_SECONDS = 0.25
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
# Failures of the connection itself: every model on that upstream would meet them.
HOST_FAILURES = (
    httpx.NetworkError,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    OSError,
    aiohttp.ClientConnectorError,
    aiohttp.ServerDisconnectedError,
    aiohttp.ClientOSError,
    aiohttp.ConnectionTimeoutError,
)
TIMEOUTS = (httpx.TimeoutException, TimeoutError, aiohttp.ServerTimeoutError)
TRANSPORT_ERRORS = (httpx.HTTPError, TimeoutError, OSError, aiohttp.ClientError)
"""What sending or reading may raise: each becomes an `UpstreamError` here."""


def translate_httpx_error(exc: BaseException, upstream: Upstream) -> UpstreamError:
    """The one place transport errors become the gateway's; the message never holds a key.
    Under the aiohttp transport the error httpx raises wraps aiohttp's (its `__cause__`), which
    says more precisely what failed: that one is classified (an aiohttp error that was not
    wrapped is classified as it is)."""
    cause = exc.__cause__ if isinstance(exc.__cause__, aiohttp.ClientError) else exc
    connecting = isinstance(cause, httpx.ConnectTimeout | aiohttp.ConnectionTimeoutError)
    if isinstance(cause, TIMEOUTS) and not connecting:
        return UpstreamTimeout(f"upstream {upstream.name!r} did not answer in time")
    kind = type(cause).__name__
    error = UpstreamError(f"upstream {upstream.name!r} failed: {kind}: {cause}".rstrip(": "))
    if isinstance(cause, HOST_FAILURES):
        error.scope = "host"
    return error


def passthrough_headers(headers: httpx.Headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in DROPPED_HEADERS}


@dataclass
class Opened:
    """An upstream response whose first byte has arrived and nothing has gone to the client."""

    decision: Decision
    provider: Provider
    upstream: Upstream
    response: httpx.Response
    headers: dict[str, str]
    streaming: bool
    content: bytes = b""
    """The whole body, for a non-streamed answer."""
    parser: SSEParser = field(default_factory=SSEParser)
    first_events: list[str] = field(default_factory=list)
    chunks: AsyncIterator[bytes] | None = None
    reader: StreamReader | None = None
    status: int = 200
    """For a stream: what the client got in the end (an error event turns it into 502/504)."""


class Forwarder:
    """Sends calls to the upstream of a decision, with fallback, deadlines and breakers."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        on_error: Callable[[str, UpstreamError], None] = lambda model, error: None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.breakers = Breakers(settings.breaker_failures, settings.breaker_cooldown)
        self.on_error = on_error
        """Told of every failed attempt (the model, the error), a recovered one included."""

    async def open(
        self,
        provider: Provider,
        decision: Decision,
        call: Call,
        headers: Mapping[str, str] | None = None,
    ) -> Opened:
        """Send `call` for `decision` and wait for its first byte; fall back once if allowed.
        `headers` go upstream too (trace context)."""
        headers = headers or {}
        try:
            return await self._attempt(provider, decision, call, headers)
        except UpstreamError as exc:
            fallback = decision.fallback
            if not (exc.retryable and fallback and fallback != decision.model):
                raise
        moved = decision.fall_back(fallback)
        try:
            return await self._attempt(provider, moved, call, headers)
        except UpstreamError as exc:
            exc.headers = {**moved.headers(), **exc.headers}
            raise

    async def _attempt(
        self, provider: Provider, decision: Decision, call: Call, headers: Mapping[str, str]
    ) -> Opened:
        target = self.settings.models[decision.model]
        upstream = self.settings.upstreams[target.upstream]
        blocked = self.breakers.check(upstream.name, target.name, time.monotonic())
        if blocked is not None:
            what = f"upstream {upstream.name!r}"
            if blocked.scope == "deployment":
                what = f"model {target.name!r} on {what}"
            raise UpstreamError(
                f"{what} is failing and skipped for now",
                code="upstream_unavailable",
                headers={"retry-after": str(blocked.retry_after)},
            )
        try:
            opened = await self._send(
                provider, decision, upstream, target.upstream_model, call, extra=headers
            )
        except UpstreamError as exc:
            self.on_error(target.name, exc)
            # A client error (4xx but 408/409/429) is an answer: the deployment is healthy.
            answered = isinstance(exc, UpstreamStatus) and not exc.retryable
            scope = None if answered else exc.scope
            self.breakers.record(upstream.name, target.name, scope, time.monotonic())
            raise
        except BaseException:
            self.breakers.release(upstream.name, target.name)  # cancelled: says nothing
            raise
        self.breakers.record(upstream.name, target.name, None, time.monotonic())
        return opened

    async def _send(
        self,
        provider: Provider,
        decision: Decision,
        upstream: Upstream,
        upstream_model: str,
        call: Call,
        *,
        extra: Mapping[str, str],
    ) -> Opened:
        built = provider.request(upstream, upstream_model, call)
        request = self.client.build_request(
            "POST",
            f"{upstream.base_url}{built.path}",
            content=built.content,
            headers={**extra, **built.headers},
        )
        response: httpx.Response | None = None
        try:
            async with asyncio.timeout(self.settings.upstream_timeout):
                response = await self.client.send(request, stream=True)
                if response.status_code >= 400:
                    raise await _status_error(provider, response)
                if response.status_code >= 300:
                    # Redirects are never followed: they could carry the upstream key elsewhere.
                    raise UpstreamError(
                        f"upstream {upstream.name!r} answered a redirect "
                        f"(HTTP {response.status_code}), which the gateway does not follow"
                    )
                sse = response.headers.get("content-type", "").startswith("text/event-stream")
                headers = passthrough_headers(response.headers)
                parser = SSEParser(max_event_bytes=self.settings.max_event_bytes)
                opened = Opened(decision, provider, upstream, response, headers, sse, parser=parser)
                if not sse:
                    opened.content = await _read_bounded(
                        response, upstream, self.settings.max_response_bytes
                    )
                    await response.aclose()
                    return opened
                opened.reader = provider.reader(call)
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
            if isinstance(exc, EventTooLarge):
                raise _too_large(upstream, str(exc)) from exc
            if isinstance(exc, TRANSPORT_ERRORS):
                raise translate_httpx_error(exc, upstream) from exc
            raise

    async def relay(self, opened: Opened) -> AsyncGenerator[bytes, None]:
        """Client frames for a streamed answer, re-framed by the provider's reader; on any
        failure the API's error event, and `opened.status` tells what the client got."""
        reader = opened.reader
        assert reader is not None  # set for every streamed answer by `_send`
        events = opened.first_events
        loop = asyncio.get_running_loop()
        # Idle means no complete event, not no bytes: an upstream dripping bytes that never
        # finish an event is as silent as one sending nothing.
        idle_deadline = loop.time() + self.settings.upstream_timeout
        try:
            while True:
                for data in events:
                    try:
                        frames = reader.frames(data)
                    except StreamFailed as failed:
                        opened.status = 502
                        yield failed.frame
                        return
                    for out in frames:
                        yield out
                    if reader.ended:
                        await _read_rest(opened)
                        return
                if opened.chunks is None:
                    break
                try:
                    async with asyncio.timeout_at(idle_deadline):
                        raw = await anext(opened.chunks)
                except StopAsyncIteration:
                    opened.chunks = None
                    events = opened.parser.close()
                    continue
                events = opened.parser.feed(raw)
                if events:
                    idle_deadline = loop.time() + self.settings.upstream_timeout
            if reader.complete:
                for out in reader.closing_frames():
                    yield out
                return
            error = UpstreamError(
                f"upstream {opened.upstream.name!r} closed the stream before it finished"
            )
        except EventTooLarge as exc:
            error = _too_large(opened.upstream, str(exc))
        except TRANSPORT_ERRORS as exc:
            error = translate_httpx_error(exc, opened.upstream)
        opened.status = error.status
        yield opened.provider.error_frame(error)


async def _read_rest(opened: Opened) -> None:
    """The answer is whole and the client has it: read what the upstream still sends (normally
    just the end of the chunked body) so that its connection goes back to the pool instead of
    being closed. Past `REST_BYTES` or `REST_SECONDS` it is closed after all."""
    if opened.chunks is None:
        return
    left = REST_BYTES
    with contextlib.suppress(*TRANSPORT_ERRORS):
        async with asyncio.timeout(REST_SECONDS):
            async for chunk in opened.chunks:
                left -= len(chunk)
                if left < 0:
                    return


async def _read_bounded(response: httpx.Response, upstream: Upstream, limit: int) -> bytes:
    """A non-streamed answer's body; `UpstreamError` as soon as it passes `limit` bytes."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(
            upstream, f"an answer of {int(declared)} bytes (ROUTELLM_MAX_RESPONSE_BYTES={limit})"
        )
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise _too_large(
                upstream, f"an answer over {limit} bytes (ROUTELLM_MAX_RESPONSE_BYTES)"
            )
    return bytes(body)


def _too_large(upstream: Upstream, what: str) -> UpstreamError:
    return UpstreamError(
        f"upstream {upstream.name!r} sent {what}", code="upstream_response_too_large"
    )


async def _status_error(provider: Provider, response: httpx.Response) -> UpstreamStatus:
    raw = b""
    async for chunk in response.aiter_bytes():
        raw += chunk
        if len(raw) > MAX_ERROR_BODY:
            break
    await response.aclose()
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        payload = None
    return provider.upstream_error(response.status_code, payload, raw, response.headers)
