"""Wire formats: request parsing for the service, response parsing for the remote client."""

from __future__ import annotations

import pytest

from classifier.base import ClassifierError, Scores
from classifier.formats import (
    InputError,
    parse_classify_request,
    parse_predict_request,
    parse_response,
    render_classify,
    render_predict,
)

LABELS = ("LABEL_0", "LABEL_1", "LABEL_2")
A = Scores(LABELS, (0.2, 0.1, 0.7))
B = Scores(LABELS, (0.6, 0.3, 0.1))


def test_parse_predict_single_and_batch() -> None:
    single = parse_predict_request({"inputs": "hi", "parameters": {"top_k": 3}}, max_inputs=4)
    assert (single.texts, single.batch) == (["hi"], False)
    batch = parse_predict_request({"inputs": ["a", "b"]}, max_inputs=4)
    assert (batch.texts, batch.batch) == (["a", "b"], True)


def test_parse_classify_request() -> None:
    parsed = parse_classify_request({"model": "m", "input": ["a"]}, max_inputs=4)
    assert (parsed.texts, parsed.batch, parsed.model) == (["a"], True, "m")
    with pytest.raises(InputError, match="'model' must be a string"):
        parse_classify_request({"model": 1, "input": "a"}, max_inputs=4)


@pytest.mark.parametrize(
    ("body", "needle", "param"),
    [
        ([1], "must be a JSON object", None),
        ({}, "missing field 'inputs'", "inputs"),
        ({"input": "x"}, "missing field 'inputs'", "inputs"),
        ({"inputs": 3}, "not a number", "inputs"),
        ({"inputs": None}, "not null", "inputs"),
        ({"inputs": {"a": 1}}, "not an object", "inputs"),
        ({"inputs": []}, "empty list", "inputs"),
        ({"inputs": ""}, "empty or only whitespace", "inputs"),
        ({"inputs": " \n\t"}, "empty or only whitespace", "inputs"),
        ({"inputs": ["ok", "  "]}, "'inputs[1]' is empty", "inputs"),
        ({"inputs": ["ok", 2]}, "'inputs[1]' must be a string, not a number", "inputs"),
        ({"inputs": [["a"], ["b"]]}, "'inputs[0]' must be a string, not a list", "inputs"),
        ({"inputs": ["a"] * 5}, "has 5 texts; at most 4", "inputs"),
        ({"inputs": "\ud800"}, "lone surrogate", "inputs"),
    ],
)
def test_bad_predict_requests(body: object, needle: str, param: str | None) -> None:
    with pytest.raises(InputError) as info:
        parse_predict_request(body, max_inputs=4)
    assert needle in info.value.message
    assert info.value.param == param


def test_render_predict_is_ranked() -> None:
    assert render_predict([A], batch=False) == [
        {"label": "LABEL_2", "score": 0.7},
        {"label": "LABEL_0", "score": 0.2},
        {"label": "LABEL_1", "score": 0.1},
    ]
    rendered = render_predict([A, B], batch=True)
    assert isinstance(rendered, list)
    assert len(rendered) == 2


def test_render_classify_vllm_shape() -> None:
    body = render_classify([A, B], model="m")
    assert isinstance(body, dict)
    assert body["object"] == "list"
    assert body["model"] == "m"
    assert isinstance(body["id"], str)
    assert isinstance(body["created"], int)
    assert body["data"] == [
        {"index": 0, "label": "LABEL_2", "probs": [0.2, 0.1, 0.7], "num_classes": 3},
        {"index": 1, "label": "LABEL_0", "probs": [0.6, 0.3, 0.1], "num_classes": 3},
    ]
    assert body["usage"]["prompt_tokens"] == 0


def test_parse_seed_single_and_batch_round_trip() -> None:
    assert parse_response(render_predict([A], batch=False)) == [A]
    assert parse_response(render_predict([A, B], batch=True)) == [A, B]


def test_parse_hf_nested_single() -> None:
    body = [[{"label": "LABEL_1", "score": 0.1}, {"label": "LABEL_0", "score": 0.2},
             {"label": "LABEL_2", "score": 0.7}]]  # fmt: skip
    assert parse_response(body) == [A]


