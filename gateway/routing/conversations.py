"""Conversation-aware routing: which conversation a request belongs to, and whether its turn
keeps the model the conversation already has.

Identity, in order:

1. the `x-routellm-conversation` header: the client's word, echoed as sent; it always continues
   the conversation's state;
2. the client's own id in its API's terms (`Call.session`): Claude Code's session in
   `metadata.user_id`, Codex's `session-id` / `thread-id` headers or `prompt_cache_key`; a
   session always continues. An end user's id (`user`, `safety_identifier`, a plain
   `metadata.user_id`) names a conversation that a request without history starts afresh;
3. derived from the client's key, the system message and the first user message, which clients
   resend unchanged on every turn (markup such as `cache_control` left out). Under a derived id
   a request without an earlier assistant turn starts afresh: its decision replaces any state,
   so two chats that open with the same words do not share later turns.

Ids from 2 and 3 are echoed as `c-<hex>`, a keyed hash: no user id reaches a header or the
ledger. State is scoped by the client's key (clients with different keys never share it) and by
the routed name (an agent's side requests to another router never move its main model).

Policies (`ROUTELLM_CONVERSATION_POLICY`):

- `per_turn`: every turn is decided alone; no state is read or written.
- `sticky`: the conversation's first decision holds for all its turns.
- `upgrade` (default): a turn moves the conversation only when its P(LABEL_0) is higher than
  that of the decision that chose the current model (for a many-model router: only to a model
  with a higher price), so it climbs but never falls back; and at
  most `ROUTELLM_CONVERSATION_MAX_SWITCHES` times (default 1), since every switch throws away
  the upstream's prompt cache, which for an agent's long context costs more than routing saves.

A kept decision has reason `pinned` and still reports the new turn's label and scores. A model
named directly is never pinned or swapped. When the store fails, the turn is decided alone
(`failures` counts it, `degraded` is set until the store answers again).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.errors import InvalidRequest
from gateway.routing.call import Call
from gateway.routing.decider import STRONG_LABEL, Decision
from gateway.routing.state import Store, StoreUnavailable
from gateway.settings.load import ConversationPolicy

HEADER = "x-routellm-conversation"
NAMESPACE = "conversation"
VALID_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
"""An explicit id: 1 to 128 visible ASCII characters (it is echoed in a response header)."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """The conversation one request belongs to."""

    id: str
    """The id echoed to the client: its own, or the derived `c-<hex>`."""
    explicit: bool
    """The client sent the id in `x-routellm-conversation`."""
    scope: str
    """The store key: the id hashed with the client's key, so clients never share state."""
    fresh: bool
    """A request that starts its conversation (no earlier assistant turn, and no id that always
    continues): any state is replaced."""

    def key(self, router: str) -> str:
        """The store key of this conversation's state under the routed name `router`."""
        return f"{self.scope}:{router}"


@dataclass(frozen=True, slots=True)
class Pin:
    """What a conversation keeps between turns."""

    model: str
    win_rate: float
    """P(LABEL_0) of the decision that chose `model`."""
    router: str
    """The routed name that decided; a turn asking another router decides afresh."""
    switches: int = 0
    """How often the conversation has moved to another model."""

    def as_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "win_rate": self.win_rate,
            "router": self.router,
            "switches": self.switches,
        }

    @classmethod
    def from_json(cls, value: Any) -> Pin | None:
        """None for anything that is not a pin (another version's value, a foreign key)."""
        if not isinstance(value, dict):
            return None
        model, rate, router = value.get("model"), value.get("win_rate"), value.get("router")
        switches = value.get("switches", 0)
        if not isinstance(switches, int):
            return None
        if isinstance(model, str) and isinstance(rate, int | float) and isinstance(router, str):
            return cls(model, float(rate), router, switches)
        return None


