"""Endpoints that are only relayed: POST /v1/embeddings (OpenAI family) and
POST /v1/messages/count_tokens (Anthropic family).

The router's types have no translation for them, so they reach providers of the client's own
family only, through the one core call that chat takes (key, model patterns, retries,
fallbacks): the body passes through with only `model` changed, and the answer comes back with
its model named `provider/model`. A model of a provider of another family is a 400 naming the
providers that offer the endpoint, before any upstream is tried: never a made-up vector or count.

Embeddings are metered as any request is, at the embedding model's price for the input tokens
the upstream reports. Token counting is free, as Anthropic's is: Anthropic rate-limits it apart
from message creation, so it takes nothing from a key's rpm, tpm or budget either; the key must
still be valid and allow the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict

from ai_router.answers import Relayed
from ai_router.call import Call, Endpoint, Relayable, estimate_from_text
from ai_router.errors import InvalidRequest
from ai_router.http_api.request_body import read_json_object, require_string
from ai_router.http_api.response_model import ResponseModel
from ai_router.http_api.scoped import metered
from ai_router.http_api.v1 import relay
from ai_router.router import Router
from ai_router.scope import RequestScope
from ai_router.types import ChatRequest
from ai_router.wire import anthropic_messages, openai_chat

blueprint = Blueprint("passthrough", __name__, url_prefix="/v1")


@blueprint.post("/embeddings")
@metered("embeddings")
def embeddings(scope: RequestScope) -> Response:
    data = _read(scope)
    return _relayed(
        scope,
        data,
        openai_chat.FAMILY,
        "embeddings",
        input_tokens=_input_tokens(data.get("input")),
        max_output=0,  # nothing is generated
    )


@blueprint.post("/messages/count_tokens")
@metered("count_tokens")
def count_tokens(scope: RequestScope) -> Response:
    return _relayed(scope, _read(scope), anthropic_messages.FAMILY, "count_tokens", free=True)


def _read(scope: RequestScope) -> dict[str, Any]:
    data = read_json_object()
    scope.asked_for(str(data.get("model", "")))
    return data


def _relayed(
    scope: RequestScope,
    data: dict[str, Any],
    family: str,
    endpoint: Endpoint,
    input_tokens: int = 0,
    max_output: int | None = None,
    free: bool = False,
) -> Response:
    call = Call(
        model=require_string(data, "model"),
        chat=_offered_only_by(scope.router, family),
        request_id=scope.request_id,
        input_tokens=input_tokens,
        max_output=max_output,
        relay=Relayable(family, data, endpoint),
        free=free,
    )
    answer = scope.call(call)
    assert isinstance(answer, Relayed)  # relayed only, and never streamed
    return relay.whole(answer)


def _offered_only_by(router: Router, family: str) -> Callable[[str], ChatRequest]:
    """The `chat` of a call that is relayed only: a target of another family has no such
    endpoint, and is refused naming the providers that have it."""

    def refuse(provider: str) -> ChatRequest:
        offering = [name for name, found in router.providers.items() if found.family == family]
        raise InvalidRequest(
            f"{request.method} {request.path} is not offered by provider {provider!r}: its API "
            f"has no such endpoint. The providers that offer it: "
            f"{', '.join(offering) or 'none is configured'}",
            param="model",
        )

    return refuse


def _input_tokens(value: object) -> int:
    """A cautious estimate of the tokens of an embeddings `input`: a string, token ids, or a
    list of strings or of token-id lists."""
    total = 0
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            total += estimate_from_text(item)
        elif isinstance(item, int):
            total += 1
        elif isinstance(item, list):
            total += len(item)
    return total


# --- the wire shapes, for the OpenAPI document (openapi.py) ---------------------------------------
# Neither body is validated by these: each is relayed, and its upstream judges it.


class EmbeddingsRequest(BaseModel):
    """OpenAI's embeddings request. The SDK sends `encoding_format: base64` unless told."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None


class Embedding(ResponseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    # The floats, or (encoding_format: base64) their little-endian float32 bytes in base64.
    embedding: list[float] | str


class EmbeddingUsage(ResponseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(ResponseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


class CountTokensRequest(BaseModel):
    """Anthropic's token-counting request: a Messages request without `max_tokens`."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[dict[str, Any]]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: dict[str, Any] | None = None
    thinking: dict[str, Any] | None = None


class MessageTokensCount(ResponseModel):
    input_tokens: int
