"""Loading a checkpoint for the in-process classifier: the tokenizer, the labels, the device, and
the runner that does the forward pass (torch, or ONNX Runtime from `classifier.ort`'s cache).

    runner, tokenizer, labels, device = load_parts(settings)   # raises ClassifierUnavailable

Every failure is one `ClassifierUnavailable` line that says how to fix it (`FIX_HINT`).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from classifier.base import ClassifierUnavailable, first_line
from classifier.hub import unreachable
from classifier.logs import adopt_library_logs
from classifier.settings import ClassifierSettings

if TYPE_CHECKING:
    import torch

    from classifier.ort import OrtSession

logger = logging.getLogger("classifier.local")

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


def load_parts(
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
    adopt_library_logs()  # transformers was just imported: its lines in the process's format
    if not _looks_like_path(source):
        reason = unreachable(source, "config.json", token=settings.token)
        if reason is not None:
            raise ClassifierUnavailable(
                f"cannot download classifier model {settings.model!r}: {reason} and the model "
                f"is not in the local cache: {FIX_HINT}"
            )
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, token=settings.token)
        config = AutoConfig.from_pretrained(source, token=settings.token)
    except Exception as exc:  # OSError offline/missing, ValueError wrong architecture, ...
        raise ClassifierUnavailable(
            f"cannot load classifier model {settings.model!r} ({first_line(exc)}): {FIX_HINT}"
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
                f"failed ({first_line(exc)}): set ROUTELLM_BERT_RUNTIME=auto or torch, or point "
                "ROUTELLM_BERT_CACHE_DIR at a writable directory"
            ) from exc
        logger.warning(
            "ONNX Runtime is unavailable for %s (%s): running on torch, which is about half as "
            "fast; set ROUTELLM_BERT_RUNTIME=torch to skip this attempt",
            settings.model,
            first_line(exc),
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
            f"cannot load classifier model {settings.model!r} ({first_line(exc)}): {FIX_HINT}"
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


def cuda_wanted(settings: ClassifierSettings) -> bool:
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


__all__ = [
    "FIX_HINT",
    "OrtRunner",
    "Runner",
    "TorchRunner",
    "cuda_wanted",
    "load_parts",
]
