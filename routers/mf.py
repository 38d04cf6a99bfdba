"""RouteLLM's matrix-factorisation router (`mf`), served as RouteLLM serves it.

    router = MFRouter.load("routellm/mf_gpt4_augmented", MFOptions(embeddings=api))  # blocking
    (scores,) = await router.classify(["Prove that sqrt(2) is irrational"])
    scores.get("LABEL_0")   # the strong model's predicted win rate

RouteLLM 0.2.0 (`routers/matrix_factorization/model.py`) embeds the prompt with an embeddings API
(`text-embedding-3-small`, used as answered: not rescaled), projects it to `dim`, and scores a
model as `classifier(normalize(P[m]) * proj(e))`; the strong model's win rate is
`sigmoid(score(strong) - score(weak))` for a fixed scoring pair of its 64 Arena models
(`MODEL_NAMES`; gpt-4-1106-preview against mixtral-8x7b-instruct-v0.1 by default). The
answer is a `Scores` over ("LABEL_0", "LABEL_2") with P(LABEL_0) = the win rate, so every rule
written for the BERT router (strong/weak, tiers, calibrate, shadow judging) reads it unchanged.

For a fixed pair the score difference is linear in the embedding, so it is folded once into
one vector (`MFCheckpoint.direction`) and a prompt costs one dot product after its embedding.

The checkpoint is RouteLLM's `PyTorchModelHubMixin` directory: `config.json` (`dim`,
`num_models`, `text_dim`, `num_classes`, `use_proj`) and `model.safetensors` or
`pytorch_model.bin`, local or a hub id.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from classifier.base import ClassifierError, ClassifierUnavailable, Scores, first_line
from classifier.batching import MicroBatcher
from classifier.hub import unreachable
from routers.embedding import RouterOptions
from routers.encoders import EmbeddingsApi, RemoteEncoder
from routers.manifest import Manifest, RouterDirectoryError

DEFAULT_MF_MODEL = "routellm/mf_gpt4_augmented"
"""RouteLLM's published MF checkpoint (`ROUTELLM_MF_MODEL`'s default)."""
DEFAULT_STRONG = "gpt-4-1106-preview"
DEFAULT_WEAK = "mixtral-8x7b-instruct-v0.1"
"""RouteLLM's scoring pair: the models whose win rate the router predicts."""
WIN_LABELS = ("LABEL_0", "LABEL_2")
"""P(LABEL_0): the strong model wins; P(LABEL_2): it does not (the BERT router's labels)."""
CONFIG = "config.json"
WEIGHTS = ("model.safetensors", "pytorch_model.bin")
CONFIG_KEYS = ("dim", "num_models", "text_dim", "num_classes", "use_proj")

MODEL_NAMES: tuple[str, ...] = tuple(
    """
    RWKV-4-Raven-14B alpaca-13b chatglm-6b chatglm2-6b chatglm3-6b claude-1 claude-2.0 claude-2.1
    claude-instant-1 codellama-34b-instruct deepseek-llm-67b-chat dolly-v2-12b
    dolphin-2.2.1-mistral-7b falcon-180b-chat fastchat-t5-3b gemini-pro gemini-pro-dev-api
    gpt-3.5-turbo-0125 gpt-3.5-turbo-0314 gpt-3.5-turbo-0613 gpt-3.5-turbo-1106 gpt-4-0125-preview
    gpt-4-0314 gpt-4-0613 gpt-4-1106-preview gpt4all-13b-snoozy guanaco-33b koala-13b llama-13b
    llama-2-13b-chat llama-2-70b-chat llama-2-7b-chat llama2-70b-steerlm-chat mistral-7b-instruct
    mistral-7b-instruct-v0.2 mistral-medium mixtral-8x7b-instruct-v0.1 mpt-30b-chat mpt-7b-chat
    nous-hermes-2-mixtral-8x7b-dpo oasst-pythia-12b openchat-3.5 openchat-3.5-0106
    openhermes-2.5-mistral-7b palm-2 pplx-70b-online pplx-7b-online qwen-14b-chat qwen1.5-4b-chat
    qwen1.5-72b-chat qwen1.5-7b-chat solar-10.7b-instruct-v1.0 stablelm-tuned-alpha-7b
    starling-lm-7b-alpha stripedhyena-nous-7b tulu-2-dpo-70b vicuna-13b vicuna-33b vicuna-7b
    wizardlm-13b wizardlm-70b yi-34b-chat zephyr-7b-alpha zephyr-7b-beta
    """.split()  # noqa: SIM905 (a table of 64 names reads better as words than as 64 lines)
)
"""RouteLLM's `MODEL_IDS`, in id order: the Chatbot Arena models its checkpoints learnt a vector
for (`MODEL_IDS[name]` is the row of `P`)."""
MODEL_IDS = {name: i for i, name in enumerate(MODEL_NAMES)}


