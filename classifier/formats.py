"""Parse and render the classifier wire formats.

Requests the service accepts:
    /predict, /v1/classifications   {"inputs": "text" | ["a", "b"], "parameters"?: {...}}
    /classify (vLLM)                {"model"?: str, "input": "text" | ["a", "b"]}

Responses `parse_response` reads, always into `list[Scores]` with labels in model order:
    this service / seed     [{"label", "score"}, ...] for one text; a list of those for a list
    Hugging Face Inference  [[{"label", "score"}, ...]] even for one text
    text-embeddings-inf.    [{"score", "label"}, ...] sorted by score (read by label, not place)
    vLLM /classify          {"object": "list", "data": [{"index", "label", "probs", ...}], ...}
Nothing a remote classifier answers is trusted: the labels must be exactly the model's labels
(`ROUTELLM_LABELS` unless told otherwise), every score a finite number in [0, 1], and the scores
of one text must sum to 1 (within `PROBABILITY_SLACK`), since every format answers probabilities.
Anything else is a `ClassifierError` whose message quotes untrusted strings with `repr()`.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from classifier.base import ROUTELLM_LABELS, ClassifierError, Scores

Json = object

PROBABILITY_SLACK = 0.01
"""How far from 1 the scores of one text may sum: float32 softmax is within 1e-6, a bfloat16
model's probabilities within a few 1e-3."""


