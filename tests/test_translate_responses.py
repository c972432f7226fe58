"""Translating an OpenAI Responses API client (http_api/v1/openai_responses.py), both directions,
in-process: a create body (and the items of earlier turns) into the router's types for a provider
of another family; the router's answers and stream chunks back into a Response and the Responses
stream's events, checked by the official SDK's own models and its own stream accumulation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx2
import pytest
from openai import APIError, OpenAI, Stream
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import (
    Response,
    ResponseErrorEvent,
    ResponseItem,
    ResponseStreamEvent,
)
from openai._streaming import SSEDecoder
from pydantic import TypeAdapter

from ai_router.errors import InvalidRequest, Unavailable
from ai_router.http_api.v1.openai_responses import (
    EventStream,
    ResponsesRequest,
    error_event,
    input_items,
    render,
    to_chat_request,
)
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
MODEL = "anthropic/claude-x"
RESPONSE_ID = "resp_0123456789abcdef"
CREATED = 1_760_000_000
EVENTS = TypeAdapter(ResponseStreamEvent)
ITEMS = TypeAdapter(ResponseItem)
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def request(**fields: Any) -> ResponsesRequest:
    fields.setdefault("model", MODEL)
    fields.setdefault("input", "hi")
    return ResponsesRequest.model_validate(fields)


def translated(history: Iterable[dict[str, Any]] = (), **fields: Any) -> ChatRequest:
    return to_chat_request(request(**fields), list(history), TARGET, "req-1")


def refusal(history: Iterable[dict[str, Any]] = (), **fields: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        translated(history, **fields)
    return caught.value


def untranslatable(field: str, why: str = "") -> str:
    reason = f": {why}" if why else ""
    return (
        f"{field} cannot be translated for provider 'anthropic'{reason}; remove it, or use a "
        "provider of the OpenAI family"
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


# --- input -------------------------------------------------------------------------------------


def test_a_string_input_is_one_user_message_and_instructions_are_the_system_prompt() -> None:
    chat = translated(input="What is 2+2?", instructions="Answer in one word.")
    assert chat.messages == (Message("user", "What is 2+2?"),)
    assert chat.system == "Answer in one word."
    assert chat.provider == TARGET and chat.request_id == "req-1"


def test_system_and_developer_messages_join_the_instructions_in_order() -> None:
    chat = translated(
        instructions="Be brief.",
        input=[
            {"role": "system", "content": "You are terse."},
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "No emoji."}]},
            user("hello"),
        ],
    )
    assert chat.system == "Be brief.\nYou are terse.\nNo emoji."
    assert chat.messages == (Message("user", "hello"),)


def test_user_parts_map_to_text_and_images_by_url_or_data_url() -> None:
    chat = translated(
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Compare"},
                    {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0K", "detail": "auto"},
                ],
            }
        ]
    )
    assert chat.messages == (
        Message(
            "user",
            (
                TextPart("Compare"),
                ImagePart(url="https://example.com/a.png", detail="low"),
                ImagePart(media_type="image/png", data="iVBORw0K", detail="auto"),
            ),
        ),
    )


def test_an_earlier_answer_sent_back_is_an_assistant_turn_and_its_refusal_its_text() -> None:
    chat = translated(
        input=[
            user("hi"),
            {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "status": "completed",
                "content": [
                    {"type": "output_text", "text": "Hello.", "annotations": [], "logprobs": []},
                    {"type": "refusal", "refusal": "I cannot help with that."},
                ],
            },
            user("why?"),
        ]
    )
    assert chat.messages[1] == Message(
        "assistant", (TextPart("Hello."), TextPart("I cannot help with that."))
    )
    assert chat.messages[2] == Message("user", "why?")


def test_function_calls_join_the_assistant_turn_and_their_outputs_are_tool_messages() -> None:
    chat = translated(
        input=[
            user("Weather in Paris and Rome?"),
            {"role": "assistant", "content": "Let me look."},
            {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "weather", "arguments": '{"city":"Paris"}', "status": "completed"},
            {"type": "function_call", "call_id": "call_2", "name": "weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
            {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "21C"}]},
        ]
    )
    assert chat.messages == (
        Message("user", "Weather in Paris and Rome?"),
        Message(
            "assistant",
            "Let me look.",
            (
                ToolCall("call_1", "weather", '{"city":"Paris"}'),
                ToolCall("call_2", "weather", '{"city":"Rome"}'),
            ),
        ),
        Message("tool", "18C", tool_call_id="call_1"),
        Message("tool", "21C", tool_call_id="call_2"),
    )


def test_reasoning_items_sent_back_are_let_go() -> None:
    chat = translated(
        input=[
            user("hi"),
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}], "encrypted_content": "gAAAA"},
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello.", "annotations": []}]},
            user("again"),
        ]
    )
    assert chat.messages == (
        Message("user", "hi"),
        Message("assistant", (TextPart("Hello."),)),
        Message("user", "again"),
    )


def test_the_items_of_earlier_turns_come_before_this_input() -> None:
    history: list[dict[str, Any]] = [
        {"id": "msg_a", "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "My name is Ada."}]},
        {"id": "rs_b", "type": "reasoning", "summary": [], "status": "completed"},
        {"id": "msg_c", "type": "message", "role": "assistant", "status": "completed", "content": [{"type": "output_text", "text": "Hi Ada.", "annotations": [], "logprobs": []}]},
    ]
    chat = translated(history, input="What is my name?", previous_response_id="resp_earlier")
    assert chat.messages == (
        Message("user", (TextPart("My name is Ada."),)),
        Message("assistant", (TextPart("Hi Ada."),)),
        Message("user", "What is my name?"),
    )


def test_an_earlier_item_that_cannot_be_translated_names_previous_response_id() -> None:
    history = [user("search"), {"id": "ws_1", "type": "web_search_call", "status": "completed"}]
    error = refusal(history, input="and?", previous_response_id="resp_earlier")
    assert error.param == "previous_response_id"
    assert str(error) == untranslatable(
        "previous_response_id (item 1 of the earlier turns)",
        "'web_search_call' items belong to OpenAI's built-in tools",
    )


def test_an_input_is_required() -> None:
    error = refusal(input=None)
    assert (str(error), error.param) == ("input is required: the conversation has no message", "input")


@pytest.mark.parametrize(
    "item",
    [{"type": "item_reference", "id": "msg_upstream"}, {"id": "msg_upstream"}],
    ids=["typed", "untyped"],
)
def test_an_item_reference_is_refused(item: dict[str, Any]) -> None:
    error = refusal(input=[user("hi"), item])
    assert error.param == "input[1]"
    assert str(error) == (
        "input[1]: an item_reference names an item stored at OpenAI, which the router cannot "
        "read for provider 'anthropic'; send the item itself"
    )


@pytest.mark.parametrize(
    ("item", "param", "why"),
    [
        (
            {"type": "computer_call_output", "call_id": "c", "output": {}},
            "input[0]",
            "'computer_call_output' items belong to OpenAI's built-in tools",
        ),
        (
            {"role": "user", "content": [{"type": "input_file", "file_id": "file_1"}]},
            "input[0].content[0]",
            "'input_file' parts have no equivalent",
        ),
        (
            {"role": "user", "content": [{"type": "input_image", "file_id": "file_1", "detail": "auto"}]},
            "input[0].content[0].file_id",
            "the file is stored at OpenAI; send the image as image_url (a URL or a data URL)",
        ),
        (
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_image", "image_url": "https://x/y.png"}]},
            "input[0].output[0]",
            "a function's output reaches it as text only",
        ),
        (
            {"role": "developer", "content": [{"type": "input_image", "image_url": "https://x/y.png"}]},
            "input[0].content[0]",
            "only text parts go here",
        ),
        ({"role": "user", "content": "hi", "speaker": "ann"}, "input[0].speaker", ""),
        ({"role": "user", "content": [{"type": "input_text", "text": "hi", "lang": "en"}]}, "input[0].content[0].lang", ""),
    ],
)
def test_input_that_would_change_meaning_is_refused_by_name(
    item: dict[str, Any], param: str, why: str
) -> None:
    error = refusal(input=[item])
    assert (str(error), error.param) == (untranslatable(param, why), param)


def test_a_refusal_part_belongs_to_assistant_messages_only() -> None:
    error = refusal(input=[{"role": "user", "content": [{"type": "refusal", "refusal": "no"}]}])
    assert (str(error), error.param) == (
        "input[0].content[0]: only assistant messages have refusals",
        "input[0].content[0]",
    )


def test_a_data_url_must_be_base64() -> None:
    error = refusal(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "data:image/png,raw"}]}])
    assert (str(error), error.param) == (
        "input[0].content[0].image_url: a data URL must read data:<media type>;base64,<data>",
        "input[0].content[0].image_url",
    )


@pytest.mark.parametrize("arguments", ['["Paris"]', '"Paris"', "{city: Paris}"])
def test_a_function_calls_arguments_must_be_an_object_named_where_the_client_wrote_them(
    arguments: str,
) -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": arguments}
    answered = {"type": "function_call_output", "call_id": "call_1", "output": "18C"}

    error = refusal(input=[user("weather?"), call, answered])
    earlier = refusal([user("weather?"), call, answered], input="and?", previous_response_id="resp_1")

    assert (str(error), error.param) == (
        f"input[1].arguments must be a JSON object to be sent to provider 'anthropic'; got {arguments!r}",
        "input[1].arguments",
    )
    assert earlier.param == "previous_response_id"
    assert str(earlier).startswith("previous_response_id (item 1 of the earlier turns).arguments")


def test_a_function_call_without_arguments_has_an_empty_object() -> None:
    call = {"type": "function_call", "call_id": "call_1", "name": "now", "arguments": ""}
    chat = translated(input=[user("time?"), call, {"type": "function_call_output", "call_id": "call_1", "output": "noon"}])
    assert chat.messages[1].tool_calls == (ToolCall("call_1", "now", ""),)


def test_a_function_call_output_needs_its_call_id() -> None:
    error = refusal(input=[{"type": "function_call_output", "output": "18C"}])
    assert (str(error), error.param) == ("input[0].call_id is required", "input[0].call_id")


# --- tools -------------------------------------------------------------------------------------


def test_function_tools_are_strict_unless_they_say_otherwise() -> None:
    # The Responses API's default: a function tool without `strict` is strict.
    chat = translated(
        tools=[
            {"type": "function", "name": "weather", "description": "Weather of a city", "parameters": WEATHER},
            {"type": "function", "name": "loose", "parameters": None, "strict": False, "description": None},
            {"type": "function", "name": "exact", "parameters": WEATHER, "strict": True},
        ]
    )
    assert chat.tools == (
        Tool("weather", "Weather of a city", WEATHER, strict=True),
        Tool("loose", "", {}, strict=False),
        Tool("exact", "", WEATHER, strict=True),
    )


@pytest.mark.parametrize(
    ("tool", "param", "why"),
    [
        ({"type": "web_search"}, "tools[0].type", "'web_search' is one of OpenAI's built-in tools, which run at OpenAI"),
        ({"type": "file_search", "vector_store_ids": ["vs_1"]}, "tools[0].type", "'file_search' is one of OpenAI's built-in tools, which run at OpenAI"),
        ({"type": "code_interpreter", "container": {"type": "auto"}}, "tools[0].type", "'code_interpreter' is one of OpenAI's built-in tools, which run at OpenAI"),
        ({"type": "mcp", "server_label": "x"}, "tools[0].type", "'mcp' is one of OpenAI's built-in tools, which run at OpenAI"),
        ({"type": "custom", "name": "sql"}, "tools[0].type", "custom tools take free-form text, which other families' tools do not"),
        ({"type": "function", "name": "f", "parameters": {}, "defer_loading": True}, "tools[0].defer_loading", "deferred tools are found by OpenAI's tool search"),
        ({"type": "function", "name": "f", "parameters": {}, "output_schema": {}}, "tools[0].output_schema", ""),
    ],
)
def test_tools_other_families_cannot_run_are_refused(tool: dict[str, Any], param: str, why: str) -> None:
    error = refusal(tools=[tool])
    assert (str(error), error.param) == (untranslatable(param, why), param)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ({"type": "function", "name": "weather"}, ToolChoice("tool", "weather")),
    ],
)
def test_tool_choice_maps(choice: Any, expected: ToolChoice) -> None:
    tools = [{"type": "function", "name": "weather", "parameters": WEATHER}]
    assert translated(tools=tools, tool_choice=choice).tool_choice == expected


def test_allowed_tools_keep_only_the_named_functions() -> None:
    chat = translated(
        tools=[
            {"type": "function", "name": "weather", "parameters": WEATHER},
            {"type": "function", "name": "news", "parameters": {}},
        ],
        tool_choice={"type": "allowed_tools", "mode": "required", "tools": [{"type": "function", "name": "news"}]},
    )
    assert [tool.name for tool in chat.tools] == ["news"]
    assert chat.tool_choice == ToolChoice("required")


def test_a_built_in_tool_choice_is_refused() -> None:
    error = refusal(tool_choice={"type": "web_search_preview"})
    assert (str(error), error.param) == (
        untranslatable("tool_choice", "'web_search_preview' names one of OpenAI's built-in tools"),
        "tool_choice",
    )


def test_parallel_tool_calls_map() -> None:
    assert translated(parallel_tool_calls=False).parallel_tool_calls is False
    assert translated().parallel_tool_calls is None


# --- settings ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, None),
        ({"format": {"type": "text"}}, None),
        (
            {"format": {"type": "json_schema", "name": "city", "schema": WEATHER, "strict": True}},
            OutputFormat(WEATHER, "city", True),
        ),
        ({"format": {"type": "json_schema", "name": "city", "schema": WEATHER}}, OutputFormat(WEATHER, "city", False)),
        ({"verbosity": "low"}, None),  # a style hint: let go
    ],
)
def test_text_format_is_the_output_format(text: Any, expected: OutputFormat | None) -> None:
    assert translated(text=text).output_format == expected


def test_json_mode_is_refused_naming_text_format() -> None:
    error = refusal(text={"format": {"type": "json_object"}})
    assert error.param == "text.format"
    assert str(error) == untranslatable(
        "text.format",
        "JSON mode (json_object) has no equivalent: other families' JSON outputs follow a schema, "
        'so send {"type": "json_schema", "name": ..., "schema": ...}',
    )


def test_reasoning_effort_maps_and_the_summary_setting_is_let_go() -> None:
    chat = translated(reasoning={"effort": "high", "summary": "detailed"})
    assert chat.reasoning_effort == "high"
    assert translated().reasoning_effort is None


def test_limits_sampling_and_end_user_map() -> None:
    chat = translated(max_output_tokens=300, temperature=0.5, top_p=0.9, user="u-1")
    assert (chat.max_tokens, chat.sampling.temperature, chat.sampling.top_p, chat.user) == (300, 0.5, 0.9, "u-1")
    # safety_identifier is the newer name of the end user.
    assert translated(user="old", safety_identifier="new").user == "new"


def test_a_token_limit_out_of_range_names_max_output_tokens() -> None:
    error = refusal(max_output_tokens=0)
    assert (str(error), error.param) == ("max_output_tokens must be at least 1; got 0", "max_output_tokens")


def test_settings_without_meaning_elsewhere_are_let_go() -> None:
    chat = translated(
        metadata={"run": "7"},
        store=False,
        previous_response_id=None,
        truncation="auto",
        include=["reasoning.encrypted_content"],
        service_tier="flex",
        prompt_cache_key="k",
        prompt_cache_retention="24h",
        stream=True,
        stream_options={"include_obfuscation": False},
        max_tool_calls=3,
        background=False,
    )
    assert chat.messages == (Message("user", "hi"),)


@pytest.mark.parametrize(
    ("fields", "param", "why"),
    [
        ({"background": True}, "background", "the router does not run responses in the background"),
        ({"conversation": "conv_1"}, "conversation", "the router keeps no conversations; chain turns with previous_response_id"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt", "a prompt template is stored at OpenAI"),
        ({"top_logprobs": 3}, "top_logprobs", "the provider returns no log probabilities"),
        ({"include": ["message.output_text.logprobs"]}, "include", "'message.output_text.logprobs': the provider returns no log probabilities"),
        ({"seed": 1}, "seed", ""),
        ({"text": {"format": {"type": "text"}, "grammar": "x"}}, "text.grammar", ""),
        ({"reasoning": {"effort": "low", "mode": "pro"}}, "reasoning.mode", ""),
    ],
)
def test_fields_that_would_change_the_answer_are_refused_by_name(
    fields: dict[str, Any], param: str, why: str
) -> None:
    error = refusal(**fields)
    assert (str(error), error.param) == (untranslatable(param, why), param)


# --- input items, for storage ------------------------------------------------------------------


def test_a_string_input_is_stored_as_one_user_message_item() -> None:
    [item] = input_items(request(input="hello"))
    assert item["id"].startswith("msg_") and len(item["id"]) > 8
    assert item == {"id": item["id"], "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "hello"}]}
    ITEMS.validate_python(item)


def test_input_items_get_ids_and_the_shapes_the_input_items_list_returns() -> None:
    items = input_items(
        request(
            input=[
                user("hi"),
                {"role": "assistant", "content": "Hello."},
                {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "message", "id": "msg_given", "role": "user", "content": [{"type": "input_text", "text": "ok"}]},
            ]
        )
    )
    assert [item["id"].split("_")[0] for item in items] == ["msg", "msg", "fc", "fco", "msg"]
    assert items[4]["id"] == "msg_given"
    assert items[1]["content"] == [{"type": "output_text", "text": "Hello.", "annotations": []}]
    assert len({item["id"] for item in items}) == 5
    for item in items:
        ITEMS.validate_python(item)
    # Stored items read back as the history of a later turn.
    chat = translated(items, input="and?")
    assert chat.messages[1] == Message("assistant", (TextPart("Hello."),), (ToolCall("call_1", "weather", "{}"),))


def test_a_relayed_body_gives_its_items_as_they_came_with_ids_added() -> None:
    # A body relayed to OpenAI is not validated: its items are copied, whatever their type.
    raw = {
        "model": "openai/gpt-x",
        "input": [
            user("hi"),
            {"type": "web_search_call", "id": "ws_1", "status": "completed", "action": {"type": "search"}},
            {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
        ],
    }
    first, search, output = input_items(raw)
    assert first == {"id": first["id"], "type": "message", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "hi"}]}
    assert search == raw["input"][1]
    assert output["id"].startswith("fco_") and output["status"] == "completed"
    assert input_items({"model": "m", "input": "hello"})[0]["content"] == [{"type": "input_text", "text": "hello"}]
    assert input_items({"model": "m"}) == []
    with pytest.raises(InvalidRequest) as caught:
        input_items({"model": "m", "input": [user("hi"), "loose"]})
    assert (str(caught.value), caught.value.param) == ("input[1] must be a JSON object", "input[1]")


# --- answers -----------------------------------------------------------------------------------


def answer(**fields: Any) -> ChatResponse:
    fields.setdefault("content", "Paris.")
    fields.setdefault("finish_reason", "stop")
    fields.setdefault("usage", Usage(12, 5))
    return ChatResponse(provider="anthropic", model="claude-x", **fields)


def rendered(response: ChatResponse, **fields: Any) -> Response:
    document = render(response, MODEL, RESPONSE_ID, request(**fields), CREATED)
    return Response.model_validate(document)


def test_an_answer_is_a_response_with_one_message() -> None:
    response = rendered(answer())
    assert (response.id, response.object, response.status, response.model) == (RESPONSE_ID, "response", "completed", MODEL)
    assert response.created_at == CREATED and response.completed_at is not None
    [message] = response.output
    assert message.type == "message" and message.id.startswith("msg_")
    assert (message.role, message.status) == ("assistant", "completed")
    [text] = message.content
    assert text.type == "output_text" and (text.text, text.annotations) == ("Paris.", [])
    assert response.output_text == "Paris."
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (12, 5, 17)
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert (response.error, response.incomplete_details) == (None, None)


def test_tool_calls_are_function_call_items_after_the_text() -> None:
    response = rendered(
        answer(content="", finish_reason="tool_calls", tool_calls=(ToolCall("toolu_1", "weather", '{"city":"Paris"}'),))
    )
    [call] = response.output
    assert call.type == "function_call" and call.id is not None and call.id.startswith("fc_")
    assert (call.call_id, call.name, call.arguments, call.status) == ("toolu_1", "weather", '{"city":"Paris"}', "completed")
    both = rendered(answer(content="Looking.", finish_reason="tool_calls", tool_calls=(ToolCall("t", "f", "{}"),)))
    assert [item.type for item in both.output] == ["message", "function_call"]


def test_reasoning_is_a_reasoning_item_with_its_summary_first() -> None:
    response = rendered(answer(reasoning="The capital of France."))
    reasoning, message = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [(part.type, part.text) for part in reasoning.summary] == [("summary_text", "The capital of France.")]
    assert message.type == "message"


@pytest.mark.parametrize(("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")])
def test_a_cut_answer_is_incomplete_and_says_why(finish: Any, reason: str) -> None:
    response = rendered(answer(finish_reason=finish))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None and response.incomplete_details.reason == reason
    assert response.output[-1].to_dict()["status"] == "incomplete"
    assert response.completed_at is None


def test_the_request_settings_are_echoed() -> None:
    tools = [{"type": "function", "name": "weather", "parameters": WEATHER}]
    response = rendered(
        answer(),
        instructions="Be brief.",
        max_output_tokens=100,
        previous_response_id="resp_prev",
        reasoning={"effort": "low", "summary": "auto"},
        store=False,
        temperature=0.3,
        top_p=0.8,
        text={"format": {"type": "json_schema", "name": "city", "schema": WEATHER, "strict": True}, "verbosity": "low"},
        tool_choice={"type": "function", "name": "weather"},
        tools=tools,
        parallel_tool_calls=False,
        metadata={"run": "7"},
        truncation="auto",
        user="u-1",
    )
    assert (response.instructions, response.max_output_tokens, response.previous_response_id) == ("Be brief.", 100, "resp_prev")
    assert response.reasoning is not None and (response.reasoning.effort, response.reasoning.summary) == ("low", "auto")
    # `store` is in OpenAI's Response though not in the SDK's model.
    assert (response.to_dict()["store"], response.temperature, response.top_p) == (False, 0.3, 0.8)
    assert response.text is not None and response.text.verbosity == "low"
    assert response.text.format is not None and response.text.format.type == "json_schema"
    assert response.tool_choice.type == "function"  # type: ignore[union-attr]
    [tool] = response.tools
    assert tool.type == "function" and tool.strict is True and tool.parameters == WEATHER
    assert (response.parallel_tool_calls, response.metadata, response.truncation, response.user) == (False, {"run": "7"}, "auto", "u-1")


def test_defaults_are_echoed_as_openai_states_them() -> None:
    response = rendered(answer())
    assert (response.tool_choice, response.tools, response.parallel_tool_calls) == ("auto", [], True)
    assert (response.to_dict()["store"], response.truncation, response.metadata) == (True, "disabled", {})
    assert response.text is not None and response.text.format is not None and response.text.format.type == "text"


# --- streams -----------------------------------------------------------------------------------


def stream_of(chunks: list[ChatChunk], **fields: Any) -> tuple[EventStream, list[Any]]:
    """The encoder and its events, each parsed as the SDK parses it (its SSE decoder, then its
    ResponseStreamEvent union), checking that the `event:` line repeats the type."""
    encoder = EventStream(request(**fields), MODEL, RESPONSE_ID, CREATED)
    raw = encoder.head + b"".join(b"".join(encoder.encode(chunk)) for chunk in chunks) + encoder.done
    events = []
    for sse in SSEDecoder().iter_bytes(iter([raw])):
        data = sse.json()
        assert sse.event == data["type"]
        events.append(EVENTS.validate_python(data))
    assert [event.sequence_number for event in events] == list(range(len(events)))
    return encoder, events


def accumulated(events: list[Any], **fields: Any) -> list[Any]:
    """The events as the SDK's ResponseStream hands them to an app, after its own accumulation."""
    state: ResponseStreamState[object] = ResponseStreamState(
        input_tools=fields.get("tools", []), text_format=fields.get("text_format", None) or _omit()
    )
    return [out for event in events for out in state.handle_event(event)]