@dataclass(frozen=True, slots=True)
class MFOptions:
    """How an MF checkpoint is served: the embeddings API, the scoring pair, the batcher and the
    embeddings breaker."""

    embeddings: EmbeddingsApi | None = None
    strong: str = DEFAULT_STRONG
    weak: str = DEFAULT_WEAK
    batch_size: int = 32
    max_wait_ms: float = 2.0
    cache_size: int = 4096
    breaker_failures: int = 5
    """Embeddings calls failing in a row that open the breaker ..."""
    breaker_cooldown: float = 30.0
    """... for this many seconds: texts fail at once (the fallback answers), then one call
    probes."""
    transport: httpx.BaseTransport | None = None
    """The embeddings client's transport (tests); None: httpx's own."""


@dataclass(frozen=True, slots=True)
class MFCheckpoint:
    """The weights of RouteLLM's `MFModel`, as arrays."""

    source: str
    dim: int
    text_dim: int
    models: np.ndarray
    """`P.weight`: one learnt vector per model (num_models × dim)."""
    projection: np.ndarray | None
    """`text_proj.0.weight` (dim × text_dim); None without `use_proj` (text_dim == dim)."""
    classifier: np.ndarray
    """`classifier.0.weight` (1 × dim)."""
    version: str
    """A digest of config.json and the weights: the same version scores the same."""

    @classmethod
    def read(cls, source: str) -> MFCheckpoint:
        """Read a local directory or a hub id (downloaded once into the hub cache). Blocking;
        `RouterDirectoryError` with the fix when it cannot be read."""
        root = resolve(source)
        config = read_config(root)
        for name in WEIGHTS:
            if (root / name).is_file():
                weights_file = root / name
                break
        else:
            raise RouterDirectoryError(
                f"{source}: an MF checkpoint needs {' or '.join(WEIGHTS)} beside {CONFIG}"
            )
        try:
            tensors = _read_tensors(weights_file)
        except Exception as exc:  # safetensors and torch raise their own kinds for bad files
            raise RouterDirectoryError(f"{weights_file} cannot be read: {exc}") from None
        dim, text_dim = config["dim"], config["text_dim"]
        expected = {
            "P.weight": (config["num_models"], dim),
            "classifier.0.weight": (1, dim),
            **({"text_proj.0.weight": (dim, text_dim)} if config["use_proj"] else {}),
        }
        for key, shape in expected.items():
            found = tensors.get(key)
            if found is None or found.shape != shape:
                got = "missing" if found is None else f"shaped {found.shape}"
                raise RouterDirectoryError(
                    f"{weights_file}: {key} is {got}, config.json says {shape}: the weights and "
                    "config.json are not of one RouteLLM MF checkpoint"
                )
        digest = hashlib.sha256((root / CONFIG).read_bytes())
        digest.update(weights_file.read_bytes())
        return cls(
            source,
            dim,
            text_dim,
            tensors["P.weight"],
            tensors.get("text_proj.0.weight") if config["use_proj"] else None,
            tensors["classifier.0.weight"],
            digest.hexdigest()[:16],
        )

    def direction(self, strong: int, weak: int) -> np.ndarray:
        """The vector `d` with score(strong) − score(weak) = e · d for an embedding `e`:
        classifier ⊙ (normalize(P[strong]) − normalize(P[weak])), through the projection."""
        p = self.models[[strong, weak]].astype(np.float64)
        # torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
        p /= np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)
        gap = (p[0] - p[1]) * self.classifier[0].astype(np.float64)
        if self.projection is None:
            return np.asarray(gap)
        return np.asarray(self.projection.astype(np.float64).T @ gap)


