"""Relaying a same-family request: the upstream's bytes, with only the model name rewritten.

When an OpenAI client reaches an OpenAI-family provider (or Anthropic to Anthropic), nothing needs
translating. The router parses the request body only to route it (`model`, `stream`) and to put
the upstream's model name in; the answer is passed on as it arrives. It looks inside the answer
for one thing: the first `"model": "..."` of each JSON document (the whole body, or each stream
event), rewritten to `provider/<model>` so the client can send it back and reach the same place.
Stream events are split on their blank-line boundaries so that a rewrite never straddles two
network reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator

from flask import Response

from ai_router.errors import RouterError
from ai_router.http_api import sse
from ai_router.providers.base import RelayResponse

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')
_EVENT_END = re.compile(rb"\r?\n\r?\n")


def relay_response(
    relay: RelayResponse,
    provider: str,
    stream: bool,
    encode_error: Callable[[RouterError], bytes],
    on_close: Callable[[], None],
    on_hang_up: Callable[[], None],
) -> Response:
    """The upstream's answer for the client; `on_close` runs once the upstream is done with,
    `on_hang_up` if the client leaves a stream early."""
    rewrite = _model_rewriter(provider)
    if not stream:
        try:
            body = b"".join(relay.chunks)
        finally:
            relay.close()
            on_close()
        return Response(rewrite(body), status=relay.status, content_type=relay.content_type)
    def cleanup() -> None:
        relay.close()
        on_close()

    return sse.event_stream(_events(relay, rewrite, encode_error), on_hang_up, cleanup)


def _events(
    relay: RelayResponse, rewrite: Callable[[bytes], bytes], encode_error: Callable[[RouterError], bytes]
) -> Iterator[bytes]:
    pending = b""
    try:
        for data in relay.chunks:
            pending += data
            events = _EVENT_END.split(pending)
            pending = events.pop()
            for boundary_event in events:
                yield rewrite(boundary_event) + b"\n\n"
        if pending:
            yield rewrite(pending)
    except RouterError as error:
        yield encode_error(error)


def _model_rewriter(provider: str) -> Callable[[bytes], bytes]:
    def replace(match: re.Match[bytes]) -> bytes:
        upstream_model = json.loads(b'"' + match.group(1) + b'"')
        return b'"model":' + json.dumps(f"{provider}/{upstream_model}").encode()

    def rewrite(document: bytes) -> bytes:
        return _MODEL_FIELD.sub(replace, document, count=1)

    return rewrite
