"""ClassifierSettings.from_env: defaults, parsing, one-line errors naming the variable."""

from __future__ import annotations

import pytest

from classifier.settings import DEFAULT_MODEL, ClassifierSettings, SettingsError


def test_defaults() -> None:
    s = ClassifierSettings.from_env({})
    assert s == ClassifierSettings()
    assert s.model == DEFAULT_MODEL
    assert (s.dtype, s.device, s.threads, s.max_length) == ("float32", "auto", None, 512)
    assert (s.runtime, s.onnx_cache_dir) == ("auto", None)
    assert (s.batch_size, s.max_wait_ms, s.cache_size, s.timeout) == (16, 2.0, 4096, 2.0)
    assert (s.url, s.token) == (None, None)


def test_every_variable() -> None:
    s = ClassifierSettings.from_env(
        {
            "ROUTELLM_BERT_MODEL": "/models/bert",
            "HF_AUTH_TOKEN": "hf_a",
            "HF_TOKEN": "hf_b",
            "ROUTELLM_BERT_DTYPE": "int8",
            "ROUTELLM_BERT_DEVICE": "cpu",
            "ROUTELLM_BERT_RUNTIME": "onnxruntime",
            "ROUTELLM_BERT_CACHE_DIR": "/var/cache/onnx",
            "ROUTELLM_BERT_THREADS": "3",
            "ROUTELLM_BERT_MAX_LENGTH": "256",
            "ROUTELLM_BERT_BATCH_SIZE": "8",
            "ROUTELLM_BERT_MAX_WAIT_MS": "0.5",
            "ROUTELLM_BERT_CACHE_SIZE": "0",
            "ROUTELLM_BERT_URL": "http://127.0.0.1:8800/predict",
            "ROUTELLM_BERT_TIMEOUT": "0.25",
        }
    )
    assert s == ClassifierSettings(
        model="/models/bert",
        token="hf_a",
        dtype="int8",
        device="cpu",
        runtime="onnxruntime",
        onnx_cache_dir="/var/cache/onnx",
        threads=3,
        max_length=256,
        batch_size=8,
        max_wait_ms=0.5,
        cache_size=0,
        url="http://127.0.0.1:8800/predict",
        timeout=0.25,
    )


def test_hf_token_fallback_and_empty_values_are_unset() -> None:
    s = ClassifierSettings.from_env(
        {"HF_AUTH_TOKEN": "", "HF_TOKEN": "hf_b", "ROUTELLM_BERT_URL": " "}
    )
    assert s.token == "hf_b"
    assert s.url is None


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"ROUTELLM_BERT_DTYPE": "fp8"}, "ROUTELLM_BERT_DTYPE='fp8' is not supported: use float32"),
        ({"ROUTELLM_BERT_DEVICE": "tpu"}, "ROUTELLM_BERT_DEVICE='tpu' is not supported"),
        ({"ROUTELLM_BERT_DTYPE": "int8", "ROUTELLM_BERT_DEVICE": "cuda"}, "CPU only"),
        (
            {"ROUTELLM_BERT_RUNTIME": "tensorrt"},
            "ROUTELLM_BERT_RUNTIME='tensorrt' is not supported",
        ),
        (
            {"ROUTELLM_BERT_RUNTIME": "onnxruntime", "ROUTELLM_BERT_DTYPE": "bfloat16"},
            "ROUTELLM_BERT_RUNTIME='onnxruntime' runs float32 and int8 on CPU only",
        ),
        (
            {"ROUTELLM_BERT_RUNTIME": "onnxruntime", "ROUTELLM_BERT_DEVICE": "cuda"},
            "not on cuda: set ROUTELLM_BERT_RUNTIME=auto or torch",
        ),
        ({"ROUTELLM_BERT_THREADS": "0"}, "ROUTELLM_BERT_THREADS='0' is not valid"),
        ({"ROUTELLM_BERT_BATCH_SIZE": "many"}, "ROUTELLM_BERT_BATCH_SIZE='many'"),
        ({"ROUTELLM_BERT_CACHE_SIZE": "-1"}, "ROUTELLM_BERT_CACHE_SIZE='-1'"),
        ({"ROUTELLM_BERT_MAX_LENGTH": "2"}, "ROUTELLM_BERT_MAX_LENGTH='2'"),
        ({"ROUTELLM_BERT_TIMEOUT": "0"}, "ROUTELLM_BERT_TIMEOUT='0' is not valid"),
        ({"ROUTELLM_BERT_TIMEOUT": "nan"}, "ROUTELLM_BERT_TIMEOUT='nan'"),
        ({"ROUTELLM_BERT_MAX_WAIT_MS": "inf"}, "ROUTELLM_BERT_MAX_WAIT_MS='inf'"),
        ({"ROUTELLM_BERT_URL": "localhost:8800"}, "ROUTELLM_BERT_URL='localhost:8800' is not"),
        ({"ROUTELLM_BERT_URL": "ftp://x/predict"}, "ROUTELLM_BERT_URL='ftp://x/predict'"),
    ],
)
def test_invalid_values_raise_one_line(env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        ClassifierSettings.from_env(env)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert ": " in message  # the variable, then the fix


@pytest.mark.parametrize(
    ("runtime", "dtype"), [("torch", "bfloat16"), ("auto", "bfloat16"), ("onnxruntime", "int8")]
)
def test_runtime_combinations_that_are_allowed(runtime: str, dtype: str) -> None:
    s = ClassifierSettings.from_env(
        {"ROUTELLM_BERT_RUNTIME": runtime, "ROUTELLM_BERT_DTYPE": dtype}
    )
    assert (s.runtime, s.dtype) == (runtime, dtype)


def test_settings_are_frozen() -> None:
    s = ClassifierSettings()
    with pytest.raises(AttributeError):
        s.model = "x"  # type: ignore[misc]
