"""Translating an OpenAI Chat Completions client (http_api/v1/openai_chat.py), both directions,
in-process: a request body into the router's types for a provider of another family, and the
router's answers and stream chunks back into Chat Completions JSON."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from ai_router.config import ProviderSettings
from ai_router.errors import InvalidRequest
from ai_router.http_api.v1.openai_chat import (
    ChatCompletionRequest,
    ChunkEncoder,
    completion,
    error_body,
    to_chat_request,
)
from ai_router.providers.anthropic_provider import AnthropicProvider
from ai_router.providers.fake_transport import FakeAnswer, FakeUpstream
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

TARGET = "anthropic"


def translated(**body: Any) -> ChatRequest:
    body.setdefault("model", "anthropic/claude")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_chat_request(ChatCompletionRequest.model_validate(body), TARGET, "rid-1")


def refusal(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        translated(**body)
    return caught.value


# --- requests ----------------------------------------------------------------------------------


def test_system_and_developer_messages_join_the_system_prompt_in_order() -> None:
    request = translated(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "developer", "content": [{"type": "text", "text": "No jokes."}]},
        ]
    )

    assert request.system == "Be brief.\nNo jokes."
    assert request.messages == (Message("user", "hi"),)
    assert (request.provider, request.model, request.request_id) == (TARGET, "", "rid-1")


def test_sampling_options_stop_and_the_token_limit_carry_over() -> None:
    request = translated(
        temperature=1.5, top_p=0.5, top_k=4, stop="END", max_tokens=9, max_completion_tokens=12,
        user="u-1",
    )  # fmt: skip

    sampling = request.sampling
    assert (sampling.temperature, sampling.top_p, sampling.top_k) == (1.5, 0.5, 4)
    assert sampling.stop == ("END",)
    assert request.max_tokens == 12  # max_completion_tokens supersedes max_tokens
    assert request.user == "u-1"
    assert translated(stop=["a", "b"], max_tokens=3).sampling.stop == ("a", "b")
    assert translated(max_tokens=3).max_tokens == 3


def test_a_tool_conversation_becomes_calls_and_results() -> None:
    request = translated(
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
        tool_choice={"type": "function", "function": {"name": "w"}},
        parallel_tool_calls=False,
    )

    assert request.messages == (
        Message("user", "weather?"),
        Message("assistant", "", (ToolCall("c1", "w", "{}"),)),
        Message("tool", "sunny", tool_call_id="c1"),
    )
    assert request.tools == (Tool("w", "", {"type": "object"}),)
    assert request.tool_choice == ToolChoice("tool", "w")
    assert request.parallel_tool_calls is False
    assert translated(tool_choice="required").tool_choice == ToolChoice("required")


def test_images_by_url_and_as_data_urls() -> None:
    request = translated(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is it?"},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            }
        ]
    )

    assert request.messages[0].content == (
        TextPart("what is it?"),
        ImagePart(url="https://x/cat.png", detail="low"),
        ImagePart(media_type="image/png", data="AAAA"),
    )


def test_the_sdks_own_loop_sends_an_answer_back_as_it_came() -> None:
    # `messages.append(choice.message)`: the router's answer, a real OpenAI one, a reasoner's.
    request = translated(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello", "refusal": None, "annotations": []},
            {"role": "user", "content": "why?"},
            {"role": "assistant", "content": "Because.", "refusal": None, "reasoning_content": "..."},
            {"role": "user", "content": "more"},
        ]
    )

    assert [message.content for message in request.messages] == ["hi", "Hello", "why?", "Because.", "more"]


def test_a_refusal_the_assistant_gave_is_what_it_said() -> None:
    request = translated(
        messages=[
            {"role": "user", "content": "do it"},
            {"role": "assistant", "content": None, "refusal": "I can't help with that."},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        ]
    )

    assert request.messages[1:] == (
        Message("assistant", "I can't help with that."),
        Message("assistant", (TextPart("No."),)),
    )


def test_a_tool_messages_name_and_a_null_description_carry_no_meaning() -> None:
    request = translated(
        messages=[
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "function": {"name": "w", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "w", "content": "sunny"},
        ],
        tools=[{"type": "function", "function": {"name": "w", "description": None}}],
    )

    assert request.messages[2] == Message("tool", "sunny", tool_call_id="c1")
    assert request.tools == (Tool("w", "", {}),)


def test_strict_tools_structured_output_and_reasoning_effort_carry_over() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    request = translated(
        tools=[{"type": "function", "function": {"name": "w", "parameters": schema, "strict": True}}],
        response_format={"type": "json_schema", "json_schema": {"name": "City", "schema": schema, "strict": True}},
        reasoning_effort="low",
    )

    assert request.tools == (Tool("w", "", schema, strict=True),)
    assert request.output_format == OutputFormat(schema, "City", strict=True)
    assert request.reasoning_effort == "low"
    # JSON mode is a JSON object of any shape; "text" is what every answer is anyway.
    assert translated(response_format={"type": "json_object"}).output_format == OutputFormat()
    assert translated(response_format={"type": "text"}).output_format is None


def test_an_open_schema_reaches_anthropic_closed_and_a_map_is_refused() -> None:
    """OpenAI takes a non-strict schema as written (llm's `schema=`, langchain's json_mode); Anthropic's
    JSON outputs and strict tools answer 400 unless every object says `additionalProperties: false`."""
    nested = {"type": "object", "properties": {"lat": {"type": "number"}}}
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"where": nested, "tags": {"type": "array", "items": {"$ref": "#/$defs/Tag"}}},
        "$defs": {"Tag": {"type": ["object", "null"], "properties": {"name": {"type": "string"}}}},
    }
    settings = ProviderSettings(name=TARGET, type=TARGET, default_model="m", api_key=SecretStr("sk-fake"),
                                base_url="https://upstream.test", timeout=30)
    answer = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
              "content": [{"type": "text", "text": "{}"}], "usage": {"input_tokens": 1, "output_tokens": 1}}
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json(answer))
    anthropic = AnthropicProvider(settings, upstream.connect)
    request = translated(
        tools=[{"type": "function", "function": {"name": "w", "parameters": schema, "strict": True}}],
        response_format={"type": "json_schema", "json_schema": {"name": "Where", "schema": schema}},
    )

    anthropic.check(request)
    anthropic.complete(request)

    sent = upstream.requests[0].json()
    for closed in (sent["output_config"]["format"]["schema"], sent["tools"][0]["input_schema"]):
        assert closed["additionalProperties"] is False
        assert closed["properties"]["where"] == {**nested, "additionalProperties": False}
        assert closed["properties"]["tags"] == schema["properties"]["tags"]
        assert closed["$defs"]["Tag"]["additionalProperties"] is False
    # The client's own schema is left as it was.
    assert "additionalProperties" not in schema
    a_map = {"type": "object", "additionalProperties": {"type": "string"}}
    with pytest.raises(InvalidRequest) as caught:
        anthropic.check(translated(response_format={"type": "json_schema", "json_schema": {"name": "M", "schema": a_map}}))
    assert caught.value.param == "response_format.json_schema.schema"
    assert "additionalProperties" in caught.value.message


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "hi", "name": "ann"}]}, "messages[0].name"),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
            "messages[0].content[0]",
        ),
    ],
)
def test_what_has_no_equivalent_is_refused_naming_the_field(body: dict[str, Any], param: str) -> None:
    error = refusal(**body)

    assert error.param == param
    assert f"cannot be translated for provider {TARGET!r}" in error.message


def test_malformed_values_are_the_clients_to_fix() -> None:
    assert refusal(max_completion_tokens=0).param == "max_completion_tokens"
    assert refusal(max_tokens=2**31).param == "max_tokens"
    assert refusal(temperature=3).param == "temperature"
    assert refusal(messages=[{"role": "tool", "content": "x"}]).param == "messages[0].tool_call_id"
    bad_url = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:x"}}]}]
    assert refusal(messages=bad_url).param == "messages[0].content[0].image_url.url"
    assert refusal(messages=[{"role": "user", "content": "hi", "refusal": "no"}]).param == "messages[0].refusal"
    assert refusal(response_format={"type": "json_schema"}).param == "response_format.json_schema"


# --- answers -----------------------------------------------------------------------------------


def test_a_whole_answer_is_a_chat_completion_named_by_provider_and_model() -> None:
    response = ChatResponse("Hello", "length", Usage(3, 2), "anthropic", "claude")

    document = completion(response, "anthropic/claude", "rid-1")

    assert document["id"] == "chatcmpl-rid-1" and document["object"] == "chat.completion"
    assert document["model"] == "anthropic/claude"
    assert document["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello", "refusal": None},
            "finish_reason": "length",
            "logprobs": None,
        }
    ]
    assert document["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_reasoning_is_reasoning_content_beside_the_answer() -> None:
    response = ChatResponse("4", "stop", Usage(3, 9), "anthropic", "claude", reasoning="2+2 is 4.")

    message = completion(response, "anthropic/claude", "r")["choices"][0]["message"]

    assert message == {"role": "assistant", "content": "4", "refusal": None, "reasoning_content": "2+2 is 4."}


def test_an_answer_of_tool_calls_only_has_null_content() -> None:
    call = ToolCall("toolu_1", "w", '{"q": 1}')
    response = ChatResponse("", "tool_calls", Usage(1, 1), "anthropic", "claude", (call,))

    message = completion(response, "anthropic/claude", "r")["choices"][0]["message"]

    assert message["content"] is None
    assert message["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "w", "arguments": '{"q": 1}'}}
    ]


def test_a_stream_is_a_role_chunk_content_tool_pieces_a_finish_and_the_usage_if_asked() -> None:
    encoder = ChunkEncoder("anthropic/claude", "rid-1", include_usage=True)

    start = encoder.start()
    chunks = [
        document
        for chunk in (
            ChatChunk(reasoning="Hm."),
            ChatChunk(delta="Hel"),
            ChatChunk(tool_call=ToolCallDelta(0, id="toolu_1", name="w")),
            ChatChunk(tool_call=ToolCallDelta(0, arguments='{"q"')),
            ChatChunk(finish_reason="tool_calls", usage=Usage(4, 5)),
        )
        for document in encoder.encode(chunk)
    ]

    assert start["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"] if c["choices"] else None for c in chunks]
    assert deltas[0] == {"reasoning_content": "Hm."}
    assert deltas[1] == {"content": "Hel"}
    assert deltas[2] == {
        "tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"arguments": "", "name": "w"}}]
    }
    assert deltas[3] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"q"'}}]}
    assert chunks[4]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[5]["choices"] == [] and chunks[5]["usage"]["total_tokens"] == 9
    assert {c["id"] for c in [start, *chunks]} == {"chatcmpl-rid-1"}


def test_without_include_usage_the_stream_ends_at_the_finish_chunk() -> None:
    encoder = ChunkEncoder("m", "r", include_usage=False)

    documents = list(encoder.encode(ChatChunk(finish_reason="stop", usage=Usage(1, 1))))

    assert len(documents) == 1 and "usage" not in documents[0]


def test_errors_carry_openais_four_keys_and_type_by_status() -> None:
    error = InvalidRequest("temperature must be between 0 and 2; got 3", "temperature")

    assert error_body(error, 400) == {
        "error": {
            "message": "temperature must be between 0 and 2; got 3",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": None,
        }
    }
    assert error_body(error, 429)["error"]["type"] == "rate_limit_error"
    assert error_body(error, 502)["error"]["type"] == "server_error"
