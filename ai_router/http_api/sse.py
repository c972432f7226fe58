"""Server-sent events: the framing, and a response that is flushed event by event."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Response

DONE = b"data: [DONE]\n\n"

# Streaming-safe headers: no caching, and no buffering by a proxy such as nginx.
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def encode(data: Any) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"


def event_stream(events: Iterable[bytes], headers: dict[str, str]) -> Response:
    """A chunked text/event-stream response; gunicorn writes each yielded event as it comes."""
    return Response(
        events,
        mimetype="text/event-stream",
        headers={**STREAM_HEADERS, **headers},
        direct_passthrough=True,
    )

