"""The in-process sentence encoder on its runtimes: ONNX Runtime float32 gives torch's vectors,
int8 still separates the planted topics, and the export is cached once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from routers.encoders import LocalEncoder
from routers.heads import LinearHead
from tests.routers.planted import LAW, MATHS, MODELS, labels

TEXTS = ["Integrate x^2 from 0 to 3", "Who may sue for libel?", "hi", "a " * 600]


def test_onnx_float32_gives_torchs_vectors_and_int8_keeps_the_topics_apart(
    tmp_path: Path, encoder: LocalEncoder
) -> None:
    exact = LocalEncoder.load(dtype="float32", cache_root=tmp_path)
    assert exact.dtype == "float32"
    reference = encoder.encode(TEXTS)
    assert np.abs(exact.encode(TEXTS) - reference).max() < 1e-4
    assert np.allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)

    small = LocalEncoder.load(dtype="int8", cache_root=tmp_path)
    assert small.dtype == "int8"
    head = LinearHead.fit(small.encode(MATHS + LAW), labels())
    maths, law = head.predict(
        small.encode(["Differentiate x^3 ln x", "Is an oral contract valid?"])
    )
    mathy, lawyer = MODELS.index("mathy"), MODELS.index("lawyer")
    assert maths[mathy] > maths[lawyer]
    assert law[lawyer] > law[mathy]

    entries = sorted(p.name for p in (tmp_path / "encoders").iterdir())
    LocalEncoder.load(dtype="float32", cache_root=tmp_path)  # reuses the cached export
    assert sorted(p.name for p in (tmp_path / "encoders").iterdir()) == entries
    assert len(entries) == 2
    for entry in entries:  # mean pooling reads every position: the last layer stays whole
        meta = json.loads((tmp_path / "encoders" / entry / "meta.json").read_text())
        assert meta["first_token_only"] is False
