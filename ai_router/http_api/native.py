"""The native API: POST /generate and POST /stream, the original service's HTTP contract.

Bodies are validated with pydantic models (shape and types), then by the shared request builder
(meaning), so /generate, /stream and gRPC refuse the same requests with the same messages.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ai_router.errors import RouterError
from ai_router.http_api.errors import error_body
from ai_router.http_api import sse
from ai_router.http_api.request_body import parse_body
from ai_router.requests import RawMessage, build_chat_request
from ai_router.router import ChatStream, Router
from ai_router.types import ChatChunk, ChatRequest, Usage

log = logging.getLogger(__name__)
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
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: str | list[str] | None = None
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)


@blueprint.post("/generate")
def generate() -> Response:
    response = _router().complete(_chat_request())
    return jsonify(
        content=response.content,
        provider=response.provider,
        model=response.model,
        finish_reason=response.finish_reason,
        usage=_usage(response.usage),
    )


@blueprint.post("/stream")
def stream() -> Response:
    chat_stream = _router().stream(_chat_request())
    # Wait for the first chunk before answering, so that a failure to start (a bad key, a 429,
    # an unreachable provider) gets its proper HTTP status rather than a 200 with an error event.
    try:
        first = next(iter(chat_stream))
    except BaseException:
        chat_stream.close()
        raise
    return sse.event_stream(_events(first, chat_stream, g.request_id), {})


def _events(first: ChatChunk, chat_stream: ChatStream, request_id: str) -> Iterator[bytes]:
    try:
        yield _event(first)
        for chunk in chat_stream:
            yield _event(chunk)
    except RouterError as error:
        # Headers are gone: the failure travels as an event, never as silence.
        log.info("stream %s failed mid-way: %s", request_id, error.message)
        yield sse.encode(error_body(error, request_id))
        return
    finally:
        chat_stream.close()
    yield sse.DONE


def _event(chunk: ChatChunk) -> bytes:
    if not chunk.is_final:
        return sse.encode({"content": chunk.delta})
    return sse.encode(
        {
            "content": chunk.delta,
            "finish_reason": chunk.finish_reason,
            "usage": _usage(chunk.usage or Usage()),
        }
    )


def _chat_request() -> ChatRequest:
    body = parse_body(GenerateBody)
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
        request_id=g.request_id,
    )


def _usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }


def _router() -> Router:
    router: Router = current_app.extensions["ai_router.router"]
    return router
