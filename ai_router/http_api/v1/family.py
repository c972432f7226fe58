"""What the OpenAI- and Anthropic-shaped endpoints share: parse the body, make one core call,
render the answer in the client's family.

The core relays the body to a target of the client's own family (only `model` changes) and asks
a target of another family in the router's types, translated by the family's `to_chat_request`;
the body is validated against the family's schema only if some target needs that translation.
A `Family` holds what differs between the two: the schema, the translations both ways, and the
stream framing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from flask import Response, jsonify
from pydantic import BaseModel

from ai_router.answers import ChatStream, Completion, Relayed
from ai_router.call import Call, Relayable, estimate_from_text
from ai_router.errors import InvalidRequest, RouterError
from ai_router.http_api import streaming
from ai_router.http_api.request_body import read_json_object, require_string, validate
from ai_router.http_api.v1 import relay
from ai_router.native_request import check_max_tokens
from ai_router.scope import RequestScope
from ai_router.types import ChatChunk, ChatRequest, ChatResponse

Body = TypeVar("Body", bound=BaseModel)


class StreamEncoder:
    """Encodes one translated stream: bytes before the first chunk, per chunk, after the last."""

    head: bytes = b""
    done: bytes = b""

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        raise NotImplementedError(f"{type(self).__name__} does not encode chunks")


@dataclass(frozen=True)
class Family(Generic[Body]):
    name: str
    schema: type[Body]
    # The validated body as a request for the named provider, in the router's types.
    to_chat_request: Callable[[Body, str, str], ChatRequest]
    render: Callable[[ChatResponse, str, str], dict[str, Any]]
    stream_encoder: Callable[[Body, str, str], StreamEncoder]
    error_event: Callable[[RouterError], bytes]


def handle(family: Family[Body], scope: RequestScope) -> Response:
    data = read_json_object()
    scope.asked_for(str(data.get("model", "")))
    model = require_string(data, "model")
    request_id = scope.request_id
    parsed: list[Body] = []  # the schema-validated body, made once and only if needed

    def validated() -> Body:
        if not parsed:
            parsed.append(validate(family.schema, data))
        return parsed[0]

    def chat(provider: str) -> ChatRequest:
        return family.to_chat_request(validated(), provider, request_id)

    answer = scope.call(
        Call(
            model=model,
            chat=chat,
            stream=data.get("stream") is True,
            request_id=request_id,
            input_tokens=_input_estimate(data),
            max_output=_max_output(data),
            relay=Relayable(family.name, data),
        )
    )
    if isinstance(answer, Completion):
        response = answer.response
        return jsonify(family.render(response, _label(response.provider, response.model), request_id))
    if isinstance(answer, ChatStream):
        return _translated_stream(family, validated(), answer, scope)
    if isinstance(answer, Relayed):
        return relay.whole(answer)
    return relay.stream(answer, family.error_event, scope.record)


def _translated_stream(
    family: Family[Body], body: Body, stream: ChatStream, scope: RequestScope
) -> Response:
    encoder = family.stream_encoder(body, _label(stream.request.provider, stream.request.model), scope.request_id)
    return streaming.response(
        stream, encoder.encode, family.error_event, scope, head=encoder.head, done=encoder.done
    )


def _input_estimate(data: dict[str, Any]) -> int:
    # Read off the raw messages and system as JSON text: cautious, and no schema needed.
    text = orjson.dumps([data.get("messages", ""), data.get("system", "")]).decode()
    return estimate_from_text(text)


def _max_output(data: dict[str, Any]) -> int | None:
    """The body's token limit, checked as every other front door checks it (a relayed body is
    not validated by a schema)."""
    for field in ("max_completion_tokens", "max_tokens"):
        value = data.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidRequest(f"{field} must be a whole number; got {value!r}", param=field)
        return check_max_tokens(value, field)
    return None


def _label(provider: str, model: str) -> str:
    """How a response names its model: provider/model, which the client can send back."""
    return f"{provider}/{model}"
