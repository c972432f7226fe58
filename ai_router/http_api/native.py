"""The native API: POST /generate and POST /stream, the original service's HTTP contract.

Bodies are validated with pydantic models (shape and types), then by the shared request builder
(meaning), so /generate, /stream and gRPC refuse the same requests with the same messages.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

from ai_router.errors import RouterError
from ai_router.http_api import sse, streaming
from ai_router.http_api.errors import NativeError, error_body
from ai_router.http_api.request_body import parse_body
from ai_router.http_api.response_model import ResponseModel
from ai_router.http_api.scoped import metered
from ai_router.native_request import RawMessage, build_chat_request
from ai_router.scope import RequestScope, asked_name
from ai_router.types import ChatChunk, ChatRequest, FinishReason, Usage

blueprint = Blueprint("native", __name__)

ParameterValue = str | int | float | list[str]


class NativeMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str
    content: str


class GenerateBody(BaseModel):
    """The body of /generate and /stream."""

    model_config = ConfigDict(extra="forbid")
    provider: str = ""
    model: str = ""
    prompt: str = ""
    messages: list[NativeMessage] = Field(default_factory=list)
    system: str = ""
    max_tokens: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: StrictInt | None = None
    stop: str | list[str] | None = None
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)


class TokenUsage(ResponseModel):
    input_tokens: int
    output_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> TokenUsage:
        return cls(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            total_tokens=usage.total_tokens,
        )


class GenerateResponse(ResponseModel):
    """The answer of /generate."""

    content: str
    provider: str
    model: str
    finish_reason: FinishReason
    usage: TokenUsage


class StreamDelta(ResponseModel):
    """A /stream event: the next piece of text."""

    content: str


class StreamEnd(ResponseModel):
    """The last /stream event before `data: [DONE]`: empty content, why the answer ended, and
    its usage."""

    content: str
    finish_reason: FinishReason
    usage: TokenUsage


class GenerateStreamEvent(RootModel[StreamDelta | StreamEnd | NativeError]):
    """The JSON of one /stream event: deltas, then the end (and `data: [DONE]`); or an error,
    which ends the stream without [DONE]."""


@blueprint.post("/generate")
@metered("generate")
def generate(scope: RequestScope) -> Response:
    response = scope.complete(_chat_request(scope))
    return jsonify(
        GenerateResponse(
            content=response.content,
            provider=response.provider,
            model=response.model,
            finish_reason=response.finish_reason,
            usage=TokenUsage.of(response.usage),
        ).to_json()
    )


@blueprint.post("/stream")
@metered("stream")
def stream(scope: RequestScope) -> Response:
    chat_stream = scope.stream(_chat_request(scope))
    request_id = scope.request_id

    def error_event(error: RouterError) -> bytes:
        return sse.encode(error_body(error, request_id))

    return streaming.response(chat_stream, _events, error_event, scope, done=sse.DONE)


def _events(chunk: ChatChunk) -> Iterator[bytes]:
    # The native API carries text only: tool-call pieces have no event here.
    if chunk.delta:
        yield sse.encode(StreamDelta(content=chunk.delta).to_json())
    if chunk.finish_reason is not None:  # the final chunk
        usage = TokenUsage.of(chunk.usage or Usage())
        end = StreamEnd(content="", finish_reason=chunk.finish_reason, usage=usage)
        yield sse.encode(end.to_json())


def _chat_request(scope: RequestScope) -> ChatRequest:
    body = parse_body(GenerateBody)
    scope.asked_for(asked_name(body.provider, body.model))
    stop = [body.stop] if isinstance(body.stop, str) else (body.stop or [])
    return build_chat_request(
        provider=body.provider,
        model=body.model,
        prompt=body.prompt,
        messages=[RawMessage(m.role, m.content) for m in body.messages],
        system=body.system,
        max_tokens=body.max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        top_k=body.top_k,
        stop=stop,
        parameters=body.parameters,
        request_id=scope.request_id,
    )
