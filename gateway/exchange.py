"""`Exchange`: one request on its way through the flow, and what the account step records of it
(its ledger row, its response headers)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from opentelemetry.trace import Span

from gateway.apis.base import Provider
from gateway.ledger.pricing import Usage
from gateway.ledger.writer import DecisionRow, new_request_id
from gateway.routing.call import Call
from gateway.routing.conversations import HEADER as CONVERSATION_HEADER
from gateway.routing.decider import Decision
from gateway.routing.human_text import ChosenText


@dataclass
class Exchange:
    """One request on its way through the flow: what the account step records."""

    provider: Provider
    call: Call
    chosen: ChosenText
    """What the router classified (its length and source go to the ledger; the text itself only
    when prompts are kept)."""
    id: str = field(default_factory=new_request_id)
    """The request id: `x-routellm-request-id`, the log line's and the ledger row's id."""
    created: float = field(default_factory=time.time)
    started: float = field(default_factory=time.perf_counter)
    decision: Decision | None = None
    conversation: str | None = None
    """The conversation id (`x-routellm-conversation`), when the API has conversations."""
    classify_ms: float | None = None
    first_byte_ms: float | None = None
    answer_id: str | None = None
    """The upstream's id for the answer, when its API lets later calls continue it."""
    usage: Usage | None = None
    span: Span | None = None
    """The request's trace span, when tracing is on."""
    answer_body: bytes | None = None
    """A successful non-streamed answer as the client received it (for shadow judging)."""

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def row(
        self,
        model: str,
        reason: str,
        status: int,
        spent: float | None,
        would_have: float | None,
    ) -> DecisionRow:
        """The ledger's row for this request, once it is finished."""
        decision, usage = self.decision, self.usage
        return DecisionRow(
            id=self.id,
            created=self.created,
            requested=self.call.model,
            model=model,
            reason=reason,
            status=status,
            stream=self.call.stream,
            label=decision.label if decision else None,
            score=decision.score if decision else None,
            scores=decision.scores if decision else None,
            threshold=decision.threshold if decision else None,
            input_tokens=usage.input_tokens if usage else None,
            output_tokens=usage.output_tokens if usage else None,
            cached_input_tokens=usage.cached_input_tokens if usage else None,
            cost_usd=spent,
            baseline_cost_usd=would_have,
            classify_ms=self.classify_ms,
            first_byte_ms=self.first_byte_ms,
            total_ms=self.elapsed_ms(),
            conversation=self.conversation,
            endpoint=self.provider.name,
            prompt=self.chosen.text or None,
            classified_chars=len(self.chosen.text),
            classified_from=self.chosen.source,
            router=decision.router if decision else None,
            checkpoint=decision.checkpoint if decision else None,
            candidate_model=decision.candidate_model if decision else None,
            candidate_score=decision.candidate_score if decision else None,
            cost_weight=decision.cost_weight if decision else None,
        )

    def headers(self) -> dict[str, str]:
        decided = self.decision.headers() if self.decision else {}
        if self.conversation is not None:
            decided[CONVERSATION_HEADER] = self.conversation
        return {"x-routellm-request-id": self.id, **decided}
