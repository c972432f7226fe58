"""Relaying a same-family request: the upstream's bytes, with only the model name rewritten.

When an OpenAI client reaches an OpenAI-family provider (or Anthropic to Anthropic), nothing needs
translating. The router parses the request body only to route it (`model`, `stream`) and to put
the upstream's model name in; the answer is passed on as it arrives. It looks inside the answer
for two things: the first `"model": "..."` of each JSON document (the whole body, or each stream
event), rewritten to `provider/<model>` so the client can send it back and reach the same place;
and the `usage` of the documents that carry one, for metrics and the request's log line.
Stream events are split on their blank-line boundaries so that a rewrite never straddles two
network reads (an upstream's \r\n line ends come out as \n, which SSE reads the same).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import orjson
from flask import Response

from ai_router.errors import RouterError
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.observe import RequestRecord
from ai_router.providers.base import RelayResponse
from ai_router.providers.upstream import split_events
from ai_router.types import Usage

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')
# An event carrying generated content: an OpenAI chunk with delta content or tool-call
# arguments, or an Anthropic content_block_delta. Matched on bytes, without parsing the event.
_PIECE = re.compile(
    rb'"delta":\s*\{\s*"(?:content"\s*:\s*"[^"]|tool_calls")|"type":\s*"content_block_delta"'
)


def relay_response(
    relay: RelayResponse,
    provider: str,
    stream: bool,
    encode_error: Callable[[RouterError], bytes],
    on_close: Callable[[], None],
    on_hang_up: Callable[[], None],
    record: RequestRecord | None = None,
) -> Response:
    """The upstream's answer for the client; `on_close` runs once the upstream is done with,
    `on_hang_up` if the client leaves a stream early."""
    rewrite = _model_rewriter(provider)
    if not stream:
        try:
            body = b"".join(relay.chunks)
            _note_usage(body, record)
        finally:
            relay.close()
            on_close()
        return Response(rewrite(body), status=relay.status, content_type=relay.content_type)
    def cleanup() -> None:
        relay.close()
        on_close()

    events = _events(relay, rewrite, encode_error, record)
    return sse.event_stream(events, on_hang_up, cleanup)


def _events(
    relay: RelayResponse,
    rewrite: Callable[[bytes], bytes],
    encode_error: Callable[[RouterError], bytes],
    record: RequestRecord | None,
) -> Iterator[bytes]:
    pending = b""
    first_piece_sent = False
    try:
        for data in relay.chunks:
            events, pending = split_events(pending + data)
            # The events that came in one read go out in one write: each write is a chunk (and
            # a system call) of its own. Except the first piece of content, which goes out at
            # once rather than after the rest of its read is rewritten: time to first token.
            ready: list[bytes] = []
            for event in events:
                _note_usage(event, record)
                ready.append(rewrite(event) + b"\n\n")
                if _PIECE.search(event):
                    if record is not None:
                        record.relayed_pieces += 1
                    if not first_piece_sent:
                        first_piece_sent = True
                        yield b"".join(ready)
                        ready = []
            if ready:
                yield b"".join(ready)
        if pending:
            yield rewrite(pending)
    except RouterError as error:
        if record is not None:
            record.error = status_and_type(error)[1]
        yield encode_error(error)


def _note_usage(document: bytes, record: RequestRecord | None) -> None:
    """Token counts for metrics and logs: the one other thing read from a relayed answer, and
    only from a document (event) that has a usage object: OpenAI's last chunk (when the client
    asked for include_usage) or whole answer, Anthropic's message_start and message_delta."""
    if record is None or b'"usage"' not in document:
        return
    start = document.find(b"{")
    try:
        data = orjson.loads(document[start:])
    except ValueError:
        return
    usage = data.get("usage") or (data.get("message") or {}).get("usage")
    if not isinstance(usage, dict):
        return
    previous = record.usage or Usage()
    input_tokens = usage.get("prompt_tokens", usage.get("input_tokens"))
    output_tokens = usage.get("completion_tokens", usage.get("output_tokens"))
    record.usage = Usage(
        input_tokens if isinstance(input_tokens, int) else previous.input_tokens,
        output_tokens if isinstance(output_tokens, int) else previous.output_tokens,
    )


def _model_rewriter(provider: str) -> Callable[[bytes], bytes]:
    # Every event of a stream names the same model: decode and encode it once.
    rewritten: dict[bytes, bytes] = {}

    def replace(match: re.Match[bytes]) -> bytes:
        quoted = match.group(1)
        if quoted not in rewritten:
            upstream_model = orjson.loads(b'"' + quoted + b'"')
            rewritten[quoted] = b'"model":' + orjson.dumps(f"{provider}/{upstream_model}")
        return rewritten[quoted]

    def rewrite(document: bytes) -> bytes:
        return _MODEL_FIELD.sub(replace, document, count=1)

    return rewrite
