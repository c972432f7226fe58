"""Translating gRPC's protobuf messages (grpc_api/convert.py), both directions, in-process."""

from __future__ import annotations

import base64
import json

import pytest

from ai_router._generated import ai_router_pb2 as pb
from ai_router.errors import InvalidRequest
from ai_router.grpc_api.convert import from_chunk, from_response, to_chat_request
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)


def test_the_original_fields_and_string_parameters_become_a_typed_request() -> None:
    message = pb.AIRequest(
        provider="openai", model="gpt-4o", prompt="hi", max_tokens=0,
        parameters={"temperature": "0.25", "stop": '["a", "b"]'},
    )  # fmt: skip

    request = to_chat_request(message, timeout=4.5, request_id="rid-5")

    assert (request.provider, request.model, request.messages) == ("openai", "gpt-4o", (Message("user", "hi"),))
    assert request.max_tokens is None  # proto3's 0: the provider's default
    assert (request.sampling.temperature, request.sampling.stop) == (0.25, ("a", "b"))
    assert (request.timeout, request.request_id) == (4.5, "rid-5")


def test_messages_images_tools_and_tool_calls_carry_over() -> None:
    image = pb.ContentPart(image=pb.Image(data=b"\x89PNG", media_type="image/png"))
    message = pb.AIRequest(
        model="anthropic/claude",
        system="Be brief.",
        messages=[
            pb.Message(role="user", parts=[pb.ContentPart(text="what?"), image]),
            pb.Message(role="assistant", tool_calls=[pb.ToolCall(id="c1", name="w", arguments="{}")]),
            pb.Message(role="tool", tool_call_id="c1", content="sunny", is_error=True),
        ],
        tools=[pb.Tool(name="w", description="weather", parameters=json.dumps({"type": "object"}))],
        tool_choice="w",
        parallel_tool_calls=False,
        user="u-5",
    )

    request = to_chat_request(message, None, "r")

    assert request.system == "Be brief."
    assert request.messages == (
        Message("user", (TextPart("what?"), ImagePart(media_type="image/png", data=base64.b64encode(b"\x89PNG").decode()))),
        Message("assistant", "", (ToolCall("c1", "w", "{}"),)),
        Message("tool", "sunny", tool_call_id="c1", is_error=True),
    )
    assert request.tools == (Tool("w", "weather", {"type": "object"}),)
    assert request.tool_choice == ToolChoice("tool", "w")
    assert (request.parallel_tool_calls, request.user) == (False, "u-5")


@pytest.mark.parametrize(
    ("message", "param"),
    [
        (pb.AIRequest(prompt="x", tools=[pb.Tool(name="w", parameters="[1]")]), "tools[0].parameters"),
        (pb.AIRequest(messages=[pb.Message(role="user", content="a", parts=[pb.ContentPart(text="b")])]), "messages[0].parts"),
        (pb.AIRequest(prompt="x", parameters={"warmth": "1"}), "parameters.warmth"),
        (pb.AIRequest(prompt="x", tool_choice="nothing-declared"), "tool_choice"),
    ],
)
def test_what_cannot_be_a_request_is_invalid_naming_the_field(message: pb.AIRequest, param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_chat_request(message, None, "r")

    assert caught.value.param == param


def test_an_answer_becomes_an_airesponse_with_its_usage_and_tool_calls() -> None:
    response = ChatResponse("hi", "tool_calls", Usage(3, 4), "anthropic", "claude", (ToolCall("c", "w", "{}"),))

    message = from_response(response, "rid-5")

    assert (message.content, message.provider, message.model) == ("hi", "anthropic", "claude")
    assert (message.finish_reason, message.request_id) == ("tool_calls", "rid-5")
    assert (message.usage.input_tokens, message.usage.output_tokens, message.usage.total_tokens) == (3, 4, 7)
    assert [(c.id, c.name, c.arguments, c.index) for c in message.tool_calls] == [("c", "w", "{}", 0)]


def test_stream_chunks_become_deltas_and_a_closing_message() -> None:
    request = ChatRequest(messages=(), provider="openai", model="gpt-4o", request_id="rid-6")

    delta = from_chunk(ChatChunk(delta="He"), request)
    piece = from_chunk(ChatChunk(tool_call=ToolCallDelta(1, arguments='{"q"')), request)
    closing = from_chunk(ChatChunk(finish_reason="stop", usage=Usage(2, 1)), request)

    assert (delta.content, delta.provider, delta.model, delta.request_id) == ("He", "openai", "gpt-4o", "rid-6")
    assert not delta.finish_reason and not delta.HasField("usage")
    assert [(c.index, c.arguments) for c in piece.tool_calls] == [(1, '{"q"')]
    assert (closing.content, closing.finish_reason, closing.usage.total_tokens) == ("", "stop", 3)
