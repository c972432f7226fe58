"""Server-sent events: the framing, and a response that is flushed event by event."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Response

from ai_router.http_api.disconnect import watch_client

DONE = b"data: [DONE]\n\n"

# Streaming-safe headers: no caching, and no buffering by a proxy such as nginx.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def event_stream(events: Iterable[bytes], on_hang_up: Callable[[], None]) -> Response:
    """A chunked text/event-stream response; gunicorn writes each yielded event as it comes.
    `on_hang_up` runs if the client goes away before the stream ends (it cuts the upstream off).
    Call it in the view, where the request is known."""
    stop_watching = watch_client(on_hang_up)

    def relayed() -> Iterator[bytes]:
        try:
            yield from events
        finally:
            stop_watching()

    return Response(
        relayed(), mimetype="text/event-stream", headers=STREAM_HEADERS, direct_passthrough=True
    )

