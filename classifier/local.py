"""The in-process classifier: a transformers sequence classifier behind the micro-batcher.

    classifier = await asyncio.to_thread(LocalClassifier.load, settings)   # blocking: off-loop
    scores = await classifier.classify(["Prove that sqrt(2) is irrational"])
    await classifier.aclose()

`predict` is the synchronous core (tokenize the batch, one forward pass, float32 softmax); it
runs on the batcher's worker thread. `classify` is the async front the gateway and service call.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from classifier.base import ClassifierUnavailable, Scores
from classifier.batching import MicroBatcher
from classifier.settings import ClassifierSettings

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

FIX_HINT = (
    "point ROUTELLM_BERT_MODEL at a local directory with the downloaded model, "
    "or set ROUTELLM_BERT_URL to a remote classifier"
)


class LocalClassifier:
    """A sequence classifier loaded with transformers, batched on a worker thread.

    Build it with `LocalClassifier.load(settings)`; the constructor takes already-loaded parts.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        device: torch.device,
        dtype: str = "float32",
        max_length: int = 512,
        batch_size: int = 16,
        max_wait_ms: float = 2.0,
        cache_size: int = 4096,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._name = name
        self._device = device
        self._dtype = dtype
        self._max_length = max_length
        config = model.config
        self.labels: tuple[str, ...] = tuple(
            str(config.id2label[i]) for i in range(config.num_labels)
        )
        self.batcher = MicroBatcher(
            self.predict, batch_size=batch_size, max_wait_ms=max_wait_ms, cache_size=cache_size
        )

    @classmethod
    def load(cls, settings: ClassifierSettings) -> LocalClassifier:
        """Load, prepare and warm up the model. Blocking (seconds to minutes): call it with
        `asyncio.to_thread`. Raises `ClassifierUnavailable` with a one-line fix on any failure."""
        started = time.perf_counter()
        model, tokenizer, device = _load_parts(settings)
        max_length = min(settings.max_length, int(tokenizer.model_max_length))
        classifier = cls(
            model,
            tokenizer,
            name=settings.model,
            device=device,
            dtype=settings.dtype,
            max_length=max_length,
            batch_size=settings.batch_size,
            max_wait_ms=settings.max_wait_ms,
            cache_size=settings.cache_size,
        )
        try:
            # The first pass allocates and picks kernels: pay it here, not on a user's request.
            classifier.predict(["warm-up"])
        except Exception as exc:
            raise ClassifierUnavailable(
                f"classifier model {settings.model!r} failed its warm-up pass "
                f"({_first_line(exc)}): {FIX_HINT}"
            ) from exc
        logger.info(
            "classifier %s loaded on %s (%s, max_length %d) in %.1f s",
            settings.model,
            device,
            settings.dtype,
            max_length,
            time.perf_counter() - started,
        )
        return classifier

    @property
    def name(self) -> str:
        """The model id or directory it was loaded from."""
        return self._name

    def predict(self, texts: list[str]) -> list[Scores]:
        """Blocking: scores for each text with one forward pass. Runs on the worker thread."""
        import torch

        if not texts:
            return []
        encoded = self._tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self._max_length,
            return_tensors="pt",
        )
        inputs = {k: v.to(self._device) for k, v in encoded.items()}
        with torch.inference_mode():
            logits = self._model(**inputs).logits
            # Softmax in float32 whatever the model dtype: bfloat16 probabilities are too coarse
            # for thresholds such as 0.4066.
            probs = torch.softmax(logits.float(), dim=-1).cpu().tolist()
        return [Scores(self.labels, tuple(row)) for row in probs]

    async def classify(self, texts: Sequence[str]) -> list[Scores]:
        """One `Scores` per text, batched with concurrent callers; raises `ClassifierError`."""
        return await self.batcher.submit(texts)

    async def health(self) -> dict[str, object]:
        """Ready once loaded; includes device, dtype and batcher counters."""
        stats = self.batcher.stats
        return {
            "status": "closed" if self.batcher.closed else "ok",
            "model": self._name,
            "device": str(self._device),
            "dtype": self._dtype,
            "labels": list(self.labels),
            "forward_passes": stats.forward_passes,
            "cache_hits": stats.cache_hits,
            "cache_misses": stats.cache_misses,
        }

    async def aclose(self) -> None:
        """Stop the worker thread; later calls raise `ClassifierUnavailable`."""
        await self.batcher.aclose()


def _load_parts(settings: ClassifierSettings) -> tuple[Any, Any, torch.device]:
    """Tokenizer and model, on the right device and dtype, in eval mode; errors translated."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    source = settings.model
    if _looks_like_path(source) and not Path(source).expanduser().is_dir():
        raise ClassifierUnavailable(
            f"classifier model directory {source!r} does not exist: {FIX_HINT}"
        )
    source = str(Path(source).expanduser()) if _looks_like_path(source) else source
    device = _pick_device(settings)
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, token=settings.token)
        model = AutoModelForSequenceClassification.from_pretrained(source, token=settings.token)
    except Exception as exc:  # OSError offline/missing, ValueError wrong architecture, ...
        raise ClassifierUnavailable(
            f"cannot load classifier model {settings.model!r} ({_first_line(exc)}): {FIX_HINT}"
        ) from exc
    architectures = getattr(model.config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ClassifierUnavailable(
            f"classifier model {settings.model!r} is a {architectures[0]}, "
            f"not a sequence classifier: {FIX_HINT}"
        )
    if not getattr(tokenizer, "is_fast", False):
        logger.warning("classifier %s has no fast tokenizer: batches tokenize slowly", source)
    model.eval()
    if settings.dtype == "bfloat16":
        model = model.to(torch.bfloat16)
    elif settings.dtype == "int8":
        with warnings.catch_warnings():
            # torch deprecates eager dynamic quantization in favour of torchao (not a
            # dependency); it still works and is the cheapest int8 path on CPU.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", UserWarning)
            model = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
    model = model.to(device)
    return model, tokenizer, device


def _pick_device(settings: ClassifierSettings) -> torch.device:
    import torch

    cuda = torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        raise ClassifierUnavailable(
            "ROUTELLM_BERT_DEVICE='cuda' but torch sees no CUDA device: "
            "set ROUTELLM_BERT_DEVICE=cpu (or auto) or install a CUDA build of torch"
        )
    # int8 dynamic quantization only has CPU kernels, so auto picks the CPU for it.
    use_cuda = settings.device == "cuda" or (
        settings.device == "auto" and cuda and settings.dtype != "int8"
    )
    return torch.device("cuda" if use_cuda else "cpu")


def _looks_like_path(source: str) -> bool:
    # Hub ids are "org/name"; anything absolute, relative-dotted, home-relative or with more
    # than one slash can only be a directory.
    return (
        source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or "\\" in source
        or Path(source).is_dir()
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


__all__ = ["FIX_HINT", "LocalClassifier"]
