"""Routing decisions: which model answers a chat request, and why.

Three kinds of model name reach the gateway:

- `router`: classified. With a label mapping (the seed's rule) the top label picks the model and a
  top score below the threshold picks the fallback; without a mapping it uses RouteLLM's rule.
- `router-bert-<t>`: RouteLLM's rule: strong model when P(LABEL_0), the strong model's predicted
  win rate, is at least `t`, else the weak model.
- a configured model name: sent straight through (reason `direct`), never classified or swapped.

Only the last user message is classified. That is what RouteLLM's router was trained on (single
Chatbot Arena prompts) and what it classifies itself; the whole conversation would dilute the
question with old turns, blow past the 512-token window, and change the decision every turn.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from classifier.base import Classifier, ClassifierError, Scores
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.settings import Settings, UpstreamKind

ROUTER = "router"
STRONG_LABEL = "LABEL_0"
ROUTER_NAME = re.compile(r"^router-(?P<router>[A-Za-z0-9_]+)-(?P<threshold>.*)$")

Reason = Literal[
    "mapped",
    "unmapped",
    "below_threshold",
    "strong",
    "weak",
    "direct",
    "no_text",
    "classifier_error",
    "upstream_fallback",
    "pinned",
]
"""Why a decision chose its model (the `x-routellm-reason` header)."""


@dataclass(frozen=True, slots=True)
class Decision:
    """The model chosen for one request, and the evidence."""

    model: str
    """Client-facing name of the chosen model (a key of `Settings.models`)."""
    reason: Reason
    requested: str
    """The `model` the client sent."""
    label: str | None = None
    """The classifier's top label, when it ran."""
    score: float | None = None
    """Mapping rule: the top label's probability. RouteLLM rule: P(LABEL_0), the win rate."""
    scores: Mapping[str, float] | None = field(default=None)
    threshold: float | None = None
    fallback: str | None = None
    """Where the request may move if the chosen model's upstream fails before its first byte;
    None for a model asked for by name (never swapped) or pinned to an earlier answer."""

    def headers(self) -> dict[str, str]:
        return {
            "x-routellm-model": self.model,
            "x-routellm-label": self.label or "none",
            "x-routellm-score": "none" if self.score is None else f"{self.score:.6f}",
            "x-routellm-reason": self.reason,
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requested": self.requested,
            "reason": self.reason,
            "label": self.label,
            "score": self.score,
            "scores": dict(self.scores) if self.scores is not None else None,
            "threshold": self.threshold,
        }

    def fall_back(self, model: str) -> Decision:
        """This decision moved to `model` because the chosen upstream failed."""
        return replace(self, model=model, reason="upstream_fallback", fallback=None)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a model name is to be served."""

    kind: Literal["direct", "mapping", "winrate"]
    threshold: float | None = None


def text_to_classify(messages: Sequence[Mapping[str, Any]]) -> str:
    """The last user message's text; list content → its text parts joined. '' when none."""
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content.strip()
        if isinstance(content, list):
            parts = [
                part["text"]
                for part in content
                if isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ]
            return "\n".join(parts).strip()
        return ""
    return ""


class Decider:
    """Turns a requested model name and the text to classify into a `Decision`."""

    def __init__(self, settings: Settings, classifier: Classifier) -> None:
        self.settings = settings
        self.classifier = classifier

    def policy(self, name: str) -> Policy:
        """How `name` is served; `ModelNotFound` / `InvalidRequest` for names it cannot serve."""
        s = self.settings
        if name in s.models:
            return Policy("direct")
        if name == ROUTER:
            if s.mapping is not None:
                return Policy("mapping", s.threshold)
            return Policy("winrate", s.threshold)
        match = ROUTER_NAME.match(name)
        if match is None:
            raise ModelNotFound(
                f"The model {name!r} does not exist on this gateway: use 'router', "
                "'router-bert-<threshold>' or a name from GET /v1/models",
                param="model",
            )
        if match["router"] != "bert":
            raise InvalidRequest(
                f"Router {match['router']!r} is not served here: only the BERT router is, "
                "as 'router-bert-<threshold>', e.g. 'router-bert-0.5'",
                param="model",
                code="invalid_model",
            )
        try:
            threshold = float(match["threshold"])
        except ValueError:
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequest(
                f"{name!r}: the threshold after 'router-bert-' must be a number between 0 and 1, "
                "e.g. 'router-bert-0.5'",
                param="model",
                code="invalid_model",
            )
        if not (s.strong and s.weak):
            raise InvalidRequest(
                f"{name!r} needs a strong and a weak model: set ROUTELLM_STRONG_MODEL and "
                "ROUTELLM_WEAK_MODEL on the gateway",
                param="model",
                code="invalid_model",
            )
        return Policy("winrate", threshold)

    async def decide(self, name: str, text: str) -> Decision:
        """`text`: what the API's provider extracted for classification ('' when none)."""
        policy = self.policy(name)
        if policy.kind == "direct":
            return Decision(model=name, reason="direct", requested=name)
        fallback = self.settings.fallback
        assert fallback is not None  # load_settings guarantees a fallback whenever routing exists
        if not text:
            return Decision(fallback, "no_text", name, threshold=policy.threshold)
        try:
            (scores,) = await self.classifier.classify([text])
        except ClassifierError:
            return Decision(fallback, "classifier_error", name, threshold=policy.threshold)
        return replace(self.apply(policy, scores, name), fallback=fallback)

    def continuing(self, name: str, owner: str) -> Decision:
        """A call that continues an answer `owner` made: it must reach the same upstream."""
        models = self.settings.models
        if self.policy(name).kind != "direct":
            return Decision(owner, "pinned", name)
        if models[name].upstream != models[owner].upstream:
            raise InvalidRequest(
                f"the previous response was made by {owner!r} on upstream "
                f"{models[owner].upstream!r}, which {name!r} cannot reach: ask for {owner!r} "
                "or a model on the same upstream",
                param="previous_response_id",
            )
        return Decision(name, "direct", name)

    def api_kind(self, name: str) -> UpstreamKind:
        """Which API family serves `name`: its own upstream's, or for a router its models'
        (`load_settings` makes every model of a router share one kind)."""
        if self.policy(name).kind == "direct":
            return self.settings.kind_of(name)
        assert self.settings.fallback is not None
        return self.settings.kind_of(self.settings.fallback)

    def apply(self, policy: Policy, scores: Scores, requested: str) -> Decision:
        """The rule itself, on scores already computed (also used by `calibrate`)."""
        s = self.settings
        label, top = scores.top
        threshold = policy.threshold if policy.threshold is not None else s.threshold

        def decision(model: str, reason: Reason, score: float) -> Decision:
            return Decision(model, reason, requested, label, score, scores.as_dict(), threshold)

        if policy.kind == "mapping":
            assert s.mapping is not None
            assert s.fallback is not None
            if top < threshold:
                return decision(s.fallback, "below_threshold", top)
            if label not in s.mapping:
                return decision(s.fallback, "unmapped", top)
            return decision(s.mapping[label], "mapped", top)
        assert s.strong is not None
        assert s.weak is not None
        win_rate = scores.get(STRONG_LABEL)
        if win_rate >= threshold:
            return decision(s.strong, "strong", win_rate)
        return decision(s.weak, "weak", win_rate)
