"""Translating an Anthropic Messages client (http_api/v1/anthropic_messages.py), both directions,
in-process: a request body into the router's types for a provider of another family, and the
router's answers and stream chunks back into Anthropic's message and named events."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from ai_router.config import ProviderSettings
from ai_router.errors import InvalidRequest
from ai_router.http_api.v1.anthropic_messages import (
    EventEncoder,
    MessagesRequest,
    error_body,
    message,
    to_chat_request,
)
from ai_router.providers.fake_transport import FakeAnswer, FakeUpstream
from ai_router.providers.openai_provider import OpenAIProvider
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    OutputFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)

TARGET = "openai"


def translated(**body: Any) -> ChatRequest:
    body.setdefault("model", "openai/gpt-4o")
    body.setdefault("max_tokens", 50)
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_chat_request(MessagesRequest.model_validate(body), TARGET, "rid-2")


def refusal(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        translated(**body)
    return caught.value


# --- requests ----------------------------------------------------------------------------------


def test_system_blocks_sampling_stop_sequences_and_metadata_carry_over() -> None:
    request = translated(
        system=[{"type": "text", "text": "Be "}, {"type": "text", "text": "brief."}],
        temperature=0.3, top_p=0.9, top_k=5, stop_sequences=["END"],
        metadata={"user_id": "u-2"},
    )  # fmt: skip

    assert request.system == "Be brief."
    assert request.max_tokens == 50
    sampling = request.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k, sampling.stop) == (0.3, 0.9, 5, ("END",))
    assert request.user == "u-2"
    assert (request.provider, request.request_id) == (TARGET, "rid-2")


def test_tool_use_becomes_calls_and_tool_results_become_tool_messages_before_the_rest() -> None:
    request = translated(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and hurry"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "rain"}], "is_error": True},
                ],
            },
        ],
        tools=[{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "any", "disable_parallel_tool_use": True},
    )

    assert request.messages == (
        Message("user", "weather?"),
        Message("assistant", (TextPart("Let me look."),), (ToolCall("toolu_1", "w", '{"city": "Oslo"}'),)),
        Message("tool", "rain", tool_call_id="toolu_1", is_error=True),
        Message("user", (TextPart("and hurry"),)),
    )
    assert request.tools == (Tool("w", "weather", {"type": "object"}),)
    assert request.tool_choice == ToolChoice("required")
    assert request.parallel_tool_calls is False
    assert translated(tool_choice={"type": "tool", "name": "w"}).tool_choice == ToolChoice("tool", "w")


def test_images_by_url_and_base64_and_cache_hints_let_go() -> None:
    request = translated(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                        "cache_control": {"type": "ephemeral"},
                    },
                ],
            }
        ]
    )

    assert request.messages[0].content == (
        ImagePart(url="https://x/cat.png"),
        ImagePart(media_type="image/png", data="AAAA"),
    )


def test_custom_tools_strict_ones_and_a_null_description_carry_over() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False}
    request = translated(
        tools=[
            {"type": "custom", "name": "w", "description": None, "input_schema": schema, "strict": True},
            {"name": "v", "input_schema": {"type": "object"}},
        ]
    )

    assert request.tools == (Tool("w", "", schema, strict=True), Tool("v", "", {"type": "object"}))


def test_json_outputs_are_a_strict_schema_and_effort_is_reasoning_effort() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}

    request = translated(output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "medium"})

    assert request.output_format == OutputFormat(schema, strict=True)
    assert request.reasoning_effort == "medium"


def test_a_schema_with_optional_properties_reaches_openai_without_strict() -> None:
    """Anthropic's strict mode takes optional properties; OpenAI's answers them with a 400
    ("'required' is required to be supplied and to be an array including every key in
    properties"), so such a schema goes without `strict`, and a complete one keeps it."""
    optional = {"type": "object", "properties": {"city": {"type": "string"}, "note": {"type": "string"}},
                "required": ["city"], "additionalProperties": False}
    complete = {**optional, "required": ["city", "note"]}
    settings = ProviderSettings(name=TARGET, type=TARGET, default_model="m", api_key=SecretStr("sk-fake"),
                                base_url="https://upstream.test/v1", timeout=30)
    answer = {"id": "c1", "object": "chat.completion", "model": "m", "created": 1, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "{}"}, "finish_reason": "stop"}
    ], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json(answer))
    openai = OpenAIProvider(settings, upstream.connect)

    for schema in (optional, complete):
        openai.complete(translated(
            output_config={"format": {"type": "json_schema", "schema": schema}},
            tools=[{"name": "w", "input_schema": schema, "strict": True}],
        ))

    loose, strict = (request.json() for request in upstream.requests)
    assert "strict" not in loose["response_format"]["json_schema"]
    assert "strict" not in loose["tools"][0]["function"]
    assert loose["response_format"]["json_schema"]["schema"] == optional
    assert strict["response_format"]["json_schema"]["strict"] is True
    assert strict["tools"][0]["function"]["strict"] is True


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 4096}, "medium"),
        ({"type": "enabled", "budget_tokens": 16384}, "high"),
        # Adaptive thinking is the model's own call, and OpenAI's default effort is its model's.
        ({"type": "adaptive"}, None),
        ({"type": "disabled"}, None),
    ],
)
def test_a_thinking_budget_is_an_effort(thinking: dict[str, Any], effort: str | None) -> None:
    assert translated(max_tokens=32000, thinking=thinking).reasoning_effort == effort


def test_a_thinking_budget_follows_anthropics_own_rules() -> None:
    assert refusal(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1000}).param == "thinking.budget_tokens"
    assert refusal(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}).param == "thinking.budget_tokens"
    assert refusal(max_tokens=2000, thinking={"type": "enabled"}).param == "thinking.budget_tokens"


