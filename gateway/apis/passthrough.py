"""APIs served for directly named models only, passed through as they are:
`POST /v1/embeddings` and the legacy `POST /v1/completions`. There is nothing to classify, so a
routed name is a client error."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.apis.base import Provider, StreamReader
from gateway.apis.openai_chat import ChatReader
from gateway.apis.schema import model_name, parse_body, stream_flag
from gateway.errors import InvalidRequest
from gateway.ledger.writer import Api
from gateway.routing.call import Call


class Passthrough(Provider):
    routable = False

    def __init__(self, name: Api, path: str, *, streams: bool) -> None:
        self.name = name
        self.path = path
        self._streams = streams

    def parse(self, raw: bytes, headers: Mapping[str, str], *, max_messages: int) -> Call:
        body = parse_body(raw)
        stream = stream_flag(body)
        if stream and not self._streams:
            raise InvalidRequest(f"/v1/{self.name} does not stream", param="stream")
        return Call(model_name(body), stream, body)

    def reader(self, call: Call) -> StreamReader:
        # Legacy completions stream like chat: `data:` chunks with finish_reason, then [DONE].
        return ChatReader(self)


EMBEDDINGS = Passthrough("embeddings", "/embeddings", streams=False)
COMPLETIONS = Passthrough("completions", "/completions", streams=True)
