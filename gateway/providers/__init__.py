"""One module per API the gateway serves; see `gateway.providers.base` for the seam."""

from gateway.providers.base import Call, Provider, StreamFailed, StreamReader, UpstreamRequest
from gateway.providers.openai_chat import ChatCompletions

__all__ = [
    "Call",
    "ChatCompletions",
    "Provider",
    "StreamFailed",
    "StreamReader",
    "UpstreamRequest",
]
