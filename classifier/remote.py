"""A `Classifier` over HTTP: this project's service, Hugging Face Inference, TEI or vLLM.

    classifier = RemoteClassifier("http://127.0.0.1:8800/predict", token=..., timeout=2.0)
    scores = await classifier.classify(["hello"])
    await classifier.aclose()

A URL whose path ends in `/classify` gets vLLM requests (`{"input": [...]}`, one request for all
texts). Any other URL gets `{"inputs": "text"}`, one request per text sent concurrently: that
shape means the same thing to all the other servers, whereas a list means a batch to some and a
text *pair* to text-embeddings-inference. Every failure becomes a `ClassifierError`, here only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Sequence
from typing import Literal, NoReturn
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
import msgspec

from classifier.base import ROUTELLM_LABELS, ClassifierError, Scores
from classifier.formats import classify_request, parse_response

logger = logging.getLogger(__name__)

_SNIPPET_CHARS = 200
MAX_RESPONSE_BYTES = 1024 * 1024
"""Default cap on an answer's body: 64 texts of three scores take about 10 KiB."""

Problem = Literal["timeout", "unreachable", "status", "too_large", "not_json", "invalid", "count"]
_INVALID: frozenset[Problem] = frozenset({"too_large", "not_json", "invalid", "count"})


class RemoteClassifier:
    """Classify texts with a remote service over one pooled `httpx.AsyncClient`.

    `transport` is the test seam (`httpx.MockTransport`); production uses httpx's pooled one.
    `timeout` bounds each `classify` call as a whole, not only each network read.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
        labels: tuple[str, ...] = ROUTELLM_LABELS,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        parts = urlsplit(url)
        # Credentials in the URL become explicit Basic auth (unless a token is set: Bearer wins)
        # and leave the URL itself, so httpx's request log never shows them.
        user, password = unquote(parts.username or ""), unquote(parts.password or "")
        auth = httpx.BasicAuth(user, password) if (user or password) and not token else None
        self._url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
        self._public_url = redact_url(url)
        self._secrets = [s for s in (token, password, _basic(user, password)) if s]
        self._timeout = timeout
        self._vllm = parts.path.rstrip("/").endswith("/classify")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            headers=headers,
            auth=auth,
        )
        self._labels = labels
        self._max_response_bytes = max_response_bytes
        self.last_error: str | None = None
        self.errors = 0
        """Requests to the classifier that failed, for any reason."""
        self.invalid_answers = 0
        """Requests whose answer was too large, not JSON, or not valid scores."""
        self._logged: Problem | None = None

    @property
    def name(self) -> str:
        """The URL without credentials or query."""
        return self._public_url

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        """One `Scores` per text, in order. Raises `ClassifierError` on any failure."""
        if not texts:
            return []
        try:
            async with asyncio.timeout(self._timeout):
                if self._vllm:
                    results = await self._post(classify_request(texts), expect=len(texts))
                else:
                    results = await self._each(texts)
        except TimeoutError:
            self._failed("timeout", f"timed out after {self._timeout:g} s")
        self.last_error = None
        self._logged = None
        return results

    async def _each(self, texts: Sequence[str]) -> list[Scores]:
        tasks = [asyncio.ensure_future(self._post({"inputs": t}, expect=1)) for t in texts]
        try:
            done = await asyncio.gather(*tasks)
        finally:
            for task in tasks:  # one failed: stop the others instead of leaving them running
                task.cancel()
        return [scores[0] for scores in done]

    async def _post(self, body: object, *, expect: int) -> list[Scores]:
        try:
            async with self._client.stream("POST", self._url, json=body) as response:
                raw = await self._read(response)
        except httpx.TimeoutException:
            self._failed("timeout", f"timed out after {self._timeout:g} s")
        except httpx.HTTPError as exc:
            self._failed(
                "unreachable",
                f"unreachable: {type(exc).__name__} {self._clean(str(exc))}".rstrip(),
            )
        text = raw.decode("utf-8", "replace")
        if not response.is_success:
            self._failed("status", f"answered {response.status_code}: {self._clean(text)}")
        try:
            payload = msgspec.json.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
            self._failed(
                "not_json",
                f"answered {response.status_code} with a body that is not JSON: "
                f"{self._clean(text)}",
            )
        try:
            scores = parse_response(payload, self._labels)
        except ClassifierError as exc:
            self._failed("invalid", self._clean(str(exc)))
        if len(scores) != expect:
            self._failed("count", f"returned {len(scores)} results for {expect} texts")
        return scores

    async def _read(self, response: httpx.Response) -> bytes:
        """The body, or a `too_large` failure as soon as it passes `max_response_bytes`."""
        limit = self._max_response_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            self._failed("too_large", f"answered a body of {int(declared)} bytes (limit {limit})")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                self._failed("too_large", f"answered a body larger than {limit} bytes")
        return bytes(body)

    def _failed(self, problem: Problem, detail: str) -> NoReturn:
        message = f"remote classifier {self.name} {detail}"
        self.last_error = message
        self.errors += 1
        if problem in _INVALID:
            self.invalid_answers += 1
        if problem != self._logged:
            # Once per kind of failure until a call succeeds: a broken classifier must not
            # write a line per request. `detail` is one line, secrets and CR/LF removed.
            self._logged = problem
            logger.warning("%s", message)
        raise ClassifierError(message)

    def _clean(self, text: str) -> str:
        """A short one-line snippet without the token or URL credentials (some servers echo
        them), control characters escaped so a log reader's terminal sees text only."""
        text = " ".join(text.split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        if len(text) > _SNIPPET_CHARS:
            text = text[: _SNIPPET_CHARS - 3] + "..."
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)

    async def health(self) -> dict[str, object]:
        """The URL (no credentials) and the last error, if the last call failed."""
        return {
            "status": "error" if self.last_error else "ok",
            "url": self.name,
            "last_error": self.last_error,
            "errors": self.errors,
            "invalid_answers": self.invalid_answers,
        }

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def redact_url(url: str) -> str:
    """`url` without user:password and query string, for logs and `/health`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _basic(user: str, password: str) -> str:
    if not (user or password):
        return ""
    return base64.b64encode(f"{user}:{password}".encode()).decode()
