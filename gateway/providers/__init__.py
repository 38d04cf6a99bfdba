"""One module per API the gateway serves; see `gateway.providers.base` for the seam."""

from gateway.providers.anthropic_messages import AnthropicMessages
from gateway.providers.base import Call, Provider, StreamFailed, StreamReader, UpstreamRequest
from gateway.providers.openai_chat import ChatCompletions
from gateway.providers.openai_responses import Responses
from gateway.providers.passthrough import COMPLETIONS, EMBEDDINGS, Passthrough

__all__ = [
    "COMPLETIONS",
    "EMBEDDINGS",
    "AnthropicMessages",
    "Call",
    "ChatCompletions",
    "Passthrough",
    "Provider",
    "Responses",
    "StreamFailed",
    "StreamReader",
    "UpstreamRequest",
]
