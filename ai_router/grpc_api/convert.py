"""Protobuf messages <-> the router's internal types."""

from __future__ import annotations

import base64

import orjson

from ai_router._generated import ai_router_pb2 as pb
from ai_router.errors import InvalidRequest
from ai_router.json_nesting import check_nesting
from ai_router.native_request import RawMessage, build_chat_request
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Part,
    TextPart,
    Tool,
    ToolCall,
    Usage,
)


def to_chat_request(message: pb.AIRequest, timeout: float | None, request_id: str) -> ChatRequest:
    return build_chat_request(
        provider=message.provider,
        model=message.model,
        prompt=message.prompt,
        messages=[_message(m, index) for index, m in enumerate(message.messages)],
        system=message.system,
        # proto3 has no "unset" for the original int32 field: 0 means the provider's default.
        max_tokens=message.max_tokens or None,
        temperature=message.temperature if message.HasField("temperature") else None,
        top_p=message.top_p if message.HasField("top_p") else None,
        top_k=message.top_k if message.HasField("top_k") else None,
        stop=list(message.stop),
        parameters=dict(message.parameters),
        tools=[_tool(tool, index) for index, tool in enumerate(message.tools)],
        tool_choice=message.tool_choice,
        parallel_tool_calls=(
            message.parallel_tool_calls if message.HasField("parallel_tool_calls") else None
        ),
        user=message.user,
        timeout=timeout,
        request_id=request_id,
    )


def _message(message: pb.Message, index: int) -> RawMessage:
    if message.parts and message.content:
        raise InvalidRequest(
            f"messages[{index}]: give either `content` or `parts`, not both",
            param=f"messages[{index}].parts",
        )
    content: str | tuple[Part, ...] = message.content
    if message.parts:
        content = tuple(_part(part) for part in message.parts)
    calls = tuple(ToolCall(c.id, c.name, c.arguments) for c in message.tool_calls)
    return RawMessage(message.role, content, calls, message.tool_call_id, message.is_error)


def _part(part: pb.ContentPart) -> Part:
    if part.WhichOneof("kind") == "image":
        image = part.image
        data = base64.b64encode(image.data).decode() if image.data else ""
        return ImagePart(image.url, image.media_type, data, image.detail or None)
    return TextPart(part.text)


def _tool(tool: pb.Tool, index: int) -> Tool:
    try:
        parameters = orjson.loads(tool.parameters) if tool.parameters else {}
    except ValueError:
        parameters = None
    if not isinstance(parameters, dict):
        raise InvalidRequest(
            f"tools[{index}].parameters must be a JSON schema object as JSON text",
            param=f"tools[{index}].parameters",
        )
    check_nesting(parameters, f"tools[{index}].parameters", f"tools[{index}].parameters")
    return Tool(tool.name, tool.description, parameters)


def from_tool_call(call: ToolCall, index: int = 0) -> pb.ToolCall:
    return pb.ToolCall(id=call.id, name=call.name, arguments=call.arguments, index=index)


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
        tool_calls=[from_tool_call(call, index) for index, call in enumerate(response.tool_calls)],
    )


def from_chunk(chunk: ChatChunk, request: ChatRequest) -> pb.AIResponse:
    message = pb.AIResponse(
        content=chunk.delta,
        provider=request.provider,
        model=request.model,
        request_id=request.request_id,
    )
    if chunk.tool_call is not None:
        call = chunk.tool_call
        message.tool_calls.append(
            pb.ToolCall(id=call.id, name=call.name, arguments=call.arguments, index=call.index)
        )
    if chunk.finish_reason is not None:
        message.finish_reason = chunk.finish_reason
    if chunk.usage is not None:
        message.usage.CopyFrom(from_usage(chunk.usage))
    return message
