"""Each API's wire format, one module per API the gateway serves: request parsing into a `Call`,
upstream requests, stream readers, error shapes, SSE framing. `gateway.apis.base` is the seam.

Imports settings, the ledger's value types (`Usage`) and `gateway.routing.call` /
`gateway.routing.human_text`; never the forwarder, the flow or the HTTP layer."""

from gateway.apis.anthropic_messages import AnthropicMessages
from gateway.apis.base import Provider, StreamFailed, StreamReader, UpstreamRequest
from gateway.apis.openai_chat import ChatCompletions
from gateway.apis.openai_responses import Responses
from gateway.apis.passthrough import COMPLETIONS, EMBEDDINGS, Passthrough

__all__ = [
    "COMPLETIONS",
    "EMBEDDINGS",
    "AnthropicMessages",
    "ChatCompletions",
    "Passthrough",
    "Provider",
    "Responses",
    "StreamFailed",
    "StreamReader",
    "UpstreamRequest",
]