class MFRouter:
    """The strong model's win rate for each text, from an MF checkpoint and an embeddings API,
    behind the micro-batcher (batched calls, an LRU cache by the text's digest)."""

    labels = WIN_LABELS

    def __init__(
        self, checkpoint: MFCheckpoint, encoder: RemoteEncoder, options: MFOptions
    ) -> None:
        self.checkpoint = checkpoint
        self.encoder = encoder
        self.strong, self.weak = options.strong, options.weak
        self._direction = checkpoint.direction(model_id(options.strong), model_id(options.weak))
        self._timeout = encoder.api.timeout
        self.breaker = EmbeddingsBreaker(options.breaker_failures, options.breaker_cooldown)
        self.batcher = MicroBatcher(
            self.predict,
            # One group per batch: an embeddings call costs the same whatever the lengths.
            lengths=lambda texts: [1] * len(texts),
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            cache_size=options.cache_size,
            name="mf-router-batcher",
        )

    @classmethod
    def load(cls, source: str, options: MFOptions) -> MFRouter:
        """Read the checkpoint and open the embeddings client. Blocking; `ClassifierUnavailable`
        with the fix when it cannot be served."""
        if options.embeddings is None:
            raise ClassifierUnavailable(
                "the MF router embeds prompts with an embeddings API: set ROUTELLM_EMBEDDINGS_URL "
                "to its base URL (called as <url>/embeddings), e.g. https://api.openai.com/v1"
            )
        for name in (options.strong, options.weak):
            model_id(name)
        checkpoint = MFCheckpoint.read(source)
        for name in (options.strong, options.weak):
            if model_id(name) >= len(checkpoint.models):
                raise RouterDirectoryError(
                    f"{source} has vectors for {len(checkpoint.models)} models: {name!r} "
                    f"(id {model_id(name)}) is not among them"
                )
        return cls(checkpoint, RemoteEncoder(options.embeddings, options.transport), options)

    @property
    def name(self) -> str:
        return self.checkpoint.source

    def predict(self, texts: list[str]) -> list[Scores]:
        """The blocking core, on the batcher's worker thread: one embeddings call."""
        self.breaker.check(time.monotonic())
        try:
            vectors = self.encoder.embed(texts)
            if vectors.shape[1] != self.checkpoint.text_dim:
                raise ClassifierError(
                    f"embeddings API {self.encoder.name} answered {vectors.shape[1]}-dimensional "
                    f"vectors; the MF checkpoint takes {self.checkpoint.text_dim}: set "
                    "ROUTELLM_EMBEDDINGS_MODEL to the model it was trained on "
                    "(text-embedding-3-small for RouteLLM's)"
                )
        except ClassifierError:
            self.breaker.record(ok=False, now=time.monotonic())
            raise
        self.breaker.record(ok=True, now=time.monotonic())
        rates = sigmoid(vectors.astype(np.float64) @ self._direction)
        return [Scores(WIN_LABELS, (float(r), float(1.0 - r))) for r in rates]

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        # The client's timeout bounds each read; this bounds the whole wait, queue included.
        try:
            async with asyncio.timeout(self._timeout):
                return await self.batcher.submit(texts)
        except TimeoutError:
            raise ClassifierError(
                f"embeddings API {self.encoder.name}: no answer within {self._timeout:g} s"
            ) from None

    async def health(self) -> dict[str, object]:
        return {
            "ready": not self.batcher.closed,
            "kind": "mf",
            "checkpoint": self.checkpoint.source,
            "version": self.checkpoint.version,
            "embeddings": self.encoder.name,
            "strong": self.strong,
            "weak": self.weak,
            "embeddings_breaker": "open" if self.breaker.is_open(time.monotonic()) else "closed",
            "forward_passes": self.batcher.stats.forward_passes,
            "cache_hits": self.batcher.stats.cache_hits,
            "models": list(MODEL_NAMES),
        }

    async def aclose(self) -> None:
        await self.batcher.aclose()
        self.encoder.close()


@dataclass
class EmbeddingsBreaker:
    """`failures` embeddings calls failing in a row open it for `cooldown` seconds, during which
    texts fail at once; then the next call probes, and its outcome closes or re-opens it.
    Used from the batcher's one worker thread only."""

    failures: int
    cooldown: float
    streak: int = 0
    open_until: float = 0.0

    def check(self, now: float) -> None:
        if self.is_open(now):
            raise ClassifierError(
                f"embeddings breaker open for {self.open_until - now:.1f} s more after "
                f"{self.streak} failed calls in a row"
            )

    def record(self, *, ok: bool, now: float) -> None:
        self.streak = 0 if ok else self.streak + 1
        if self.streak >= self.failures:
            self.open_until = now + self.cooldown

    def is_open(self, now: float) -> bool:
        return self.streak >= self.failures and now < self.open_until


