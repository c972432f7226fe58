"""Anthropic-compatible endpoint: POST /v1/messages.

An app using the official `anthropic` SDK changes only its base_url to the router and names a
model `provider/model` or an alias. To an Anthropic-family provider the request is relayed; to
another family it is translated both ways, events included (family.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response

from ai_router.errors import RouterError
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.scoped import metered
from ai_router.http_api.v1 import anthropic_messages, family
from ai_router.scope import RequestScope
from ai_router.types import ChatChunk
from ai_router.wire import anthropic_messages as wire

blueprint = Blueprint("anthropic_api", __name__, url_prefix="/v1")


def event(name: str, data: Any) -> bytes:
    """Anthropic's framing: every event is named, and the SDK dispatches on the name."""
    return sse.encode(data, name)


class EventStream(family.StreamEncoder):
    """message_start and ping first; the body closes after message_stop (no [DONE])."""

    def __init__(self, body: anthropic_messages.MessagesRequest, model: str, request_id: str):
        self._encoder = anthropic_messages.EventEncoder(model, request_id)
        self.head = b"".join(event(name, data) for name, data in self._encoder.start())

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        return (event(name, data) for name, data in self._encoder.encode(chunk))


def error_event(error: RouterError) -> bytes:
    status, _ = status_and_type(error)
    return event(wire.ERROR, anthropic_messages.error_body(error, status))


FAMILY = family.Family(
    name=wire.FAMILY,
    schema=anthropic_messages.MessagesRequest,
    to_chat_request=anthropic_messages.to_chat_request,
    render=anthropic_messages.message,
    stream_encoder=EventStream,
    error_event=error_event,
)


@blueprint.post("/messages")
@metered("anthropic")
def messages(scope: RequestScope) -> Response:
    return family.handle(FAMILY, scope)
