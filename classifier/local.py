"""The in-process classifier: a transformers sequence classifier behind the micro-batcher.

    classifier = await asyncio.to_thread(LocalClassifier.load, settings)   # blocking: off-loop
    scores = await classifier.classify(["Prove that sqrt(2) is irrational"])
    await classifier.aclose()

`predict` is the synchronous core (tokenize the batch, one forward pass, float32 softmax); it
runs on the batcher's worker thread. `classify` is the async front the gateway and service call.

Only the first `max_length` tokens of a text count, so no text reaches the tokenizer whole:
`bound` cuts it to the shortest prefix (8192 characters, doubling up to `max_chars`) whose tokens
provably start like the whole text's, so decisions on long texts are those of the uncut text
while a 15 MB message costs about one normal pass instead of seconds of the only worker thread.

The forward pass runs on one of two runtimes (`ROUTELLM_BERT_RUNTIME`, default auto):

- ONNX Runtime (`classifier.ort`) for float32 and int8 on CPU: the model is exported, fused and,
  for int8, quantized once into an on-disk cache, then reused on later starts. float32 gives
  RouteLLM's scores (within 1e-5) about twice as fast as torch. If the export fails under `auto`,
  start-up logs a warning and continues on torch: a speed-up never stops the classifier.
- torch for bfloat16 and CUDA. bfloat16 is only fast on CPUs with AMX or AVX512-BF16, or on
  CUDA; on AVX2-only CPUs torch emulates it and it is several times slower than float32.

`ROUTELLM_BERT_DTYPE=auto` is resolved here, once, from the CPU's flags (`classifier.cpu`); the
start-up log line and `health()` name the flags, the dtype chosen and why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from classifier.base import ClassifierUnavailable, Scores, first_line
from classifier.batching import MicroBatcher
from classifier.cpu import CpuFeatures, DtypeChoice, choose_dtype, detect_cpu_features
from classifier.loading import FIX_HINT, Runner, cuda_wanted, load_parts
from classifier.settings import ClassifierSettings

if TYPE_CHECKING:
    import torch


logger = logging.getLogger(__name__)

FIRST_CUT_CHARS = 8192
"""The first cut `bound` tries. Measured on the synthetic XLM-R tokenizer: 510 tokens of English
prose take about 900 characters, of words it does not know 520; XLM-R's own 250k-piece
vocabulary is coarser still (about 4 characters a token in English)."""
_CUT_MARGIN_CHARS = 64
"""A token ending this close to a cut may change when the text goes on (a word cut in two,
a combining mark after the cut): only tokens ending before it are taken as final."""


class LocalClassifier:
    """A sequence classifier loaded with transformers, batched on a worker thread.

    Build it with `LocalClassifier.load(settings)`; the constructor takes already-loaded parts.
    """

    def __init__(
        self,
        runner: Runner,
        tokenizer: Any,
        *,
        labels: tuple[str, ...],
        name: str,
        device: torch.device,
        dtype: str = "float32",
        max_length: int = 512,
        max_chars: int = 131_072,
        batch_size: int = 16,
        max_wait_ms: float = 2.0,
        cache_size: int = 4096,
        cpu: CpuFeatures | None = None,
        dtype_choice: DtypeChoice | None = None,
    ) -> None:
        self.runner = runner
        self._cpu = cpu
        self._dtype_choice = dtype_choice
        self._tokenizer = tokenizer
        self._name = name
        self._device = device
        self._dtype = dtype
        self._max_length = max_length
        self._max_chars = max_chars
        # Offsets (needed to prove a cut harmless) come from fast tokenizers only.
        self._can_cut = bool(getattr(tokenizer, "is_fast", False))
        self._content_tokens = max_length - tokenizer.num_special_tokens_to_add(pair=False)
        self.labels = labels
        self.batcher = MicroBatcher(
            self.predict,
            lengths=self.lengths,
            batch_size=batch_size,
            max_wait_ms=max_wait_ms,
            cache_size=cache_size,
        )

    @classmethod
    def load(cls, settings: ClassifierSettings) -> LocalClassifier:
        """Load, prepare and warm up the model. Blocking (seconds; minutes when an ONNX export
        is not cached yet): call it with `asyncio.to_thread`. Raises `ClassifierUnavailable`
        with a one-line fix on any failure."""
        started = time.perf_counter()
        cpu = detect_cpu_features()
        dtype_choice: DtypeChoice | None = None
        if settings.dtype == "auto":
            dtype_choice = choose_dtype(cpu, cuda=cuda_wanted(settings), runtime=settings.runtime)
            settings = dataclasses.replace(settings, dtype=dtype_choice.dtype)
        runner, tokenizer, labels, device = load_parts(settings)
        max_length = min(settings.max_length, int(tokenizer.model_max_length))
        classifier = cls(
            runner,
            tokenizer,
            labels=labels,
            name=settings.model,
            device=device,
            dtype=settings.dtype,
            max_length=max_length,
            max_chars=settings.max_chars,
            batch_size=settings.batch_size,
            max_wait_ms=settings.max_wait_ms,
            cache_size=settings.cache_size,
            cpu=cpu,
            dtype_choice=dtype_choice,
        )
        try:
            # The first pass allocates and picks kernels: pay it here, not on a user's request.
            classifier.predict(["warm-up"])
        except Exception as exc:
            raise ClassifierUnavailable(
                f"classifier model {settings.model!r} failed its warm-up pass "
                f"({first_line(exc)}): {FIX_HINT}"
            ) from exc
        logger.info(
            "classifier %s loaded on %s (%s, %s%s, max_length %d) in %.1f s; CPU: %s",
            settings.model,
            device,
            runner.runtime,
            settings.dtype,
            f" chosen by auto: {dtype_choice.reason}" if dtype_choice else "",
            max_length,
            time.perf_counter() - started,
            cpu.describe(),
        )
        return classifier

    @property
    def name(self) -> str:
        """The model id or directory it was loaded from."""
        return self._name

    @property
    def runtime(self) -> str:
        """`torch` or `onnxruntime`: what runs the forward pass."""
        return self.runner.runtime

    def bound(self, text: str) -> str:
        """`text`, or the shortest tried prefix of it whose first `max_length` tokens are those
        of the whole text. Blocking (tokenizes up to twice `max_chars` characters in the worst
        case, a few thousand for ordinary long texts): runs on the worker thread.

        A prefix is taken once the content tokens it needs all end at least `_CUT_MARGIN_CHARS`
        before the cut. Past `max_chars` the text is cut there: only a text with fewer than
        `max_length` tokens in its first `max_chars` characters (a long run the tokenizer folds
        into few tokens) can be decided differently than uncut."""
        limit = min(FIRST_CUT_CHARS, self._max_chars)
        if len(text) <= limit or not self._can_cut:
            return text[: self._max_chars]
        while limit < len(text):
            head = text[:limit]
            offsets = self._tokenizer(
                head,
                add_special_tokens=False,
                return_offsets_mapping=True,
                return_attention_mask=False,
                verbose=False,  # a prefix over 512 tokens is the point, not a mistake
            )["offset_mapping"]
            needed = self._content_tokens
            if len(offsets) >= needed and offsets[needed - 1][1] <= limit - _CUT_MARGIN_CHARS:
                return head
            if limit >= self._max_chars:
                return head
            limit = min(limit * 2, self._max_chars)
        return text

    def lengths(self, texts: list[str]) -> list[int]:
        """Token counts (specials included, truncation applied): the batcher groups by these."""
        encoded = self._tokenizer(
            [self.bound(t) for t in texts],
            truncation=True,
            max_length=self._max_length,
            return_attention_mask=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def predict(self, texts: list[str]) -> list[Scores]:
        """Blocking: scores for each text with one forward pass. Runs on the worker thread."""
        if not texts:
            return []
        encoded = self._tokenizer(
            [self.bound(t) for t in texts],
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="np",
        )
        logits = self.runner.logits(encoded["input_ids"], encoded["attention_mask"])
        # Softmax in float32 whatever the model dtype, as RouteLLM computes it: bfloat16
        # probabilities are too coarse for thresholds such as 0.4066.
        logits = logits.astype(np.float32, copy=False)
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = (exp / exp.sum(axis=-1, keepdims=True)).tolist()
        return [Scores(self.labels, tuple(row)) for row in probs]

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        """One `Scores` per text, batched with concurrent callers; raises `ClassifierError`."""
        # `bound` never reads past max_chars: cutting here already keeps the queue and the
        # cache from holding a client's megabytes.
        return await self.batcher.submit([text[: self._max_chars] for text in texts])

    async def health(self) -> dict[str, object]:
        """Ready once loaded; includes device, dtype and batcher counters."""
        stats = self.batcher.stats
        return {
            "status": "closed" if self.batcher.closed else "ok",
            "model": self._name,
            "device": str(self._device),
            "dtype": self._dtype,
            "dtype_auto": self._dtype_choice.reason if self._dtype_choice else None,
            "runtime": self.runner.runtime,
            "cpu_features": self._cpu.describe() if self._cpu else None,
            "labels": list(self.labels),
            "forward_passes": stats.forward_passes,
            "cache_hits": stats.cache_hits,
            "cache_misses": stats.cache_misses,
        }

    async def aclose(self) -> None:
        """Stop the worker thread; later calls raise `ClassifierUnavailable`."""
        await self.batcher.aclose()


__all__ = ["FIX_HINT", "LocalClassifier"]
