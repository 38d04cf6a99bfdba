"""Routing decisions: which model answers a chat request, and why.

Three kinds of model name reach the gateway:

- `router`, and each name under the config's `routers:`: classified. With tiers, the first tier
  whose `min_win_rate` ≤ P(LABEL_0) answers. With a label mapping (the seed's rule) the top label
  picks the model and a top score below the threshold picks the fallback; otherwise RouteLLM's
  strong/weak rule.
- a many-model router (`routers.<name>.router`, a trained directory): the router predicts each
  of its models' quality, and the model with the best quality minus the cost weight times its
  relative price answers (`gateway.routing.weighing`). The weight is the router's
  `cost_weight`, or the request's: `router-<name>-<w>` or the `x-routellm-cost-weight` header.
- `router-bert-<t>`: RouteLLM's rule: strong model when P(LABEL_0), the strong model's predicted
  win rate, is at least `t`, else the weak model. `router-mf-<t>`: the same rule, with the win
  rate of RouteLLM's MF router (`routers.mf`, opened as `own[MF_ROUTER]`).
- a configured model name: sent straight through (reason `direct`), never classified or swapped.

A router may classify with its own checkpoint (`routers.<name>.classifier`), and may have a
candidate (`gateway.settings.candidates`): in shadow mode the candidate decides too and its
choice rides on the decision (`candidate_model`); in canary mode it decides a share of
conversations instead (`in_share` of the conversation id).

Only the newest user turn's own words are classified (`gateway.routing.human_text`). That is what
RouteLLM's router was trained on (single Chatbot Arena prompts) and what it classifies itself;
the whole conversation would dilute the question with old turns, blow past the 512-token window,
and change the decision every turn. Tool results, images and agents' wrappers are not the
user's question.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from classifier.base import Classifier, ClassifierError, Scores
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.routing.weighing import choose, relative
from gateway.settings.load import Settings
from gateway.settings.routing import MF_ROUTER, RouterSpec
from gateway.settings.upstreams import UpstreamKind

ROUTER = "router"
STRONG_LABEL = "LABEL_0"
ROUTER_NAME = re.compile(r"^router-(?P<router>[A-Za-z0-9_]+)-(?P<threshold>.*)$")
COST_WEIGHT_HEADER = "x-routellm-cost-weight"

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
    "tier",
    "scored",
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
    """Where the request may move if the chosen model's upstream fails before its first byte:
    its router's fallback; None for a model asked for by name (never swapped) or pinned to an
    earlier answer."""
    router: str | None = None
    """The router that decided (`router`, a name under `routers:`); None for a direct model."""
    checkpoint: str | None = None
    """The checkpoint (or classifier URL) that classified the text, when one did."""
    candidate_model: str | None = None
    """In shadow mode, the model the router's candidate would have chosen."""
    candidate_score: float | None = None
    """... and the candidate's score for it."""
    cost_weight: float | None = None
    """A many-model router's weight of price against quality for this decision."""
    price_share: float | None = None
    """A many-model decision: the chosen model's price as a share of the router's most
    expensive (what `upgrade` conversations climb by)."""

    @property
    def routed(self) -> bool:
        """Chosen by a router (a conversation may keep it), not asked for by name."""
        return self.reason != "direct"

    def headers(self) -> dict[str, str]:
        out = {
            "x-routellm-model": self.model,
            "x-routellm-label": self.label or "none",
            "x-routellm-score": "none" if self.score is None else f"{self.score:.6f}",
            "x-routellm-reason": self.reason,
        }
        if self.cost_weight is not None:
            out[COST_WEIGHT_HEADER] = f"{self.cost_weight:g}"
            rounded = {m: round(q, 4) for m, q in (self.scores or {}).items()}
            out["x-routellm-scores"] = json.dumps(rounded, separators=(",", ":"))
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "requested": self.requested,
            "reason": self.reason,
            "label": self.label,
            "score": self.score,
            "scores": dict(self.scores) if self.scores is not None else None,
            "threshold": self.threshold,
            **({} if self.cost_weight is None else {"cost_weight": self.cost_weight}),
        }

    def fall_back(self, model: str) -> Decision:
        """This decision moved to `model` because the chosen upstream failed."""
        return replace(self, model=model, reason="upstream_fallback", fallback=None)


@dataclass(frozen=True, slots=True)
class Policy:
    """How a model name is to be served."""

    kind: Literal["direct", "mapping", "winrate", "tiers", "quality"]
    threshold: float | None = None
    router: RouterSpec | None = None
    """The routed name's rule; None for a direct model."""
    cost_weight: float | None = None
    """A many-model router's weight (its default, or the one the requested name carries)."""


