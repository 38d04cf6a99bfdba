"""A classifier reading its first token runs its last layer after attention for that token
alone, with torch's logits; graphs that read other positions are left as they were."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from classifier import ort
from classifier.first_token import first_token_only

TEXTS = ["hi", "a longer prompt about integrals and limits", "word " * 40]


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_the_export_cuts_the_last_layer_to_the_first_token_with_torchs_logits(
    checkpoint: Path, tmp_path: Path, dtype: str
) -> None:
    def load_torch() -> Any:
        return AutoModelForSequenceClassification.from_pretrained(
            checkpoint, attn_implementation="eager"
        ).eval()

    config = AutoConfig.from_pretrained(checkpoint)
    path = ort.prepare(checkpoint, config, dtype=dtype, cache_root=tmp_path, load_torch=load_torch)
    assert json.loads((path.parent / "meta.json").read_text())["first_token_only"] is True
    graph = onnx.load(str(path), load_external_data=False).graph
    assert sorted(n.name for n in graph.node if n.op_type == "Slice") == [
        "FirstToken_0",
        "FirstToken_1",
    ]

    batch = AutoTokenizer.from_pretrained(checkpoint)(TEXTS, padding=True, return_tensors="np")
    got = ort.OrtSession.open(path, threads=1).logits(batch["input_ids"], batch["attention_mask"])
    with torch.inference_mode():
        expected = load_torch()(
            input_ids=torch.from_numpy(batch["input_ids"]),
            attention_mask=torch.from_numpy(batch["attention_mask"]),
        ).logits.numpy()
    assert got.shape == (len(TEXTS), config.num_labels)
    tolerance = 1e-4 if dtype == "float32" else 0.2
    assert np.abs(got - expected).max() < tolerance


def _graph(*, tail: list[onnx.NodeProto], extra_inputs: tuple[str, ...] = ()) -> onnx.ModelProto:
    """An attention block as the BERT fusions leave it: Attention, the output projection, a
    SkipLayerNorm on the attention's input, then `tail` down to `logits`."""
    hidden = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", "seq", 4])
        for n in ("x", *extra_inputs)
    ]
    weights = [
        helper.make_tensor(name, TensorProto.FLOAT, dims, np.ones(dims, np.float32).ravel())
        for name, dims in (
            ("qkv_w", [4, 12]),
            ("qkv_b", [12]),
            ("out_w", [4, 4]),
            ("g", [4]),
            ("b", [4]),
        )
    ]
    weights.append(helper.make_tensor("zero", TensorProto.INT64, [], [0]))
    weights.append(helper.make_tensor("one", TensorProto.INT64, [], [1]))
    weights.append(helper.make_tensor("table", TensorProto.FLOAT, [8, 4], np.ones(32, np.float32)))
    nodes = [
        helper.make_node(
            "Attention", ["x", "qkv_w", "qkv_b"], ["ctx"], domain="com.microsoft", num_heads=2
        ),
        helper.make_node("MatMul", ["ctx", "out_w"], ["proj"]),
        helper.make_node(
            "SkipLayerNormalization", ["proj", "x", "g", "b"], ["h"], domain="com.microsoft"
        ),
        *tail,
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, None)
    return helper.make_model(helper.make_graph(nodes, "g", hidden, [out], weights))


def test_the_cut_rewires_only_the_nodes_after_the_attention() -> None:
    model = _graph(tail=[helper.make_node("Gather", ["h", "zero"], ["logits"], axis=1)])
    assert first_token_only(model)
    by_name = {n.output[0]: n for n in model.graph.node}
    assert list(by_name["ctx"].input)[:1] == ["x"]  # attention still sees every position
    assert list(by_name["proj"].input) == ["ctx/first_token", "out_w"]
    assert list(by_name["h"].input)[:2] == ["proj", "x/first_token"]
    assert [n.op_type for n in model.graph.node][:3] == ["Attention", "Slice", "Slice"]


@pytest.mark.parametrize(
    ("tail", "extra_inputs"),
    [
        pytest.param(
            [helper.make_node("Gather", ["h", "one"], ["logits"], axis=1)],
            (),
            id="gather-of-position-1",
        ),
        pytest.param(
            [helper.make_node("Gather", ["h", "zero"], ["logits"], axis=0)],
            (),
            id="gather-on-the-batch-axis",
        ),
        pytest.param(
            [helper.make_node("ReduceMean", ["h"], ["logits"], axes=[1])], (), id="mean-pooling"
        ),
        pytest.param(
            [
                helper.make_node("Add", ["h", "older"], ["s"]),
                helper.make_node("Gather", ["s", "zero"], ["logits"], axis=1),
            ],
            ("older",),
            id="an-older-activation",
        ),
        pytest.param(
            [
                helper.make_node("Add", ["h", "table"], ["s"]),
                helper.make_node("Gather", ["s", "zero"], ["logits"], axis=1),
            ],
            (),
            id="a-table-with-a-position-axis",
        ),
        pytest.param(
            [helper.make_node("Identity", ["h"], ["logits"])], (), id="every-position-out"
        ),
    ],
)
def test_graphs_reading_other_positions_are_left_as_they_were(
    tail: list[onnx.NodeProto], extra_inputs: tuple[str, ...]
) -> None:
    model = _graph(tail=tail, extra_inputs=extra_inputs)
    before = model.SerializeToString()
    assert not first_token_only(model)
    assert model.SerializeToString() == before
