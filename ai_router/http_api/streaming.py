"""Turning a router stream into a streamed HTTP response, for every API family alike."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator

from flask import Response
from gevent import GreenletExit

from ai_router.answers import ChatStream
from ai_router.errors import RouterError, Unavailable
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.observe import RequestRecord
from ai_router.scope import RequestScope
from ai_router.types import ChatChunk

log = logging.getLogger(__name__)


def mid_stream_error(failure: RouterError | GreenletExit) -> RouterError:
    """What ends a stream that failed after its first byte. GreenletExit: a stopping worker's
    grace period ended while the client was still reading."""
    if isinstance(failure, RouterError):
        return failure
    return Unavailable("the router is stopping and its grace period (server.http_grace_seconds) ended")


def first_chunk(stream: ChatStream) -> ChatChunk:
    """Wait for the first chunk before answering, so that a failure to start (a bad key, a 429,
    an unreachable provider) gets its proper HTTP status rather than a 200 with an error event."""
    try:
        return next(iter(stream))
    except BaseException:
        stream.close()
        raise


def events(
    first: ChatChunk,
    stream: ChatStream,
    encode: Callable[[ChatChunk], Iterable[bytes]],
    encode_error: Callable[[RouterError], bytes],
    request_id: str,
    *,
    head: bytes = b"",
    done: bytes = b"",
    record: RequestRecord | None = None,
) -> Iterator[bytes]:
    """`head`, the encoded events of `first` and the rest of `stream`, then `done` when it
    succeeded; a failure after the first byte is sent as the family's error event, never as
    silence. Closing this closes the upstream. Runs outside the request context: take no `g`."""
    try:
        if head:
            yield head
        yield from encode(first)
        for chunk in stream:
            yield from encode(chunk)
    except (RouterError, GreenletExit) as failure:
        error = mid_stream_error(failure)
        log.info("stream failed mid-way: %s", error.message, extra={"request_id": request_id})
        if record is not None:
            record.error = status_and_type(error)[1]
        yield encode_error(error)
        return
    finally:
        stream.close()
    if done:
        yield done


def response(
    stream: ChatStream,
    encode: Callable[[ChatChunk], Iterable[bytes]],
    encode_error: Callable[[RouterError], bytes],
    scope: RequestScope,
    *,
    head: bytes = b"",
    done: bytes = b"",
) -> Response:
    """The streamed HTTP response of `stream` in a family's encoding: its first chunk awaited
    (`first_chunk`), then `events`, sent as server-sent events."""
    body = events(
        first_chunk(stream), stream, encode, encode_error, scope.request_id,
        head=head, done=done, record=scope.record,
    )  # fmt: skip
    return sse.event_stream(body, stream.abort, stream.close)
