"""Rendering a relayed answer: the upstream's bytes, with only the model name rewritten.

When a client reaches a provider of its own family, the core passes its body through and hands
back the upstream's answer as it arrives (answers.Relayed, answers.RelayedStream). The one change
made here is to the first `"model": "..."` of each JSON document (the whole body, or each stream
event): rewritten to `provider/<model>`, so that the client can send it back and reach the same
place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import orjson
from flask import Response
from gevent import GreenletExit

from ai_router.answers import Relayed, RelayedStream
from ai_router.errors import RouterError
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.streaming import mid_stream_error
from ai_router.observe import RequestRecord

_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"((?:[^"\\]|\\.)*)"')


Document = Callable[[bytes], bytes]  # a change to a JSON document: a body, or one event


def whole(answer: Relayed, then: Document | None = None) -> Response:
    """The body, its model rewritten, then passed through `then` (an endpoint's own change)."""
    rewrite = _and_then(model_rewriter(answer.account.provider), then)
    return Response(rewrite(answer.body), status=answer.status, content_type=answer.content_type)


def stream(
    answer: RelayedStream,
    encode_error: Callable[[RouterError], bytes],
    record: RequestRecord,
    then: Document | None = None,
) -> Response:
    """The events as they arrive, each rewritten as `whole` rewrites a body; a failure after
    the first byte ends the stream with the family's error event. `record` learns of that
    failure."""
    rewrite = _and_then(model_rewriter(answer.account.provider), then)
    events = _events(answer, rewrite, encode_error, record)
    return sse.event_stream(events, answer.abort, answer.close)


def _and_then(first: Document, then: Document | None) -> Document:
    if then is None:
        return first
    return lambda document: then(first(document))


def _events(
    answer: RelayedStream,
    rewrite: Callable[[bytes], bytes],
    encode_error: Callable[[RouterError], bytes],
    record: RequestRecord,
) -> Iterator[bytes]:
    try:
        for batch in answer.events():
            # The events that came in one read go out in one write: each write is a chunk (and
            # a system call) of its own.
            yield b"".join([rewrite(event) for event in batch])
    except (RouterError, GreenletExit) as failure:
        error = mid_stream_error(failure)
        record.error = status_and_type(error)[1]
        yield encode_error(error)


def model_rewriter(provider: str) -> Callable[[bytes], bytes]:
    """Rewrites the first `"model"` of a document to `provider/<model>`."""
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