def test_parse_tei_sorted_by_score_reads_by_label() -> None:
    body = [{"score": 0.7, "label": "LABEL_2"}, {"score": 0.2, "label": "LABEL_0"},
            {"score": 0.1, "label": "LABEL_1"}]  # fmt: skip
    assert parse_response(body) == [A]


def test_parse_vllm_orders_by_index() -> None:
    body = render_classify([A, B], model="m")
    assert isinstance(body, dict)
    body["data"].reverse()
    assert parse_response(body) == [A, B]


def test_scores_come_in_the_order_of_the_given_labels() -> None:
    labels = ("LABEL_0", "LABEL_1", "LABEL_2", "LABEL_10")
    body = [{"label": lb, "score": 0.25} for lb in reversed(labels)]
    assert parse_response(body, labels)[0].labels == labels
    vllm = {"data": [{"index": 0, "probs": [0.1, 0.2, 0.3, 0.4]}]}
    assert parse_response(vllm, labels)[0].as_dict()["LABEL_10"] == 0.4


def ranked(slot: int, label: str, score: float) -> list[dict[str, object]]:
    """A valid seed-shape answer (0.4, 0.4, 0.2) with entry `slot` replaced."""
    items: list[dict[str, object]] = [
        {"label": "LABEL_0", "score": 0.4},
        {"label": "LABEL_1", "score": 0.4},
        {"label": "LABEL_2", "score": 0.2},
    ]
    items[slot] = {"label": label, "score": score}
    return items


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"error": "Model is overloaded", "error_type": "overloaded"},
            "Model is overloaded (overl",
        ),
        ({"error": {"message": "bad", "type": "BadRequestError"}}, "bad (BadRequestError)"),
        ({"result": 1}, "object with keys result"),
        ([], "unreadable"),
        ("text", "unreadable"),
        (None, "unreadable"),
        ([{"label": "LABEL_0"}], "numeric 'score'"),
        ([{"label": "LABEL_0", "score": True}], "numeric 'score'"),
        ([{"label": "LABEL_0", "score": 0.5}, {"label": "LABEL_0", "score": 0.5}], "repeats"),
        ([[]], "lacks the scores of LABEL_0, LABEL_1, LABEL_2"),
        ([[1]], "holds a number"),
        ([{"label": "a", "score": 1}, ["x"]], "unreadable"),
        ({"data": []}, "'data' is empty"),
        ({"data": [{"index": 0, "probs": "x"}]}, "needs 'probs'"),
        ({"data": [3]}, "data[0] is a number"),
        # Hostile or broken classifiers: wrong labels, scores that are not probabilities.
        (ranked(0, "LABEL_0\r\nX-Evil: 1", 0.4), "label 'LABEL_0\\r\\nX-Evil: 1'"),
        (ranked(2, "LABEL_3", 0.2), "label 'LABEL_3', not one of the model's labels"),
        (ranked(0, "LABEL_0", float("nan")), "LABEL_0 nan, not a probability"),
        (ranked(0, "LABEL_0", float("inf")), "LABEL_0 inf, not a probability"),
        (ranked(0, "LABEL_0", 7.5), "LABEL_0 7.5, not a probability"),
        (ranked(2, "LABEL_2", -3), "LABEL_2 -3.0, not a probability"),
        (ranked(0, "LABEL_0", 0.9), "sum to 1.5"),
        ([{"label": "LABEL_0", "score": 1.0}], "lacks the scores of LABEL_1, LABEL_2"),
        ({"data": [{"index": 0, "probs": [0.5, 0.5]}]}, "2 probs for a model with 3 labels"),
        ({"data": [{"index": 0, "probs": [0.5, 0.6, -0.1]}]}, "LABEL_2 -0.1"),
        ({"data": [{"index": 0, "probs": [1, 0, 0]}] * 2}, "'index' values are not 0, 1"),
        ({"data": [{"index": True, "probs": [1, 0, 0]}]}, "needs 'probs' (numbers) and 'index'"),
    ],
)
def test_unreadable_responses(body: object, needle: str) -> None:
    with pytest.raises(ClassifierError) as info:
        parse_response(body)
    assert needle in str(info.value)