def _omit() -> Any:
    from openai import omit

    return omit


def without_ids(response: Any) -> dict[str, Any]:
    data = response.model_dump(mode="json", exclude_none=True)
    data.pop("completed_at", None)
    for item in data["output"]:
        item.pop("id", None)
    return dict(data)


CHUNKS = [
    ChatChunk(reasoning="The user "),
    ChatChunk(reasoning="asks for weather."),
    ChatChunk(delta="Let me "),
    ChatChunk(delta="check."),
    ChatChunk(tool_call=ToolCallDelta(0, "toolu_1", "weather", "")),
    ChatChunk(tool_call=ToolCallDelta(0, arguments='{"city":')),
    ChatChunk(tool_call=ToolCallDelta(0, arguments='"Paris"}')),
    ChatChunk(tool_call=ToolCallDelta(1, "toolu_2", "weather", '{"city":"Rome"}')),
    ChatChunk(finish_reason="tool_calls", usage=Usage(30, 12)),
]
SAME_ANSWER = answer(
    content="Let me check.",
    reasoning="The user asks for weather.",
    finish_reason="tool_calls",
    usage=Usage(30, 12),
    tool_calls=(ToolCall("toolu_1", "weather", '{"city":"Paris"}'), ToolCall("toolu_2", "weather", '{"city":"Rome"}')),
)


