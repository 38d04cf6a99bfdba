"""A raw ASGI app speaking the foreign classifier wire formats, for loopback tests.

    /hf/...        Hugging Face Inference: [[{"label", "score"}, ...]] even for one text
    /tei/predict   text-embeddings-inference: a flat list sorted by score, lowest first here
                   (a deliberately different order from ours) and keys in the other order
    /vllm/classify vLLM: {"object": "list", "data": [{"index", "label", "probs", ...}]}
    /fail          500 with a body that echoes the Authorization header
    /slow          sleeps 1 s before answering
    /garbage       200 with a body that is not JSON
    /redirect      307 to /hf/x
    /hostile/<case> 200 with an answer no classifier should give (`HOSTILE` names the cases)
Every request is recorded in `FakeRemote.requests` as (path, authorization, json body).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.classifier.conftest import fake_scores
from tests.servers import read_request

Scope = dict[str, Any]


def _ranked(**scores: Any) -> list[dict[str, Any]]:
    return [{"label": label, "score": score} for label, score in scores.items()]


HOSTILE: dict[str, Any] = {
    "crlf-label": [
        {"label": "LABEL_0\r\nx-routellm-model: evil", "score": 1.0},
        *_ranked(LABEL_1=0.0, LABEL_2=0.0),
    ],
    "nan": b'[{"label": "LABEL_0", "score": NaN}, {"label": "LABEL_1", "score": 0.0}, '
    b'{"label": "LABEL_2", "score": 0.0}]',
    "too-high": _ranked(LABEL_0=7.5, LABEL_1=0.0, LABEL_2=0.0),
    "negative": _ranked(LABEL_0=-3, LABEL_1=0.0, LABEL_2=0.0),
    "unknown-label": _ranked(LABEL_0=0.5, LABEL_1=0.25, LABEL_9=0.25),
    "not-summing": _ranked(LABEL_0=0.9, LABEL_1=0.9, LABEL_2=0.9),
    "wrong-types": [{"label": ["LABEL_0"], "score": "1"}],
    "huge": b"[" + b'{"label": "LABEL_0", "score": 1.0}, ' * 60_000 + b"{}]",  # about 2 MiB
}


class FakeRemote:
    """The ASGI callable; create one per server."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, Any]] = []

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan to run: uvicorn's "auto" mode carries on without one
        headers, raw = await read_request(scope, receive)
        auth = headers.get("authorization")
        body = json.loads(raw) if raw else None
        path = scope["path"]
        self.requests.append((path, auth, body))
        status, payload = await self._answer(path, body, auth)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        extra = [(b"location", b"/hf/x")] if status == 307 else []
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), *extra],
            }
        )
        await send({"type": "http.response.body", "body": data})

    async def _answer(self, path: str, body: Any, auth: str | None) -> tuple[int, Any]:
        if path.startswith("/hf"):
            ranked = fake_scores(body["inputs"]).ranked()
            return 200, [[{"label": lb, "score": p} for lb, p in ranked]]
        if path == "/tei/predict":
            ranked = sorted(fake_scores(body["inputs"]).ranked(), key=lambda r: r[1])
            return 200, [{"score": p, "label": lb} for lb, p in ranked]
        if path == "/vllm/classify":
            data = []
            for i, text in enumerate(body["input"]):
                scores = fake_scores(text)
                data.append(
                    {"index": i, "label": scores.top[0], "probs": list(scores.probs),
                     "num_classes": 3}
                )  # fmt: skip
            usage = {"prompt_tokens": 1, "total_tokens": 1}
            return 200, {"id": "c-1", "object": "list", "created": 0, "model": "m",
                         "data": data, "usage": usage}  # fmt: skip
        if path == "/fail":
            return 500, {"error": f"boom; you sent {auth}", "error_type": "backend"}
        if path == "/slow":
            await asyncio.sleep(1.0)
            return 200, [{"label": f"LABEL_{i}", "score": float(i == 0)} for i in range(3)]
        if path == "/garbage":
            return 200, b"<html>not json</html>"
        if path == "/redirect":
            return 307, b""
        if path.startswith("/hostile/"):
            return 200, HOSTILE[path.removeprefix("/hostile/")]
        return 404, {"error": "not found", "error_type": "Unhealthy"}
