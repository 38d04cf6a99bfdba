"""Classifier settings, parsed and validated once from the environment.

`ClassifierSettings.from_env(env)` is the only way they are read. They hold what loading or calling
a classifier needs, in-process or remote, so the gateway and the classifier service both use them;
the service's own settings are `classifier.service_settings.ServiceSettings`, whose module is the
one place in `classifier/` that reads `os.environ`. An invalid value raises `SettingsError` whose
message is one line naming the variable and the fix, so the CLI can print it and exit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

Dtype = Literal["float32", "bfloat16", "int8"]
DtypeSetting = Literal["auto", "float32", "bfloat16", "int8"]
Device = Literal["auto", "cpu", "cuda"]
Runtime = Literal["auto", "torch", "onnxruntime"]

DEFAULT_MODEL = "routellm/bert_gpt4_augmented"
_DTYPES: tuple[DtypeSetting, ...] = ("auto", "float32", "bfloat16", "int8")
_DEVICES: tuple[Device, ...] = ("auto", "cpu", "cuda")
_RUNTIMES: tuple[Runtime, ...] = ("auto", "torch", "onnxruntime")
Getter = Callable[[str], "str | None"]
"""Reads one variable: its value stripped, or None when unset or empty."""


class SettingsError(ValueError):
    """A setting is invalid. The message is one line: the variable, its value and the fix."""


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    """What the in-process classifier (model, runtime, batching) and the remote client need."""

    model: str = DEFAULT_MODEL
    """`ROUTELLM_BERT_MODEL`: hub id or local directory of the sequence classifier."""
    token: str | None = None
    """`HF_AUTH_TOKEN` (else `HF_TOKEN`): hub download token, also sent as Bearer to `url`."""
    dtype: DtypeSetting = "float32"
    """`ROUTELLM_BERT_DTYPE`: float32 (RouteLLM's exact scores), bfloat16, int8 (CPU only), or
    auto (the fastest of them for this CPU, `classifier.cpu.choose_dtype`; resolved at load)."""
    device: Device = "auto"
    """`ROUTELLM_BERT_DEVICE`: auto (cuda when available, else cpu), cpu or cuda."""
    runtime: Runtime = "auto"
    """`ROUTELLM_BERT_RUNTIME`: auto (ONNX Runtime for float32 and int8 on CPU, torch for
    bfloat16 and CUDA), torch, or onnxruntime (CPU float32/int8 only; start-up fails instead of
    falling back to torch when the ONNX export cannot be made)."""
    onnx_cache_dir: str | None = None
    """`ROUTELLM_BERT_CACHE_DIR`: where exported ONNX models are kept between starts, one
    subdirectory per model and dtype; None means `~/.cache/routellm-gateway/onnx`."""
    threads: int | None = None
    """`ROUTELLM_BERT_THREADS`: torch intra-op threads; None keeps torch's default."""
    max_length: int = 512
    """`ROUTELLM_BERT_MAX_LENGTH`: tokens kept per text (longer texts are truncated); capped
    by the tokenizer's own maximum."""
    max_chars: int = 131_072
    """`ROUTELLM_BERT_MAX_CHARS`: most characters of a text the tokenizer ever sees. Only the
    first `max_length` tokens count, so a text is cut before tokenizing; the cut starts at 8192
    characters and doubles while it yields too few tokens, up to this cap."""
    batch_size: int = 16
    """`ROUTELLM_BERT_BATCH_SIZE`: most texts in one forward pass."""
    max_wait_ms: float = 2.0
    """`ROUTELLM_BERT_MAX_WAIT_MS`: how long the batcher waits for more texts to join a batch."""
    cache_size: int = 4096
    """`ROUTELLM_BERT_CACHE_SIZE`: LRU entries of text -> scores; 0 disables the cache."""
    url: str | None = None
    """`ROUTELLM_BERT_URL`: remote classifier endpoint; when set no model is loaded in-process."""
    timeout: float = 2.0
    """`ROUTELLM_BERT_TIMEOUT`: seconds to wait for the remote classifier, per call."""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClassifierSettings:
        """Parse settings from `env` (the CLI passes `os.environ`). Empty values count as unset."""
        get = getter(env)
        dtype = get("ROUTELLM_BERT_DTYPE") or "float32"
        if dtype not in _DTYPES:
            raise SettingsError(
                f"ROUTELLM_BERT_DTYPE={dtype!r} is not supported: "
                "use float32, bfloat16, int8 or auto"
            )
        device = get("ROUTELLM_BERT_DEVICE") or "auto"
        if device not in _DEVICES:
            raise SettingsError(
                f"ROUTELLM_BERT_DEVICE={device!r} is not supported: use auto, cpu or cuda"
            )
        if dtype == "int8" and device == "cuda":
            raise SettingsError(
                "ROUTELLM_BERT_DTYPE='int8' runs on CPU only: "
                "set ROUTELLM_BERT_DEVICE=cpu or use ROUTELLM_BERT_DTYPE=bfloat16"
            )
        runtime = get("ROUTELLM_BERT_RUNTIME") or "auto"
        if runtime not in _RUNTIMES:
            raise SettingsError(
                f"ROUTELLM_BERT_RUNTIME={runtime!r} is not supported: "
                "use auto, torch or onnxruntime"
            )
        if runtime == "onnxruntime" and (dtype == "bfloat16" or device == "cuda"):
            raise SettingsError(
                f"ROUTELLM_BERT_RUNTIME='onnxruntime' runs float32 and int8 on CPU only, not "
                f"{'ROUTELLM_BERT_DTYPE=bfloat16' if dtype == 'bfloat16' else 'on cuda'}: "
                "set ROUTELLM_BERT_RUNTIME=auto or torch"
            )
        url = get("ROUTELLM_BERT_URL")
        if url is not None:
            _check_url(url)
        return cls(
            model=get("ROUTELLM_BERT_MODEL") or DEFAULT_MODEL,
            token=get("HF_AUTH_TOKEN") or get("HF_TOKEN"),
            dtype=dtype,  # type: ignore[arg-type]  # checked against _DTYPES above
            device=device,  # type: ignore[arg-type]
            runtime=runtime,  # type: ignore[arg-type]  # checked against _RUNTIMES above
            onnx_cache_dir=get("ROUTELLM_BERT_CACHE_DIR"),
            threads=int_setting(get, "ROUTELLM_BERT_THREADS", 0, minimum=1) or None,
            max_length=int_setting(get, "ROUTELLM_BERT_MAX_LENGTH", 512, minimum=8),
            max_chars=int_setting(get, "ROUTELLM_BERT_MAX_CHARS", 131_072, minimum=1024),
            batch_size=int_setting(get, "ROUTELLM_BERT_BATCH_SIZE", 16, minimum=1),
            max_wait_ms=float_setting(get, "ROUTELLM_BERT_MAX_WAIT_MS", 2.0, minimum=0.0),
            cache_size=int_setting(get, "ROUTELLM_BERT_CACHE_SIZE", 4096, minimum=0),
            url=url,
            timeout=float_setting(get, "ROUTELLM_BERT_TIMEOUT", 2.0, minimum=0.001),
        )


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(
            f"ROUTELLM_BERT_URL={url!r} is not an http(s) URL: "
            "use e.g. http://127.0.0.1:8800/predict"
        )


def getter(env: Mapping[str, str]) -> Getter:
    """A `Getter` over `env`: empty values count as unset."""

    def get(name: str) -> str | None:
        value = env.get(name, "").strip()
        return value or None

    return get


def int_setting(get: Getter, name: str, default: int, *, minimum: int) -> int:
    """Variable `name` as a whole number >= `minimum` (else `SettingsError`), or `default`."""
    raw = get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} is not valid: use a whole number >= {minimum}")
    return value


def float_setting(get: Getter, name: str, default: float, *, minimum: float) -> float:
    """Variable `name` as a finite number >= `minimum` (else `SettingsError`), or `default`."""
    raw = get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    # `not (value >= minimum)` also rejects NaN and inf-like garbage parsed as nan.
    if not (value >= minimum) or value == float("inf"):
        raise SettingsError(f"{name}={raw!r} is not valid: use a number >= {minimum:g}")
    return value
