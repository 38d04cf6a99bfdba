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
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from classifier.base import ClassifierUnavailable, Scores
from classifier.batching import MicroBatcher
from classifier.cpu import CpuFeatures, DtypeChoice, choose_dtype, detect_cpu_features
from classifier.settings import ClassifierSettings

if TYPE_CHECKING:
    import torch

    from classifier.ort import OrtSession

logger = logging.getLogger(__name__)

FIRST_CUT_CHARS = 8192
"""The first cut `bound` tries. Measured on the synthetic XLM-R tokenizer: 510 tokens of English
prose take about 900 characters, of words it does not know 520; XLM-R's own 250k-piece
vocabulary is coarser still (about 4 characters a token in English)."""
_CUT_MARGIN_CHARS = 64
"""A token ending this close to a cut may change when the text goes on (a word cut in two,
a combining mark after the cut): only tokens ending before it are taken as final."""

FIX_HINT = (
    "point ROUTELLM_BERT_MODEL at a local directory with the downloaded model, "
    "or set ROUTELLM_BERT_URL to a remote classifier"
)


class Runner(Protocol):
    """One forward pass: token ids and mask (numpy int64) in, float32 logits out."""

    runtime: Literal["torch", "onnxruntime"]

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray: ...


class TorchRunner:
    """A transformers model on a torch device."""

    runtime: Literal["torch", "onnxruntime"] = "torch"

    def __init__(self, model: Any, device: torch.device) -> None:
        self.model = model
        self.device = device

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids).to(self.device),
                attention_mask=torch.from_numpy(attention_mask).to(self.device),
            ).logits
            return out.float().cpu().numpy()  # type: ignore[no-any-return]


class OrtRunner:
    """An exported model in an ONNX Runtime session (`classifier.ort`)."""

    runtime: Literal["torch", "onnxruntime"] = "onnxruntime"

    def __init__(self, session: OrtSession) -> None:
        self.session = session

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        return self.session.logits(input_ids, attention_mask)


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
            dtype_choice = choose_dtype(cpu, cuda=_cuda_wanted(settings), runtime=settings.runtime)
            settings = dataclasses.replace(settings, dtype=dtype_choice.dtype)
        runner, tokenizer, labels, device = _load_parts(settings)
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
                f"({_first_line(exc)}): {FIX_HINT}"
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