class Decider:
    """Turns a requested model name and the text to classify into a `Decision`. A router with
    its own checkpoint (`routers.<name>.classifier`) classifies with `own[name]`."""

    def __init__(
        self,
        settings: Settings,
        classifier: Classifier,
        own: Mapping[str, Classifier] | None = None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self.own = own or {}
        self._costs: dict[str, np.ndarray] = {}

    def classifier_of(self, router: RouterSpec) -> Classifier:
        return self.own.get(router.name, self.classifier)

    def policy(self, name: str) -> Policy:
        """How `name` is served; `ModelNotFound` / `InvalidRequest` for names it cannot serve."""
        s = self.settings
        if name in s.models:
            return Policy("direct")
        spec = s.routers.get(name)
        if spec is not None:
            return Policy(spec.kind, spec.threshold, spec, spec.cost_weight)
        weighed = self._weighed(name)
        if weighed is not None:
            return weighed
        match = ROUTER_NAME.match(name)
        if match is None:
            raise ModelNotFound(
                f"The model {name!r} does not exist on this gateway: use 'router', "
                "'router-bert-<threshold>' or a name from GET /v1/models",
                param="model",
            )
        kind = match["router"]
        if kind not in ("bert", "mf") or (kind == "mf" and MF_ROUTER not in self.own):
            raise InvalidRequest(
                f"Router {kind!r} is not served here: RouteLLM's BERT router is, as "
                "'router-bert-<threshold>', and its MF router is as 'router-mf-<threshold>' once "
                "ROUTELLM_EMBEDDINGS_URL is set and its checkpoint loads (ROUTELLM_MF_MODEL, "
                "default routellm/mf_gpt4_augmented: a local copy where the hub is out of reach)",
                param="model",
                code="invalid_model",
            )
        try:
            threshold = float(match["threshold"])
        except ValueError:
            threshold = -1.0
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequest(
                f"{name!r}: the threshold after 'router-{kind}-' must be a number between 0 and "
                f"1, e.g. 'router-{kind}-0.5'",
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
        if kind == "mf":
            mf = replace(s.routers[ROUTER], name=MF_ROUTER, candidate=None)
            return Policy("winrate", threshold, mf)
        return Policy("winrate", threshold, s.routers[ROUTER])

    def _weighed(self, name: str) -> Policy | None:
        """`router-<name>-<w>` for a many-model router `<name>`: its rule at weight `w`."""
        for spec in self.settings.routers.values():
            prefix = f"router-{spec.name}-"
            if spec.kind != "quality" or not name.startswith(prefix):
                continue
            weight = _weight(name.removeprefix(prefix))
            if weight is None:
                raise InvalidRequest(
                    f"{name!r}: the cost weight after {prefix!r} must be a number ≥ 0, "
                    f"e.g. '{prefix}0.2' (0: the best predicted quality, whatever it costs)",
                    param="model",
                    code="invalid_model",
                )
            return Policy("quality", router=spec, cost_weight=weight)
        return None

    async def decide(
        self, name: str, text: str, arm: str | None = None, cost_weight: float | None = None
    ) -> Decision:
        """`text`: what the API's provider extracted for classification ('' when none);
        `arm`: the conversation (or request) id a canary share is drawn by; `cost_weight`: the
        request's own weight (`x-routellm-cost-weight`), for a many-model router."""
        policy = self.policy(name)
        if cost_weight is not None:
            if policy.kind != "quality":
                raise InvalidRequest(
                    f"{COST_WEIGHT_HEADER} applies to many-model routers (`router:` under "
                    f"`routers:`); {name!r} is not one: drop the header or ask for such a router",
                    param=COST_WEIGHT_HEADER,
                )
            policy = replace(policy, cost_weight=cost_weight)
        if policy.kind == "direct":
            return Decision(model=name, reason="direct", requested=name)
        router = policy.router
        assert router is not None  # every routed policy carries its router
        candidate = router.candidate
        if candidate is None:
            return await self._decide(policy, name, text)
        chosen = in_share(arm or text, candidate.share)
        other = self.policy(candidate.router)
        # A weight the request asked for (by header or name) holds for the candidate too; the
        # incumbent's own default does not.
        asked = cost_weight
        if asked is None and policy.kind == "quality" and name != router.name:
            asked = policy.cost_weight  # `router-<name>-<w>`
        if other.kind == "quality" and asked is not None:
            other = replace(other, cost_weight=asked)
        if candidate.mode == "canary":
            if chosen:
                return await self._decide(other, name, text)
            return await self._decide(policy, name, text)
        if not chosen:
            return await self._decide(policy, name, text)
        # Both at once: each classifier has its own batcher and worker thread.
        decision, shadow = await asyncio.gather(
            self._decide(policy, name, text),
            self._decide(other, name, text),
        )
        return replace(decision, candidate_model=shadow.model, candidate_score=shadow.score)

    async def _decide(self, policy: Policy, name: str, text: str) -> Decision:
        router = policy.router
        assert router is not None  # every routed policy carries its router
        fallback = router.fallback
        classifier = self.classifier_of(router)
        unclassified = Decision(
            fallback,
            "no_text",
            name,
            threshold=policy.threshold,
            fallback=fallback,
            router=router.name,
            checkpoint=classifier.name,
        )
        if not text:
            return unclassified
        try:
            (scores,) = await classifier.classify([text])
            decided = self.apply(policy, scores, name)
        except ClassifierError:  # the classifier failed, or scored labels the rule cannot use
            return replace(unclassified, reason="classifier_error")
        return replace(decided, checkpoint=classifier.name)

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
        policy = self.policy(name)
        if policy.router is None:
            return self.settings.kind_of(name)
        return self.settings.kind_of(policy.router.fallback)

    def apply(self, policy: Policy, scores: Scores, requested: str) -> Decision:
        """The rule itself, on scores already computed (also used by `calibrate`)."""
        r = policy.router
        assert r is not None  # `apply` is only reached for routed names
        if policy.kind == "quality":
            return self._weigh(policy, r, scores, requested)
        label, top = scores.top
        threshold = policy.threshold if policy.threshold is not None else r.threshold

        def decision(
            model: str, reason: Reason, score: float, at: float | None = threshold
        ) -> Decision:
            return Decision(
                model, reason, requested, label, score, scores.as_dict(), at, r.fallback, r.name
            )

        if policy.kind == "mapping":
            assert r.mapping is not None
            if top < threshold:
                return decision(r.fallback, "below_threshold", top)
            if label not in r.mapping:
                return decision(r.fallback, "unmapped", top)
            return decision(r.mapping[label], "mapped", top)
        win_rate = scores.get(STRONG_LABEL)
        if policy.kind == "tiers":
            tier = next(t for t in r.tiers if t.min_win_rate is None or t.min_win_rate <= win_rate)
            return decision(tier.model, "tier", win_rate, tier.min_win_rate)
        assert r.strong is not None
        assert r.weak is not None
        if win_rate >= threshold:
            return decision(r.strong, "strong", win_rate)
        return decision(r.weak, "weak", win_rate)

    def _weigh(self, policy: Policy, r: RouterSpec, scores: Scores, requested: str) -> Decision:
        """The many-model rule (`gateway.routing.weighing`) on a router's predictions."""
        assert r.models is not None  # a quality router always names its models
        names = list(r.models.values())
        try:
            quality = np.asarray([scores.get(column) for column in r.models], dtype=np.float64)
        except KeyError as exc:
            raise ClassifierError(f"router {r.name!r} predicts no quality for {exc}") from None
        weight = policy.cost_weight if policy.cost_weight is not None else r.cost_weight
        costs = self.costs(r)
        best = int(choose(quality, costs, weight)[0])
        return Decision(
            names[best],
            "scored",
            requested,
            score=float(quality[best]),
            scores=dict(zip(names, (float(q) for q in quality), strict=True)),
            fallback=r.fallback,
            router=r.name,
            cost_weight=weight,
            price_share=float(costs[best]),
        )

    def costs(self, r: RouterSpec) -> np.ndarray:
        """A many-model router's relative prices, in the order of its `models`."""
        if r.name not in self._costs:
            prices = self.settings.models
            self._costs[r.name] = relative(
                [p.blended if (p := prices[m].price) else 0.0 for m in (r.models or {}).values()]
            )
        return self._costs[r.name]


def read_cost_weight(headers: Mapping[str, str]) -> float | None:
    """The request's `x-routellm-cost-weight`, when sent; `InvalidRequest` when it is not a
    number ≥ 0."""
    raw = headers.get(COST_WEIGHT_HEADER)
    if raw is None:
        return None
    weight = _weight(raw)
    if weight is None:
        raise InvalidRequest(
            f"{COST_WEIGHT_HEADER}: {raw!r} must be a number ≥ 0, e.g. 0.2 "
            "(0: the best predicted quality, whatever it costs)",
            param=COST_WEIGHT_HEADER,
        )
    return weight


def _weight(raw: str) -> float | None:
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if 0.0 <= value < math.inf else None


def in_share(key: str, share: float) -> bool:
    """Whether `key` falls in the first `share` of a stable hash's range: the same key always
    lands on the same side, and keys spread evenly."""
    if share >= 1.0:
        return True
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
