"""`Call`: a client request as the flow sees it, whatever API it came on (each API's `parse`, in
`gateway.apis`, builds one). Routing, the forwarder and the flow read it; it imports nothing of
the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation id the client sent in its own API's terms (e.g. Claude Code's session in
    `metadata.user_id`, Codex's `session-id` header)."""

    value: str
    durable: bool
    """A session id, which always continues its conversation; False for a user id (`user`,
    `safety_identifier`), under which a request without history starts afresh."""


@dataclass(frozen=True, slots=True)
class Call:
    """A validated client request: what the flow needs to know, the body kept untouched."""

    model: str
    stream: bool
    body: dict[str, Any]
    user_texts: tuple[str, ...] = ()
    """The user turns' texts, oldest first, '' for a tool result (`human_text.choose`
    picks what is classified)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Client headers of the API itself that go upstream as they are (e.g. `anthropic-beta`)."""
    query: str = ""
    """The client's query string (e.g. Claude Code's `beta=true`), sent upstream as it is."""
    previous_id: str | None = None
    """An earlier answer this call continues on the server that made it
    (the Responses API's `previous_response_id`)."""
    conversation_seed: str = ""
    """What a derived conversation id is made of (the system message and the first user
    message, their content without markup): the same on every turn of one chat."""
    has_history: bool = False
    """The request carries an earlier assistant turn: it continues a conversation."""
    session: Session | None = None
    """The client's own conversation id, when its API carries one."""
    cost_weight: float | None = None
    """The client's `x-routellm-cost-weight`: a many-model router's weight for this call."""