def model_id(name: str) -> int:
    """The row of `name` in RouteLLM's table; `RouterDirectoryError` naming the fix."""
    found = MODEL_IDS.get(name)
    if found is None:
        raise RouterDirectoryError(
            f"{name!r} is not one of the 64 models RouteLLM's MF router scores: pick the pair "
            "nearest your models from `mf_routers` in the gateway's /health (`MODEL_NAMES`)"
        )
    return found


def sigmoid(x: np.ndarray) -> np.ndarray:
    # The tanh form never overflows (1 / (1 + exp(-x)) warns for x below about -709).
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))


def is_mf_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds RouteLLM's MF config.json (it has no router.json)."""
    try:
        config = json.loads((Path(directory) / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and all(k in config for k in CONFIG_KEYS)


def resolve(source: str) -> Path:
    """`source` itself when it is a directory, else the hub snapshot of that id."""
    if Path(source).is_dir():
        return Path(source)
    from huggingface_hub import snapshot_download

    fix = (
        f"download it where the hub can be reached (`hf download {source} --local-dir DIR`) "
        "and set ROUTELLM_MF_MODEL=DIR"
    )
    if reason := unreachable(source, CONFIG):
        raise RouterDirectoryError(
            f"the MF checkpoint {source!r} cannot be downloaded: {reason}: {fix}"
        )
    try:
        where = snapshot_download(source, allow_patterns=[CONFIG, *WEIGHTS])
    except Exception as exc:  # the hub client raises many kinds: offline, 404, auth, disk
        raise RouterDirectoryError(
            f"the MF checkpoint {source!r} could not be downloaded ({first_line(exc)}): {fix}"
        ) from None
    return Path(where)


def read_config(root: Path) -> dict[str, int]:
    """config.json's five numbers, checked (use_proj as 0/1)."""
    try:
        raw = json.loads((root / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RouterDirectoryError(
            f"{root}/{CONFIG} cannot be read ({exc}): ROUTELLM_MF_MODEL must name a RouteLLM MF "
            f"checkpoint (e.g. {DEFAULT_MF_MODEL})"
        ) from None
    missing = [k for k in CONFIG_KEYS if not isinstance(raw, dict) or k not in raw]
    if missing:
        raise RouterDirectoryError(
            f"{root}/{CONFIG} lacks {', '.join(missing)}: it is not a RouteLLM MF checkpoint"
        )
    try:
        config = {k: int(raw[k]) for k in CONFIG_KEYS}
    except (TypeError, ValueError):
        config = {}
    if len(config) != len(CONFIG_KEYS) or min(config.values()) < 0:
        raise RouterDirectoryError(
            f"{root}/{CONFIG}: {', '.join(CONFIG_KEYS)} must be whole numbers (use_proj a boolean)"
        )
    if config["num_classes"] != 1:
        raise RouterDirectoryError(
            f"{root}/{CONFIG}: num_classes is {config['num_classes']}; RouteLLM's win rate "
            "reads one score per model (num_classes 1)"
        )
    if not config["use_proj"] and config["text_dim"] != config["dim"]:
        raise RouterDirectoryError(
            f"{root}/{CONFIG}: without use_proj, text_dim must equal dim (RouteLLM's own check)"
        )
    return config


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        return {k: np.asarray(v, dtype=np.float32) for k, v in load_file(str(path)).items()}
    import torch

    state: dict[str, Any] = torch.load(str(path), map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


async def open_mf(source: str, options: MFOptions) -> MFRouter:
    """`MFRouter.load` off the event loop (reading weights, maybe downloading them)."""
    return await asyncio.to_thread(MFRouter.load, source, options)


def load(directory: str, manifest: Manifest, options: RouterOptions) -> MFRouter:
    """The registry's entry point for this kind (RouteLLM's scoring pair)."""
    del manifest  # an MF checkpoint has no router.json: the registry recognised config.json
    return MFRouter.load(
        directory,
        MFOptions(
            embeddings=options.embeddings,
            batch_size=options.batch_size,
            max_wait_ms=options.max_wait_ms,
            cache_size=options.cache_size,
        ),
    )
