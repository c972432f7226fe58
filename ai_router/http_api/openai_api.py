"""OpenAI-compatible endpoints: POST /v1/chat/completions, GET /v1/models[/{id}].

An app using the official `openai` SDK changes only its base_url to `<router>/v1` and names a
model `provider/model`. To an OpenAI-family provider the request is relayed; to another family it
is translated both ways.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, g, jsonify, request

from ai_router.errors import NotFound, RouterError
from ai_router.http_api import openai_wire, passthrough, sse, streaming
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.request_body import read_json_object, require_string, validate
from ai_router.http_api.state import router
from ai_router.providers.base import RelayRequest
from ai_router.types import ChatChunk

FAMILY = "openai"
blueprint = Blueprint("openai_api", __name__, url_prefix="/v1")


@blueprint.post("/chat/completions")
def chat_completions() -> Response:
    data = read_json_object()
    provider, upstream_model = router().target(require_string(data, "model"))
    request_id: str = g.request_id
    stream = data.get("stream") is True
    if provider.family == FAMILY:
        relay = provider.relay(RelayRequest({**data, "model": upstream_model}, None, request_id))
        return passthrough.relay_response(relay, provider.name, stream, error_event)

    body = validate(openai_wire.ChatCompletionRequest, data)
    chat_request = openai_wire.to_chat_request(body, provider.name, upstream_model, request_id)
    model_label = f"{provider.name}/{upstream_model}"
    if not stream:
        response = router().complete(chat_request)
        return jsonify(openai_wire.completion(response, model_label, request_id))

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    encoder = openai_wire.ChunkEncoder(model_label, request_id, include_usage)
    chat_stream = router().stream(chat_request)
    first = streaming.first_chunk(chat_stream)

    def encode(chunk: ChatChunk) -> Iterator[bytes]:
        return (sse.encode(data) for data in encoder.encode(chunk))

    head = sse.encode(encoder.start())
    events = streaming.events(
        first, chat_stream, encode, error_event, request_id, head=head, done=sse.DONE
    )
    return sse.event_stream(events, {})


@blueprint.get("/models")
def list_models() -> Response:
    return jsonify(object="list", data=[_model(name) for name in router().model_names()])


@blueprint.get("/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    if model_id not in router().model_names():
        raise NotFound(f"model {model_id!r} does not exist; GET /v1/models lists them", "model")
    return jsonify(_model(model_id))


def _model(name: str) -> dict[str, object]:
    return {"id": name, "object": "model", "created": 0, "owned_by": name.partition("/")[0]}


def error_event(error: RouterError) -> bytes:
    # The SDK raises APIError on a stream chunk with an "error" key.
    status, _ = status_and_type(error)
    return sse.encode(openai_wire.error_body(error, status))

