"""Run a classifier's last encoder layer for the first token only.

A sequence classifier of the BERT family (XLM-R, BERT, MiniLM, DistilBERT) reads one position
of its last layer, the first (`[CLS]` / `<s>`). The last layer's attention still needs every
position's keys and values, but after it, the output projection, the feed-forward block and
both layer norms are position-wise: computed for every token, they are thrown away for all but
one. On a fused ONNX graph this cuts the last layer's work after attention to one row per text,
about 6 % of a 12-layer model's arithmetic at 100 tokens, with the same logits:

    changed = first_token_only(model_proto)   # True when the graph had that shape and was cut

The cut is made only when the graph proves it safe: every node between the last fused
`Attention` and the classifier is position-wise, reads nothing of the sequence but that
attention's input and output (and weights), and the only way out is a `Gather` of position 0.
A model pooling every position (a mean, as sentence encoders and some classifiers do) is left
as it was. The export's own check against torch still runs after the cut.
"""

from __future__ import annotations

from typing import Any

__all__ = ["first_token_only"]

# Ops that act on each position on its own: slicing their input to position 0 slices their
# output the same way.
_POSITION_WISE = frozenset(
    {
        "Add",
        "BiasGelu",
        "FastGelu",
        "Gelu",
        "LayerNormalization",
        "MatMul",
        "SkipLayerNormalization",
    }
)


def first_token_only(model: Any) -> bool:
    """Slice the input and output of `model`'s last fused Attention to position 0 for the
    position-wise nodes after it, in place. Returns whether the graph was changed."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    nodes = list(graph.node)
    attentions = [i for i, node in enumerate(nodes) if node.op_type == "Attention"]
    if not attentions:
        return False
    at = attentions[-1]
    attention = nodes[at]
    if len(attention.output) != 1:
        return False
    hidden, context = attention.input[0], attention.output[0]
    constants = {init.name: init for init in graph.initializer}
    for node in nodes:
        if node.op_type == "Constant" and [a.name for a in node.attribute] == ["value"]:
            constants[node.output[0]] = node.attribute[0].t

    def is_first_position(gather: Any) -> bool:
        axis = next((a.i for a in gather.attribute if a.name == "axis"), 0)
        index = constants.get(gather.input[1])
        return axis == 1 and index is not None and numpy_helper.to_array(index).tolist() == 0

    region: set[str] = {hidden, context}  # tensors of every position, from the attention on
    touched: list[Any] = []
    for node in nodes[at + 1 :]:
        sequence_inputs = [name for name in node.input if name in region]
        if not sequence_inputs:
            continue
        if node.op_type == "Gather" and node.input[0] in region and is_first_position(node):
            continue
        if node.op_type not in _POSITION_WISE:
            return False
        # A position-wise node whose other inputs are activations from before the attention
        # (an older residual, say) would mix sliced and whole tensors, and an Add of a table
        # with a position axis would no longer line up: leave such graphs be.
        others = [name for name in node.input if name and name not in region]
        if any(name not in constants for name in others):
            return False
        if node.op_type == "Add" and any(len(constants[name].dims) > 1 for name in others):
            return False
        touched.append(node)
        region.update(node.output)
    outputs = {output.name for output in graph.output}
    if not touched or outputs & (region - {hidden, context}):
        return False

    first = {hidden: f"{hidden}/first_token", context: f"{context}/first_token"}
    bounds = {
        "first_token/starts": 0,
        "first_token/ends": 1,
        "first_token/axes": 1,
    }
    for name, value in bounds.items():
        graph.initializer.append(helper.make_tensor(name, TensorProto.INT64, [1], [value]))
    slices = [
        helper.make_node("Slice", [source, *bounds], [target], name=f"FirstToken_{n}")
        for n, (source, target) in enumerate(first.items())
    ]
    for node in touched:
        for i, name in enumerate(node.input):
            if name in first:
                node.input[i] = first[name]
    for offset, node in enumerate(slices, start=1):
        graph.node.insert(at + offset, node)
    return True
