"""A raw ASGI app speaking the foreign classifier wire formats, for loopback tests.

    /hf/...        Hugging Face Inference: [[{"label", "score"}, ...]] even for one text
    /tei/predict   text-embeddings-inference: a flat list sorted by score, lowest first here
                   (a deliberately different order from ours) and keys in the other order
    /vllm/classify vLLM: {"object": "list", "data": [{"index", "label", "probs", ...}]}
    /fail          500 with a body that echoes the Authorization header
    /slow          sleeps 1 s before answering
    /garbage       200 with a body that is not JSON
    /redirect      307 to /hf/x
Every request is recorded in `FakeRemote.requests` as (path, authorization, json body).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.classifier.conftest import fake_scores
from tests.servers import read_request

Scope = dict[str, Any]


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
        return 404, {"error": "not found", "error_type": "Unhealthy"}
