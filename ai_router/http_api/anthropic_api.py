"""Anthropic-compatible endpoint: POST /v1/messages.

An app using the official `anthropic` SDK changes only its base_url to the router and names a
model `provider/model` or an alias. To an Anthropic-family provider the request is relayed; to
another family it is translated both ways, events included (compat.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from flask import Blueprint, Response

from ai_router.errors import RouterError
from ai_router.http_api import anthropic_wire, compat
from ai_router.http_api.errors import status_and_type
from ai_router.types import ChatChunk

blueprint = Blueprint("anthropic_api", __name__, url_prefix="/v1")


def event(name: str, data: Any) -> bytes:
    """Anthropic's framing: every event is named, and the SDK dispatches on the name."""
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class EventStream(compat.StreamEncoder):
    """message_start and ping first; the body closes after message_stop (no [DONE])."""

    def __init__(self, body: anthropic_wire.MessagesRequest, model: str, request_id: str):
        self._encoder = anthropic_wire.EventEncoder(model, request_id)
        self.head = b"".join(event(name, data) for name, data in self._encoder.start())

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        return (event(name, data) for name, data in self._encoder.encode(chunk))


def error_event(error: RouterError) -> bytes:
    status, _ = status_and_type(error)
    return event("error", anthropic_wire.error_body(error, status))


FAMILY = compat.Family(
    name="anthropic",
    schema=anthropic_wire.MessagesRequest,
    to_chat_request=anthropic_wire.to_chat_request,
    render=anthropic_wire.message,
    stream_encoder=EventStream,
    error_event=error_event,
)


@blueprint.post("/messages")
def messages() -> Response:
    return compat.handle(FAMILY)
