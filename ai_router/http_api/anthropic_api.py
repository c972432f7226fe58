"""Anthropic-compatible endpoint: POST /v1/messages.

An app using the official `anthropic` SDK changes only its base_url to the router and names a
model `provider/model`. To an Anthropic-family provider the request is relayed; to another family
it is translated both ways, events included.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, jsonify

from ai_router.errors import RouterError
from ai_router.http_api import anthropic_wire, passthrough, sse, streaming
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.request_body import read_json_object, require_string, validate
from ai_router.http_api.state import router
from ai_router.providers.base import RelayRequest
from ai_router.types import ChatChunk

FAMILY = "anthropic"
blueprint = Blueprint("anthropic_api", __name__, url_prefix="/v1")


@blueprint.post("/messages")
def messages() -> Response:
    data = read_json_object()
    provider, upstream_model = router().target(require_string(data, "model"))
    request_id: str = g.request_id
    stream = data.get("stream") is True
    if provider.family == FAMILY:
        relay = provider.relay(RelayRequest({**data, "model": upstream_model}, None, request_id))
        return passthrough.relay_response(relay, provider.name, stream, error_event)

    body = validate(anthropic_wire.MessagesRequest, data)
    chat_request = anthropic_wire.to_chat_request(body, provider.name, upstream_model, request_id)
    model_label = f"{provider.name}/{upstream_model}"
    if not stream:
        response = router().complete(chat_request)
        return jsonify(anthropic_wire.message(response, model_label, request_id))

    encoder = anthropic_wire.EventEncoder(model_label, request_id)
    chat_stream = router().stream(chat_request)
    first = streaming.first_chunk(chat_stream)

    def encode(chunk: ChatChunk) -> Iterator[bytes]:
        return (event(name, data) for name, data in encoder.encode(chunk))

    head = b"".join(event(name, data) for name, data in encoder.start())
    events = streaming.events(first, chat_stream, encode, error_event, request_id, head=head)
    return sse.event_stream(events, {})


def event(name: str, data: Any) -> bytes:
    """Anthropic's framing: every event is named, and the SDK dispatches on the name."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return b"event: " + name.encode() + b"\ndata: " + payload + b"\n\n"


def error_event(error: RouterError) -> bytes:
    status, _ = status_and_type(error)
    return event("error", anthropic_wire.error_body(error, status))

