"""OpenAI-compatible endpoints: POST /v1/chat/completions, GET /v1/models[/{id}].

An app using the official `openai` SDK changes only its base_url to `<router>/v1` and names a
model `provider/model` or an alias. To an OpenAI-family provider the request is relayed; to
another family it is translated both ways (family.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from flask import Blueprint, Response, jsonify

from ai_router.errors import NotFound, RouterError
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.response_model import ResponseModel
from ai_router.http_api.scoped import caller, keyed, metered
from ai_router.http_api.state import router
from ai_router.http_api.v1 import family, openai_chat
from ai_router.scope import RequestScope
from ai_router.types import ChatChunk
from ai_router.wire import openai_chat as wire

blueprint = Blueprint("openai_api", __name__, url_prefix="/v1")


class ChunkStream(family.StreamEncoder):
    """`data: {chunk}` events, a role chunk first, `data: [DONE]` last."""

    done = sse.DONE

    def __init__(self, body: openai_chat.ChatCompletionRequest, model: str, request_id: str):
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        self._encoder = openai_chat.ChunkEncoder(model, request_id, include_usage)
        self.head = sse.encode(self._encoder.start())

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        return (sse.encode(data) for data in self._encoder.encode(chunk))


def error_event(error: RouterError) -> bytes:
    # The SDK raises APIError on a stream chunk with an "error" key.
    status, _ = status_and_type(error)
    return sse.encode(openai_chat.error_body(error, status))


FAMILY = family.Family(
    name=wire.FAMILY,
    schema=openai_chat.ChatCompletionRequest,
    to_chat_request=openai_chat.to_chat_request,
    render=openai_chat.completion,
    stream_encoder=ChunkStream,
    error_event=error_event,
)


@blueprint.post("/chat/completions")
@metered("openai")
def chat_completions(scope: RequestScope) -> Response:
    return family.handle(FAMILY, scope)


class ModelObject(ResponseModel):
    """A model the router serves: `provider/model`, or an alias (owned by "ai-router")."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str

    @classmethod
    def named(cls, name: str) -> ModelObject:
        return cls(id=name, owned_by=name.partition("/")[0] if "/" in name else "ai-router")


class ModelList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]


@blueprint.get("/models")
@keyed
def list_models() -> Response:
    models = [ModelObject.named(name) for name in router().model_names_for(caller())]
    return jsonify(ModelList(data=models).to_json())


@blueprint.get("/models/<path:model_id>")
@keyed
def get_model(model_id: str) -> Response:
    if model_id not in router().model_names_for(caller()):
        raise NotFound(f"model {model_id!r} does not exist; GET /v1/models lists them", "model")
    return jsonify(ModelObject.named(model_id).to_json())
