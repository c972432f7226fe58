"""Protobuf messages <-> the router's internal types."""

from __future__ import annotations

from ai_router._generated import ai_router_pb2 as pb
from ai_router.requests import RawMessage, build_chat_request
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, Usage


def to_chat_request(message: pb.AIRequest, timeout: float | None, request_id: str) -> ChatRequest:
    return build_chat_request(
        provider=message.provider,
        model=message.model,
        prompt=message.prompt,
        messages=[RawMessage(m.role, m.content) for m in message.messages],
        system=message.system,
        # proto3 has no "unset" for the original int32 field: 0 means the provider's default.
        max_tokens=message.max_tokens or None,
        temperature=message.temperature if message.HasField("temperature") else None,
        top_p=message.top_p if message.HasField("top_p") else None,
        top_k=message.top_k if message.HasField("top_k") else None,
        stop=list(message.stop),
        parameters=dict(message.parameters),
        timeout=timeout,
        request_id=request_id,
    )


def from_usage(usage: Usage) -> pb.Usage:
    return pb.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def from_response(response: ChatResponse, request_id: str) -> pb.AIResponse:
    return pb.AIResponse(
        content=response.content,
        provider=response.provider,
        model=response.model,
        finish_reason=response.finish_reason,
        usage=from_usage(response.usage),
        request_id=request_id,
    )


def from_chunk(chunk: ChatChunk, request: ChatRequest) -> pb.AIResponse:
    message = pb.AIResponse(
        content=chunk.delta,
        provider=request.provider,
        model=request.model,
        request_id=request.request_id,
    )
    if chunk.finish_reason is not None:
        message.finish_reason = chunk.finish_reason
    if chunk.usage is not None:
        message.usage.CopyFrom(from_usage(chunk.usage))
    return message