class InputError(ValueError):
    """A request body the service cannot accept; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class ClassifyRequest:
    """Texts to classify and whether the client sent a list (its response is then a list)."""

    texts: list[str]
    batch: bool
    model: str | None = None


# --- requests (service side) ---


def parse_predict_request(body: Json, *, max_inputs: int) -> ClassifyRequest:
    """`{"inputs": str | [str]}` (seed, HF Inference, TEI single texts) -> `ClassifyRequest`."""
    obj = _object(body)
    return _texts(obj, "inputs", max_inputs=max_inputs)


def parse_classify_request(body: Json, *, max_inputs: int) -> ClassifyRequest:
    """vLLM `{"model"?: str, "input": str | [str]}` -> `ClassifyRequest`."""
    obj = _object(body)
    model = obj.get("model")
    if model is not None and not isinstance(model, str):
        raise InputError("'model' must be a string", "model")
    request = _texts(obj, "input", max_inputs=max_inputs)
    return ClassifyRequest(request.texts, request.batch, model)


def _object(body: Json) -> dict[str, Json]:
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, not {_kind(body)}")
    return body


def _texts(obj: dict[str, Json], field: str, *, max_inputs: int) -> ClassifyRequest:
    if field not in obj:
        raise InputError(f'missing field \'{field}\': send {{"{field}": "text"}}', field)
    value = obj[field]
    if isinstance(value, str):
        return ClassifyRequest([_text(value, field)], batch=False)
    if not isinstance(value, list):
        raise InputError(
            f"'{field}' must be a string or a list of strings, not {_kind(value)}", field
        )
    if not value:
        raise InputError(f"'{field}' is an empty list: send at least one text", field)
    if len(value) > max_inputs:
        raise InputError(
            f"'{field}' has {len(value)} texts; at most {max_inputs} per request", field
        )
    texts = []
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise InputError(f"'{field}[{i}]' must be a string, not {_kind(item)}", field)
        texts.append(_text(item, f"{field}[{i}]"))
    return ClassifyRequest(texts, batch=True)


def _text(text: str, where: str) -> str:
    if not text.strip():
        raise InputError(f"'{where}' is empty or only whitespace", where.partition("[")[0])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"'{where}' is not valid Unicode (lone surrogate)", where) from None
    return text


def _kind(value: Json) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- responses (service side) ---


def render_predict(scores: Sequence[Scores], *, batch: bool) -> Json:
    """Seed/HF shape: every label, highest first; one list per text when `batch`."""
    rendered = [[{"label": lb, "score": p} for lb, p in s.ranked()] for s in scores]
    return rendered if batch else rendered[0]


def render_classify(scores: Sequence[Scores], *, model: str, prompt_tokens: int = 0) -> Json:
    """vLLM `/classify` shape; `probs` are in label order."""
    return {
        "id": f"classify-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": model,
        "data": [
            {"index": i, "label": s.top[0], "probs": list(s.probs), "num_classes": len(s.probs)}
            for i, s in enumerate(scores)
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
        },
    }


# --- requests and responses (client side) ---


def classify_request(texts: Sequence[str], model: str | None = None) -> Json:
    """The vLLM `/classify` request body."""
    body: dict[str, Json] = {"input": list(texts)}
    if model:
        body["model"] = model
    return body


def parse_response(body: Json, labels: tuple[str, ...] = ROUTELLM_LABELS) -> list[Scores]:
    """Any of the four response formats -> one `Scores` per text, in the order of `labels`.

    Raises `ClassifierError` naming what was unreadable or invalid (including error bodies)."""
    if isinstance(body, dict):
        if "error" in body:
            raise ClassifierError(f"remote classifier error: {_error_text(body)}")
        if isinstance(body.get("data"), list):
            return _parse_vllm(body["data"], labels)
        raise ClassifierError(f"unreadable classifier response: object with keys {_keys(body)}")
    if isinstance(body, list) and body:
        if all(isinstance(item, dict) for item in body):
            return [_parse_ranked(body, "response", labels)]
        if all(isinstance(item, list) for item in body):
            return [_parse_ranked(item, f"response[{i}]", labels) for i, item in enumerate(body)]
    raise ClassifierError(f"unreadable classifier response: {_kind(body)} {_snippet(body)}")


def _parse_ranked(items: list[Json], where: str, labels: tuple[str, ...]) -> Scores:
    found: dict[str, float] = {}
    for item in items:
        if not isinstance(item, dict):
            raise ClassifierError(f"unreadable classifier response: {where} holds {_kind(item)}")
        label, score = item.get("label"), item.get("score")
        if not isinstance(label, str) or not _is_number(score):
            raise ClassifierError(
                f"unreadable classifier response: {where} item without string 'label' "
                f"and numeric 'score': {_snippet(item)}"
            )
        if label not in labels:
            raise ClassifierError(
                f"invalid classifier response: {where} has label {_snippet(label)}, "
                f"not one of the model's labels {', '.join(labels)}"
            )
        if label in found:
            raise ClassifierError(f"unreadable classifier response: {where} repeats {label!r}")
        found[label] = float(score)  # type: ignore[arg-type]  # checked by _is_number
    missing = [lb for lb in labels if lb not in found]
    if missing:
        raise ClassifierError(
            f"invalid classifier response: {where} lacks the scores of {', '.join(missing)}"
        )
    return _probabilities(labels, [found[lb] for lb in labels], where)


def _parse_vllm(data: list[Json], labels: tuple[str, ...]) -> list[Scores]:
    rows: list[tuple[int, Scores]] = []
    for n, item in enumerate(data):
        if not isinstance(item, dict):
            raise ClassifierError(f"unreadable vLLM response: data[{n}] is {_kind(item)}")
        probs, index = item.get("probs"), item.get("index", n)
        if (
            not isinstance(probs, list)
            or not probs
            or not all(_is_number(p) for p in probs)
            or not isinstance(index, int)
            or isinstance(index, bool)
        ):
            raise ClassifierError(
                f"unreadable vLLM response: data[{n}] needs 'probs' (numbers) and 'index'"
            )
        if len(probs) != len(labels):
            raise ClassifierError(
                f"invalid vLLM response: data[{n}] has {len(probs)} probs for a model with "
                f"{len(labels)} labels"
            )
        # vLLM's probs are in label order; it names only the top label.
        rows.append((index, _probabilities(labels, [float(p) for p in probs], f"data[{n}]")))
    rows.sort(key=lambda r: r[0])
    if not rows:
        raise ClassifierError("unreadable vLLM response: 'data' is empty")
    if [index for index, _ in rows] != list(range(len(rows))):
        raise ClassifierError("invalid vLLM response: the 'index' values are not 0, 1, 2, ...")
    return [scores for _, scores in rows]


def _probabilities(labels: tuple[str, ...], probs: list[float], where: str) -> Scores:
    for label, p in zip(labels, probs, strict=True):
        if not (math.isfinite(p) and 0.0 <= p <= 1.0):
            raise ClassifierError(
                f"invalid classifier response: {where} scores {label} {p!r}, "
                "not a probability in [0, 1]"
            )
    total = math.fsum(probs)
    if abs(total - 1.0) > PROBABILITY_SLACK:
        raise ClassifierError(
            f"invalid classifier response: {where} scores sum to {total:.6g}, not 1"
        )
    return Scores(labels, tuple(probs))


def _is_number(value: Json) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _error_text(body: dict[str, Json]) -> str:
    error = body["error"]
    if isinstance(error, dict):  # OpenAI / vLLM shape
        message = error.get("message", error)
        kind = error.get("type") or error.get("code")
    else:  # TEI / HF shape: {"error": "...", "error_type": "..."}
        message, kind = error, body.get("error_type")
    text = str(message)[:200]
    return f"{text} ({kind})" if kind else text


def _keys(body: dict[str, Json]) -> str:
    return ", ".join(sorted(map(str, body))[:8]) or "(none)"


def _snippet(value: Json) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