def test_a_stream_has_the_events_of_openai_in_order() -> None:
    _, events = stream_of(CHUNKS)
    assert [event.type for event in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    created = events[0].response
    assert (created.id, created.status, created.output, created.usage) == (RESPONSE_ID, "in_progress", [], None)
    added = [event for event in events if event.type == "response.output_item.added"]
    assert [event.output_index for event in added] == [0, 1, 2, 3]
    assert [event.item.status for event in added] == ["in_progress"] * 4


def test_the_sdk_accumulates_a_stream_into_the_response_the_unary_answer_renders() -> None:
    tools = [{"type": "function", "name": "weather", "parameters": WEATHER}]
    encoder, events = stream_of(CHUNKS, tools=tools)
    out = accumulated(events, tools=tools)
    # The SDK's own snapshots of the deltas equal the final text and arguments.
    text_snapshots = [event.snapshot for event in out if event.type == "response.output_text.delta"]
    argument_snapshots = [event.snapshot for event in out if event.type == "response.function_call_arguments.delta"]
    assert text_snapshots[-1] == "Let me check."
    assert argument_snapshots == ['{"city":', '{"city":"Paris"}', '{"city":"Rome"}']
    [completed] = [event for event in out if event.type == "response.completed"]
    unary = rendered(SAME_ANSWER, tools=tools)
    assert without_ids(completed.response) == without_ids(unary)
    # The items of the final response are the items the stream announced, ids included.
    done_ids = [event.item.id for event in events if event.type == "response.output_item.done"]
    assert [item.id for item in completed.response.output] == done_ids
    # What the endpoint stores is the final Response.
    assert encoder.response is not None
    assert Response.model_validate(encoder.response) == events[-1].response


def test_the_response_is_known_only_once_the_stream_ended() -> None:
    encoder = EventStream(request(), MODEL, RESPONSE_ID, CREATED)
    list(encoder.encode(ChatChunk(delta="Hel")))
    assert encoder.response is None
    list(encoder.encode(ChatChunk(delta="lo", finish_reason="stop", usage=Usage(1, 2))))
    assert encoder.response is not None and encoder.response["output"][0]["content"][0]["text"] == "Hello"
    assert encoder.done == b""


def test_a_stream_cut_by_the_token_limit_ends_with_response_incomplete() -> None:
    _, events = stream_of([ChatChunk(delta="Once upon"), ChatChunk(finish_reason="length", usage=Usage(3, 2))])
    last = events[-1]
    assert last.type == "response.incomplete"
    assert last.response.status == "incomplete"
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert [item.status for item in last.response.output] == ["incomplete"]
    done = [event for event in events if event.type == "response.output_item.done"]
    assert done[-1].item.status == "incomplete"
    assert without_ids(last.response) == without_ids(rendered(answer(content="Once upon", finish_reason="length", usage=Usage(3, 2))))


def test_a_stream_without_text_or_calls_still_has_its_message() -> None:
    _, events = stream_of([ChatChunk(finish_reason="stop", usage=Usage(3, 0))])
    final = events[-1].response
    assert [(item.type, item.content[0].text) for item in final.output] == [("message", "")]
    assert without_ids(final) == without_ids(rendered(answer(content="", usage=Usage(3, 0))))


def test_a_stream_with_a_text_format_parses_through_the_sdk() -> None:
    fields = {"text": {"format": {"type": "json_schema", "name": "city", "schema": WEATHER, "strict": True}}}
    _, events = stream_of([ChatChunk(delta='{"city":"Paris"}'), ChatChunk(finish_reason="stop", usage=Usage(4, 5))], **fields)
    [done] = [event for event in accumulated(events) if event.type == "response.output_text.done"]
    assert done.text == '{"city":"Paris"}'


def test_a_failure_after_the_first_byte_is_an_error_event_on_which_the_sdk_raises() -> None:
    encoder = EventStream(request(), MODEL, RESPONSE_ID, CREATED)
    body = encoder.head + b"".join(encoder.encode(ChatChunk(delta="Hel")))
    body += encoder.error_event(Unavailable("the upstream went away"))
    client = OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")
    http = httpx2.Response(
        200,
        content=body,
        headers={"content-type": "text/event-stream"},
        request=httpx2.Request("POST", "http://127.0.0.1:9/v1/responses"),
    )
    events: Stream[Any] = Stream(cast_to=ResponseStreamEvent, response=http, client=client)  # type: ignore[arg-type]
    seen = []
    with pytest.raises(APIError) as caught:
        for event in events:
            seen.append(event.type)
    assert seen == ["response.created", "response.in_progress", "response.output_item.added", "response.content_part.added", "response.output_text.delta"]
    assert caught.value.message == "the upstream went away"
    assert caught.value.type == "server_error"
    # A client reading the documented flat shape finds the same error, in sequence.
    [sse] = list(SSEDecoder().iter_bytes(iter([error_event(Unavailable("gone"), 9)])))
    flat = ResponseErrorEvent.model_validate(sse.json())
    assert (sse.event, flat.type, flat.message, flat.code, flat.sequence_number) == ("error", "error", "gone", "server_error", 9)
    last = list(SSEDecoder().iter_bytes(iter([body])))[-1].json()
    assert last["sequence_number"] == 5