def _load_parts(
    settings: ClassifierSettings,
) -> tuple[Runner, Any, tuple[str, ...], torch.device]:
    """Tokenizer, labels and a runner on the right device, runtime and dtype; errors translated."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

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
        config = AutoConfig.from_pretrained(source, token=settings.token)
    except Exception as exc:  # OSError offline/missing, ValueError wrong architecture, ...
        raise ClassifierUnavailable(
            f"cannot load classifier model {settings.model!r} ({_first_line(exc)}): {FIX_HINT}"
        ) from exc
    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ClassifierUnavailable(
            f"classifier model {settings.model!r} is a {architectures[0]}, "
            f"not a sequence classifier: {FIX_HINT}"
        )
    if not getattr(tokenizer, "is_fast", False):
        logger.warning("classifier %s has no fast tokenizer: batches tokenize slowly", source)
    labels = tuple(str(config.id2label[i]) for i in range(config.num_labels))
    runner: Runner | None = None
    if _wants_onnxruntime(settings, device):
        runner = _load_onnxruntime(source, config, settings)
    if runner is None:
        runner = TorchRunner(_load_torch_model(source, settings, device), device)
    return runner, tokenizer, labels, device


def _wants_onnxruntime(settings: ClassifierSettings, device: torch.device) -> bool:
    if settings.runtime != "auto":
        return settings.runtime == "onnxruntime"
    return device.type == "cpu" and settings.dtype in ("float32", "int8")


def _load_onnxruntime(source: str, config: Any, settings: ClassifierSettings) -> Runner | None:
    """An ONNX Runtime runner from the export cache (exporting on a miss). On failure: None
    (the caller runs torch) under `auto`, `ClassifierUnavailable` when onnxruntime was asked."""
    import torch

    from classifier import ort

    root = (
        Path(settings.onnx_cache_dir).expanduser()
        if settings.onnx_cache_dir
        else ort.default_cache_root()
    )
    threads = settings.threads or torch.get_num_threads()

    def load_for_export() -> Any:
        return _load_torch_model(source, settings, torch.device("cpu"), for_export=True)

    try:
        model_dir = _model_dir(source, settings.token)
        path = ort.prepare(
            model_dir, config, dtype=settings.dtype, cache_root=root, load_torch=load_for_export
        )
        try:
            session = ort.OrtSession.open(path, threads=threads)
        except ort.OnnxExportError:
            logger.warning("cached ONNX model %s does not open: exporting it again", path)
            ort.discard(path)
            path = ort.prepare(
                model_dir, config, dtype=settings.dtype, cache_root=root, load_torch=load_for_export
            )
            session = ort.OrtSession.open(path, threads=threads)
    except Exception as exc:  # any failure of an optional speed-up: export, fusion, disk, ...
        if settings.runtime == "onnxruntime":
            raise ClassifierUnavailable(
                f"ROUTELLM_BERT_RUNTIME='onnxruntime' but the ONNX export of {settings.model!r} "
                f"failed ({_first_line(exc)}): set ROUTELLM_BERT_RUNTIME=auto or torch, or point "
                "ROUTELLM_BERT_CACHE_DIR at a writable directory"
            ) from exc
        logger.warning(
            "ONNX Runtime is unavailable for %s (%s): running on torch, which is about half as "
            "fast; set ROUTELLM_BERT_RUNTIME=torch to skip this attempt",
            settings.model,
            _first_line(exc),
        )
        return None
    logger.info("classifier %s runs on ONNX Runtime from %s", settings.model, path)
    return OrtRunner(session)


def _model_dir(source: str, token: str | None) -> Path:
    """The local directory holding the model's files (a hub id resolves to its cache snapshot)."""
    if Path(source).is_dir():
        return Path(source)
    from transformers.utils.hub import cached_file

    config_path = cached_file(source, "config.json", token=token)
    if config_path is None:
        raise FileNotFoundError(f"no config.json for {source}")
    return Path(config_path).parent


def _load_torch_model(
    source: str, settings: ClassifierSettings, device: torch.device, *, for_export: bool = False
) -> Any:
    """The transformers model in eval mode, converted to the settings' dtype and device.
    `for_export`: float32 on CPU with eager attention, the form the ONNX exporter traces."""
    import torch
    from transformers import AutoModelForSequenceClassification

    extra = {"attn_implementation": "eager"} if for_export else {}
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, token=settings.token, **extra
        )
    except Exception as exc:
        raise ClassifierUnavailable(
            f"cannot load classifier model {settings.model!r} ({_first_line(exc)}): {FIX_HINT}"
        ) from exc
    model.eval()
    if for_export:
        return model
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
    return model.to(device)


def _cuda_wanted(settings: ClassifierSettings) -> bool:
    """Whether `_pick_device` would choose CUDA for a float32 model (what `auto` decides on)."""
    if settings.device == "cpu" or settings.runtime == "onnxruntime":
        return False
    import torch

    return settings.device == "cuda" or torch.cuda.is_available()


def _pick_device(settings: ClassifierSettings) -> torch.device:
    import torch

    cuda = torch.cuda.is_available()
    if settings.device == "cuda" and not cuda:
        raise ClassifierUnavailable(
            "ROUTELLM_BERT_DEVICE='cuda' but torch sees no CUDA device: "
            "set ROUTELLM_BERT_DEVICE=cpu (or auto) or install a CUDA build of torch"
        )
    # int8 dynamic quantization only has CPU kernels, and the ONNX Runtime path runs on CPU, so
    # auto picks the CPU for them.
    use_cuda = settings.device == "cuda" or (
        settings.device == "auto"
        and cuda
        and settings.dtype != "int8"
        and settings.runtime != "onnxruntime"
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


__all__ = ["FIX_HINT", "LocalClassifier", "OrtRunner", "Runner", "TorchRunner"]