def test_thinking_blocks_of_earlier_answers_are_let_go() -> None:
    request = translated(
        messages=[
            {"role": "user", "content": "2+2?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "Easy.", "signature": "c2ln"},
                    {"type": "redacted_thinking", "data": "ZW5j"},
                    {"type": "text", "text": "4"},
                ],
            },
            {"role": "user", "content": "and 3+3?"},
        ]
    )

    assert request.messages[1] == Message("assistant", (TextPart("4"),))


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "tools[0].type"),
        ({"tools": [{"name": "w", "input_schema": {}, "input_examples": [{}]}]}, "tools[0].input_examples"),
        (
            {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "w", "input": {}}]}
                ]
            },
            "messages[0].content[0]",
        ),
    ],
)
def test_what_has_no_equivalent_is_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    error = refusal(**body)

    assert error.param == param
    assert f"cannot be translated for provider {TARGET!r}" in error.message


def test_malformed_values_are_the_clients_to_fix() -> None:
    assert refusal(max_tokens=0).param == "max_tokens"
    assert refusal(top_p=1.5).param == "top_p"


# --- answers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")],
)
def test_a_whole_answer_is_a_message_with_anthropics_stop_reason(finish: Any, stop_reason: str) -> None:
    response = ChatResponse("Hello", finish, Usage(3, 2), "openai", "gpt-4o")

    document = message(response, "openai/gpt-4o", "rid-2")

    assert document == {
        "id": "msg_rid-2",
        "type": "message",
        "role": "assistant",
        "model": "openai/gpt-4o",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 3, "output_tokens": 2},
    }


def test_the_stop_sequence_the_upstream_named_is_the_stop_reason() -> None:
    response = ChatResponse("1, 2, ", "stop", Usage(3, 4), "openai", "gpt-4o", stop_sequence="3")

    document = message(response, "openai/gpt-4o", "r")

    assert (document["stop_reason"], document["stop_sequence"]) == ("stop_sequence", "3")


def test_reasoning_is_a_thinking_block_before_the_text_with_no_signature() -> None:
    response = ChatResponse("4", "stop", Usage(3, 9), "openai", "o4", reasoning="2+2 is 4.")

    content = message(response, "openai/o4", "r")["content"]

    assert content == [
        {"type": "thinking", "thinking": "2+2 is 4.", "signature": ""},
        {"type": "text", "text": "4"},
    ]


def test_tool_calls_become_tool_use_blocks_even_with_arguments_that_are_not_an_object() -> None:
    calls = (ToolCall("call_1", "w", '{"city": "Oslo"}'), ToolCall("call_2", "w", "not json"))
    response = ChatResponse("", "tool_calls", Usage(1, 1), "openai", "gpt-4o", calls)

    content = message(response, "openai/gpt-4o", "r")["content"]

    assert content == [
        {"type": "tool_use", "id": "call_1", "name": "w", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "call_2", "name": "w", "input": {"arguments": "not json"}},
    ]


def test_a_stream_is_anthropics_event_sequence_with_a_block_per_text_run_and_tool_call() -> None:
    encoder = EventEncoder("openai/gpt-4o", "rid-2")

    events = list(encoder.start()) + [
        event
        for chunk in (
            ChatChunk(delta="Hi"),
            ChatChunk(delta="!"),
            ChatChunk(tool_call=ToolCallDelta(0, id="call_1", name="w")),
            ChatChunk(tool_call=ToolCallDelta(0, arguments='{"q":1}')),
            ChatChunk(finish_reason="tool_calls", usage=Usage(7, 3)),
        )
        for event in encoder.encode(chunk)
    ]

    assert [name for name, _ in events] == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(data["type"] == name for name, data in events)
    assert events[0][1]["message"]["id"] == "msg_rid-2"
    assert events[2][1] == {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    assert events[6][1]["index"] == 1
    assert events[6][1]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "w", "input": {}}
    assert events[7][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"q":1}'}
    # The final counts, input included: an OpenAI upstream reports usage only at the end.
    assert events[9][1]["delta"]["stop_reason"] == "tool_use"
    assert events[9][1]["usage"] == {"input_tokens": 7, "output_tokens": 3}


def test_a_stream_opens_a_thinking_block_for_reasoning_and_ends_on_the_stop_sequence() -> None:
    encoder = EventEncoder("openai/o4", "r")

    events = [
        event
        for chunk in (
            ChatChunk(reasoning="Hm"),
            ChatChunk(reasoning="m."),
            ChatChunk(delta="1, 2"),
            ChatChunk(finish_reason="stop", usage=Usage(2, 5), stop_sequence="3"),
        )
        for event in encoder.encode(chunk)
    ]

    assert [(name, data.get("index")) for name, data in events] == [
        ("content_block_start", 0), ("content_block_delta", 0), ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1), ("content_block_delta", 1), ("content_block_stop", 1),
        ("message_delta", None), ("message_stop", None),
    ]  # fmt: skip
    assert events[0][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert events[1][1]["delta"] == {"type": "thinking_delta", "thinking": "Hm"}
    assert events[7][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "3"}


def test_errors_are_anthropics_shape_and_type_by_status() -> None:
    error = InvalidRequest("max_tokens must be at least 1; got 0", "max_tokens")

    assert error_body(error, 400) == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "max_tokens must be at least 1; got 0"},
    }
    assert error_body(error, 404)["error"]["type"] == "not_found_error"
    assert error_body(error, 503)["error"]["type"] == "overloaded_error"
    assert error_body(error, 502)["error"]["type"] == "api_error"