def client_key(headers: Mapping[str, str]) -> str:
    """The credential the client sent (Bearer token, else `x-api-key`); '' without one."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip()


def identify(header: str | None, key: str, call: Call) -> Conversation:
    """The conversation of `call`, from the client's header or derived; `InvalidRequest` for a
    header that is not a usable id."""
    secret = hashlib.sha256(key.encode()).digest()
    continues = call.has_history
    if header is not None:
        given = header.strip()
        if not VALID_ID.match(given):
            raise InvalidRequest(
                f"The {HEADER} header must be 1 to 128 visible ASCII characters (no spaces)",
                param=HEADER,
            )
        conversation_id, explicit, continues = given, True, True
    else:
        seed = call.conversation_seed
        if call.session is not None:
            seed, continues = call.session.value, continues or call.session.durable
        digest = hashlib.blake2b(seed.encode(), key=secret, digest_size=16)
        conversation_id, explicit = f"c-{digest.hexdigest()}", False
    scope = hashlib.blake2b(
        conversation_id.encode(), key=secret, digest_size=20, person=b"routellm-conv"
    ).hexdigest()
    return Conversation(conversation_id, explicit, scope, fresh=not continues)


def win_rate(decision: Decision) -> float | None:
    """What `upgrade` climbs by: P(LABEL_0) of a classified decision, or for a many-model
    router the chosen model's price share (a turn moves only to a dearer model); None when the
    router did not run."""
    if decision.price_share is not None:
        return decision.price_share
    if decision.scores is None:
        return None
    return decision.scores.get(STRONG_LABEL)


def keep(
    policy: ConversationPolicy, pin: Pin | None, decision: Decision, max_switches: int = 1
) -> tuple[Decision, Pin | None]:
    """The rule itself: the decision this turn gets under `policy`, given the conversation's
    `pin`, and the pin to store afterwards (None: store nothing). Under `upgrade` a conversation
    moves to another model at most `max_switches` times: each switch costs the new model a
    prompt cache it does not have."""
    rate = win_rate(decision)
    if policy == "per_turn":
        return decision, None
    switches = 0
    if pin is not None and pin.router == decision.requested:
        moves = decision.model != pin.model
        if (
            policy == "sticky"
            or rate is None
            or rate <= pin.win_rate
            or (moves and pin.switches >= max_switches)
        ):
            return replace(decision, model=pin.model, reason="pinned"), pin
        switches = pin.switches + moves
    if rate is None:
        return decision, None
    return decision, Pin(decision.model, rate, decision.requested, switches)


class Conversations:
    """Applies the policy to routed decisions, with the state in a `Store`."""

    def __init__(
        self, policy: ConversationPolicy, store: Store, ttl: float, max_switches: int = 1
    ) -> None:
        self.policy = policy
        self.store = store
        self.ttl = ttl
        self.max_switches = max_switches
        self.failures = 0
        """Routed requests decided alone because the store failed."""
        self.degraded = False
        """The store's last operation failed; cleared by its next success."""

    async def settle(
        self, conversation: Conversation, decision: Decision, *, record: bool = True
    ) -> Decision:
        """The decision for this turn of `conversation`. `record=False` reads the state but
        leaves it untouched (`/v1/route` explains without changing anything)."""
        if self.policy == "per_turn" or not decision.routed:
            return decision
        key = conversation.key(decision.requested)
        try:
            pin = None
            if not conversation.fresh:
                pin = Pin.from_json(await self.store.get(NAMESPACE, key))
            kept, new_pin = keep(self.policy, pin, decision, self.max_switches)
            if record and new_pin is not None:
                await self.store.put(NAMESPACE, key, new_pin.as_json(), self.ttl)
        except StoreUnavailable:
            self.failures += 1
            self.degraded = True
            return decision
        self.degraded = False
        return kept

    async def held(self, conversation: Conversation, router: str) -> Pin | None:
        """The model `conversation` holds under `router`, read without changing it; None when
        it holds none (or the store failed, counted as in `settle`)."""
        if self.policy == "per_turn" or conversation.fresh:
            return None
        try:
            pin = Pin.from_json(await self.store.get(NAMESPACE, conversation.key(router)))
        except StoreUnavailable:
            self.failures += 1
            self.degraded = True
            return None
        self.degraded = False
        return pin

    def health(self) -> str:
        return "degraded" if self.degraded else "ok"
