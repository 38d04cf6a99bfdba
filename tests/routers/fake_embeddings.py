"""A fake OpenAI-compatible embeddings API (`POST /v1/embeddings`), served on 127.0.0.1 by
`tests.servers.serve`, and an MF checkpoint written in RouteLLM's format.

Each text's vector is drawn from a generator seeded by the text's digest, so any process that
asks for the same text gets the same float32 vector; its length varies (0.5 to 2), as
RouteLLM's MF router uses the vectors unscaled. It answers floats, or base64 when asked
(`encoding_format: base64`, what the `openai` client asks for by default).

`mode` picks the behaviour: `ok`, `status-500`, `hang` (never answers), `garbage` (200 with a
body that is not embeddings), `wrong-dim` (vectors of another size). `latency` delays every
answer; `calls` records the inputs of each request. `encode`, when given, answers with its
vectors instead (a real sentence encoder: the fake then stands for text-embeddings-inference).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from tests.servers import read_request

TEXT_DIM = 1536
"""text-embedding-3-small's size, and RouteLLM's MF checkpoint's `text_dim`."""


def vector(text: str, dim: int = TEXT_DIM) -> np.ndarray:
    """The fake's float32 embedding of `text`."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    raw = rng.standard_normal(dim)
    scale = 0.5 + 1.5 * rng.random()
    return np.asarray(raw / np.linalg.norm(raw) * scale, dtype=np.float32)


@dataclass
class FakeEmbeddings:
    dim: int = TEXT_DIM
    mode: str = "ok"
    latency: float = 0.0
    calls: list[list[str]] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    encode: Callable[[list[str]], np.ndarray] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers, raw = await read_request(scope, receive)
        if scope["method"] != "POST":
            await _respond(send, 404, b'{"error": {"message": "POST /v1/embeddings"}}')
            return
        body = json.loads(raw)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.calls.append(list(texts))
        self.models.append(str(body.get("model")))
        self.keys.append(headers.get("authorization", ""))
        answer = asyncio.ensure_future(self._answer(scope["path"], texts, body, send))
        watcher = asyncio.ensure_future(_disconnect(receive))
        try:
            await asyncio.wait({answer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            answer.cancel()  # a client that hung up needs no answer (and `hang` never ends)
            await asyncio.gather(answer, return_exceptions=True)
        finally:
            watcher.cancel()

    async def _answer(self, path: str, texts: list[str], body: dict[str, Any], send: Any) -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        if path != "/v1/embeddings":
            await _respond(send, 404, b'{"error": {"message": "not found"}}')
        elif self.mode == "status-500":
            await _respond(send, 500, b'{"error": {"message": "fake embeddings say 500"}}')
        elif self.mode == "hang":
            await asyncio.sleep(3600)
        elif self.mode == "garbage":
            await _respond(send, 200, b'{"data": [{"index": 0, "embedding": "not a vector"}]}')
        else:
            dim = self.dim + 3 if self.mode == "wrong-dim" else self.dim
            as_base64 = body.get("encoding_format") == "base64"
            data = []
            real = self.encode(texts) if self.encode is not None else None
            for i, text in enumerate(texts):
                v = real[i] if real is not None else vector(text, dim)
                embedding: Any = (
                    base64.b64encode(v.astype("<f4").tobytes()).decode()
                    if as_base64
                    else [float(x) for x in v]
                )
                data.append({"object": "embedding", "index": i, "embedding": embedding})
            usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
            doc = {"object": "list", "data": data, "model": body.get("model"), "usage": usage}
            await _respond(send, 200, json.dumps(doc).encode())


async def _respond(send: Any, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _disconnect(receive: Any) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def write_mf_checkpoint(
    directory: Path,
    *,
    seed: int = 0,
    dim: int = 128,
    text_dim: int = TEXT_DIM,
    num_models: int = 64,
    spread: float = 4.0,
    weights: str = "model.safetensors",
) -> Path:
    """An MF checkpoint as RouteLLM's `MFModel.save_pretrained` writes it: config.json and the
    weights under its state-dict names, random, scaled by `spread` so win rates cover (0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    state = {
        "P.weight": torch.randn(num_models, dim, generator=generator),
        "text_proj.0.weight": torch.randn(dim, text_dim, generator=generator),
        "classifier.0.weight": torch.randn(1, dim, generator=generator) * spread / dim**0.5,
    }
    directory.mkdir(parents=True, exist_ok=True)
    config = {"dim": dim, "num_models": num_models, "text_dim": text_dim}
    config |= {"num_classes": 1, "use_proj": True}
    (directory / "config.json").write_text(json.dumps(config))
    if weights == "model.safetensors":
        save_file(state, str(directory / weights))
    else:
        torch.save(state, str(directory / weights))
    return directory
