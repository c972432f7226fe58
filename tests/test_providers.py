"""The two providers in-process, on a fake upstream (providers/fake_transport.py): what each sends
for a request in the router's types (URL, the SDK's headers, the body in its wire format), what it
makes of each kind of answer, and which of the router's errors each failure becomes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from ai_router.config import ProviderSettings
from ai_router.errors import (
    InvalidRequest,
    ProviderNotConfigured,
    RouterError,
    UpstreamAuthFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.providers.anthropic_provider import AnthropicProvider
from ai_router.providers.base import RelayRequest
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.providers.http_provider import HTTPProvider
from ai_router.providers.openai_provider import OpenAIProvider
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    ImagePart,
    Message,
    OutputFormat,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.upstream_watch import Watchdog

KEY = "sk-fake-0123456789"
Handler = Callable[[FakeRequest], FakeAnswer]


def provider(kind: type[HTTPProvider], handler: Handler, key: str | None = KEY) -> tuple[Any, FakeUpstream]:
    name = "openai" if kind is OpenAIProvider else "anthropic"
    base = "https://upstream.test/v1" if kind is OpenAIProvider else "https://upstream.test"
    settings = ProviderSettings(
        name=name, type=name, default_model="m", api_key=SecretStr(key) if key else None,
        api_key_env="FAKE_KEY",
        base_url=base, timeout=30,
    )  # fmt: skip
    upstream = FakeUpstream(handler)
    return kind(settings, upstream.connect), upstream


def answering(answer: FakeAnswer) -> Handler:
    return lambda request: answer


def request(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", (Message("user", "hi"),))
    return ChatRequest(provider="p", model="m", max_tokens=64, request_id="rid-3", **fields)


def streamed(kind: type[HTTPProvider], answer: FakeAnswer) -> list[ChatChunk]:
    chat, _ = provider(kind, answering(answer))
    return list(chat.stream(request(), Watchdog().watch()))


def failure(call: Callable[[], object]) -> RouterError:
    with pytest.raises(RouterError) as caught:
        result = call()
        if isinstance(result, Iterator):
            list(result)
    return caught.value


CONVERSATION = (
    Message("user", (TextPart("look"), ImagePart(url="https://x/cat.png", detail="low"))),
    Message("assistant", "", (ToolCall("c1", "w", '{"city": "Oslo"}'),)),
    Message("tool", "rain", tool_call_id="c1", is_error=True),
    Message("user", (ImagePart(media_type="image/png", data="AAAA"),)),
)
TOOLED = dict(
    system="Be brief.",
    messages=CONVERSATION,
    sampling=Sampling(temperature=1.5, top_p=0.9, top_k=3, stop=("END",)),
    tools=(Tool("w", "weather", {"type": "object"}),),
    tool_choice=ToolChoice("required"),
    parallel_tool_calls=False,
    user="u-3",
)


# --- OpenAI ------------------------------------------------------------------------------------

OPENAI_ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "m",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c2", "type": "function", "function": {"name": "w", "arguments": "{}"}}],
            },
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15},
}


def test_openai_gets_chat_completions_with_the_sdks_headers() -> None:
    chat, upstream = provider(OpenAIProvider, answering(FakeAnswer.of_json(OPENAI_ANSWER)))

    response = chat.complete(request(**TOOLED))

    sent = upstream.requests[0]
    assert sent.url == "https://upstream.test/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["user-agent"].startswith("OpenAI/Python")
    assert sent.headers["x-request-id"] == "rid-3"
    assert not [name for name in sent.headers if name.startswith("x-stainless-")]
    assert sent.json() == {
        "model": "m",
        "max_completion_tokens": 64,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"city": "Oslo"}'}}
                ],
            },
            # OpenAI has no error flag on a tool result: it is said in the content.
            {"role": "tool", "tool_call_id": "c1", "content": "Error: rain"},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        ],
        "temperature": 1.5,
        "top_p": 0.9,
        "top_k": 3,
        "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "w", "description": "weather", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
        "user": "u-3",
    }
    assert response == ChatResponse("", "tool_calls", Usage(11, 4), "openai", "m", (ToolCall("c2", "w", "{}"),))


def test_an_openai_stream_folds_the_finish_and_the_usage_chunk_into_one_closing_chunk() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> tuple[str, Any]:
        return "", {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **more}

    answer = FakeAnswer.of_events(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"tool_calls": [{"index": 0, "id": "c9", "function": {"name": "w", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{}"}}]}),
        chunk({}, "length"),
        ("", {"object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}),
        b"data: [DONE]\n\n",
    )
    chat, upstream = provider(OpenAIProvider, answering(answer))

    chunks = list(chat.stream(request(), Watchdog().watch()))

    assert upstream.requests[0].json()["stream"] is True
    assert upstream.requests[0].json()["stream_options"] == {"include_usage": True}
    assert chunks == [
        ChatChunk(delta="Hel"),
        ChatChunk(tool_call=ToolCallDelta(0, id="c9", name="w")),
        ChatChunk(tool_call=ToolCallDelta(0, arguments="{}")),
        ChatChunk(finish_reason="length", usage=Usage(2, 3)),
    ]
    assert upstream.answers[0].closed


def test_openai_stream_failures_are_the_routers_errors() -> None:
    error_event = FakeAnswer.of_events(("", {"error": {"message": "boom", "type": "server_error"}}))
    garbled = FakeAnswer.of_events(b'data: {"choices": [\n\n')
    dropped = FakeAnswer.of_events(("", {"choices": [{"delta": {"content": "a"}}]}), b"data: [DONE]\n\n")
    dropped.cut_after = 1

    for answer, kind, text in (
        (error_event, UpstreamUnavailable, "provider 'openai' failed mid-stream: boom"),
        (garbled, UpstreamUnavailable, "sent an answer the router cannot read (JSONDecodeError"),
        (dropped, UpstreamUnavailable, "could not be reached or dropped the connection"),
    ):
        error = failure(lambda: streamed(OpenAIProvider, answer))
        assert isinstance(error, kind) and text in error.message, error.message


SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}
STRUCTURED = dict(
    tools=(Tool("w", "weather", SCHEMA, strict=True),),
    output_format=OutputFormat(SCHEMA, "Q", strict=True),
    reasoning_effort="minimal",
)


def test_openai_gets_strict_tools_a_json_schema_format_and_the_reasoning_effort() -> None:
    chat, upstream = provider(OpenAIProvider, answering(FakeAnswer.of_json(OPENAI_ANSWER)))

    chat.complete(request(**STRUCTURED))
    chat.complete(request(output_format=OutputFormat()))

    sent = upstream.requests[0].json()
    assert sent["tools"] == [
        {"type": "function", "function": {"name": "w", "description": "weather", "parameters": SCHEMA, "strict": True}}
    ]
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "Q", "schema": SCHEMA, "strict": True}}
    assert sent["reasoning_effort"] == "minimal"
    assert upstream.requests[1].json()["response_format"] == {"type": "json_object"}


def test_openai_compatible_reasoning_and_a_named_stop_sequence_are_read() -> None:
    # vLLM's shape: `reasoning` (formerly `reasoning_content`), and `stop_reason` naming the match.
    answer = {
        "choices": [
            {"message": {"role": "assistant", "content": "1, 2, ", "reasoning": "Count."}, "finish_reason": "stop", "stop_reason": "3"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 5},
    }
    chat, _ = provider(OpenAIProvider, answering(FakeAnswer.of_json(answer)))

    response = chat.complete(request(sampling=Sampling(stop=("3",))))

    assert (response.content, response.reasoning, response.stop_sequence) == ("1, 2, ", "Count.", "3")
    # OpenAI's own "stop" does not say which stop sequence, if any, ended the text.
    plain = {**answer, "choices": [{"message": {"content": "1, 2, "}, "finish_reason": "stop"}]}
    chat, _ = provider(OpenAIProvider, answering(FakeAnswer.of_json(plain)))
    assert chat.complete(request(sampling=Sampling(stop=("3",)))).stop_sequence is None


def test_an_openai_compatible_stream_passes_reasoning_deltas_on() -> None:
    def chunk(delta: dict[str, Any], finish: str | None = None, **more: Any) -> tuple[str, Any]:
        return "", {"choices": [{"index": 0, "delta": delta, "finish_reason": finish, **more}]}

    answer = FakeAnswer.of_events(
        chunk({"role": "assistant", "reasoning_content": "Hm"}),
        chunk({"reasoning_content": "m."}),
        chunk({"content": "1"}),
        chunk({}, "stop", stop_reason="3"),
        b"data: [DONE]\n\n",
    )
    chat, _ = provider(OpenAIProvider, answering(answer))

    chunks = list(chat.stream(request(sampling=Sampling(stop=("3",))), Watchdog().watch()))

    assert chunks == [
        ChatChunk(reasoning="Hm"),
        ChatChunk(reasoning="m."),
        ChatChunk(delta="1"),
        ChatChunk(finish_reason="stop", usage=Usage(), stop_sequence="3"),
    ]


# --- Anthropic ---------------------------------------------------------------------------------

ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [
        {"type": "text", "text": "Hel"},
        {"type": "text", "text": "lo"},
        {"type": "tool_use", "id": "toolu_2", "name": "w", "input": {"q": 1}},
    ],
    "stop_reason": "max_tokens",
    "stop_sequence": None,
    "usage": {"input_tokens": 9, "output_tokens": 2},
}


def test_anthropic_gets_messages_with_tool_results_in_user_turns_and_its_own_limits() -> None:
    chat, upstream = provider(AnthropicProvider, answering(FakeAnswer.of_json(ANTHROPIC_ANSWER)))

    response = chat.complete(request(**TOOLED))

    sent = upstream.requests[0]
    assert sent.url == "https://upstream.test/v1/messages"
    assert "anthropic-version" in sent.headers
    assert sent.headers["user-agent"].startswith("Anthropic/Python")
    assert sent.json() == {
        "model": "m",
        "max_tokens": 64,
        "system": "Be brief.",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}},
                ],
            },
            {"role": "assistant", "content": [{"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Oslo"}}]},
            # The tool result and the next user turn are one user turn: roles must alternate.
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "c1", "content": "rain", "is_error": True},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
                ],
            },
        ],
        "stop_sequences": ["END"],
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
        "metadata": {"user_id": "u-3"},
        "temperature": 1.0,  # Anthropic's range is 0-1
        "top_p": 0.9,
        "top_k": 3,
    }
    assert response == ChatResponse(
        "Hello", "length", Usage(9, 2), "anthropic", "m", (ToolCall("toolu_2", "w", '{"q": 1}'),)
    )


def test_an_anthropic_stream_counts_tool_calls_apart_from_text_blocks() -> None:
    answer = FakeAnswer.of_events(
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_3", "name": "w", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 4}}),
        ("message_stop", {"type": "message_stop"}),
    )

    assert streamed(AnthropicProvider, answer) == [
        ChatChunk(delta="Hi"),
        ChatChunk(tool_call=ToolCallDelta(0, id="toolu_3", name="w")),
        ChatChunk(tool_call=ToolCallDelta(0, arguments="{}")),
        ChatChunk(finish_reason="tool_calls", usage=Usage(5, 4)),
    ]


def test_an_anthropic_error_event_after_the_answer_began_is_a_failure_mid_stream() -> None:
    answer = FakeAnswer.of_events(
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5}}}),
        ("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )

    error = failure(lambda: streamed(AnthropicProvider, answer))

    assert isinstance(error, UpstreamUnavailable)
    assert error.message == "provider 'anthropic' failed mid-stream: Overloaded"


def test_anthropic_gets_strict_tools_json_outputs_and_adaptive_thinking_at_that_effort() -> None:
    chat, upstream = provider(AnthropicProvider, answering(FakeAnswer.of_json(ANTHROPIC_ANSWER)))

    chat.complete(request(**STRUCTURED))
    chat.complete(request(reasoning_effort="none"))

    sent = upstream.requests[0].json()
    assert sent["tools"] == [{"name": "w", "description": "weather", "input_schema": SCHEMA, "strict": True}]
    # budget_tokens is deprecated from Claude 4.6 and refused from 4.7: effort steers thinking.
    assert sent["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert sent["output_config"] == {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "low"}
    assert "thinking" not in upstream.requests[1].json()
    assert "output_config" not in upstream.requests[1].json()


def test_anthropic_thinking_and_the_stop_sequence_are_read_whole_and_streamed() -> None:
    answer = {
        **ANTHROPIC_ANSWER,
        "content": [
            {"type": "thinking", "thinking": "Count.", "signature": "c2ln"},
            {"type": "redacted_thinking", "data": "ZW5j"},
            {"type": "text", "text": "1, 2, "},
        ],
        "stop_reason": "stop_sequence",
        "stop_sequence": "3",
    }
    chat, _ = provider(AnthropicProvider, answering(FakeAnswer.of_json(answer)))

    response = chat.complete(request())

    assert (response.content, response.reasoning, response.stop_sequence) == ("1, 2, ", "Count.", "3")
    assert response.finish_reason == "stop"

    events = FakeAnswer.of_events(
        ("message_start", {"type": "message_start", "message": {"usage": {"input_tokens": 5, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Count."}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "1, 2, "}}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "stop_sequence", "stop_sequence": "3"}, "usage": {"output_tokens": 9}}),
        ("message_stop", {"type": "message_stop"}),
    )

    assert streamed(AnthropicProvider, events) == [
        ChatChunk(reasoning="Count."),
        ChatChunk(delta="1, 2, "),
        ChatChunk(finish_reason="stop", usage=Usage(5, 9), stop_sequence="3"),
    ]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        (dict(output_format=OutputFormat()), "response_format"),
        (dict(reasoning_effort="high", sampling=Sampling(temperature=0.2)), "temperature"),
        (dict(reasoning_effort="high", sampling=Sampling(top_k=5)), "top_k"),
        (dict(reasoning_effort="high", sampling=Sampling(top_p=0.5)), "top_p"),
    ],
)
def test_what_anthropic_would_refuse_is_refused_before_anything_is_sent(fields: dict[str, Any], param: str) -> None:
    chat, upstream = provider(AnthropicProvider, answering(FakeAnswer.of_json(ANTHROPIC_ANSWER)))

    error = failure(lambda: chat.check(request(**fields)))

    assert isinstance(error, InvalidRequest) and error.param == param
    assert upstream.requests == []


def test_tool_call_arguments_that_are_not_an_object_are_refused_before_anything_is_sent() -> None:
    chat, upstream = provider(AnthropicProvider, answering(FakeAnswer.of_json(ANTHROPIC_ANSWER)))
    broken = (Message("assistant", "", (ToolCall("c1", "w", "[1, 2]"),)),)

    error = failure(lambda: chat.complete(request(messages=broken)))

    assert isinstance(error, InvalidRequest)
    assert error.param == "messages[0].tool_calls[0].function.arguments"
    assert upstream.requests == []


# --- both --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (400, {}, UpstreamRejected, None),
        (401, {}, UpstreamAuthFailed, None),
        (429, {"retry-after-ms": "2500"}, UpstreamRateLimited, 2.5),
        (429, {"retry-after": "3"}, UpstreamRateLimited, 3.0),
        (500, {}, UpstreamUnavailable, None),
        (529, {}, UpstreamUnavailable, None),
    ],
)
def test_an_error_status_is_the_routers_error_with_the_wait_asked_for(
    kind: type[HTTPProvider], status: int, headers: dict[str, str], expected: type[RouterError], retry_after: float | None
) -> None:
    body = {"error": {"message": f"said {status}", "type": "x"}}
    chat, upstream = provider(kind, answering(FakeAnswer.of_json(body, status, **headers)))

    error = failure(lambda: chat.complete(request()))

    assert type(error) is expected
    assert getattr(error, "retry_after", None) == retry_after
    assert getattr(error, "status", None) == status
    assert upstream.answers[0].closed


@pytest.mark.parametrize("kind", [OpenAIProvider, AnthropicProvider])
@pytest.mark.parametrize(
    ("raised", "expected"),
    [(ConnectionRefusedError(111, "refused"), UpstreamUnavailable), (TimeoutError("slow"), UpstreamTimeout)],
)
def test_a_transport_failure_is_unavailable_or_a_timeout(
    kind: type[HTTPProvider], raised: Exception, expected: type[RouterError]
) -> None:
    def fail(request: FakeRequest) -> FakeAnswer:
        raise raised

    chat, _ = provider(kind, fail)

    assert type(failure(lambda: chat.complete(request()))) is expected


@pytest.mark.parametrize("kind", [OpenAIProvider, AnthropicProvider])
def test_a_provider_without_a_key_names_its_variable_and_sends_nothing(kind: type[HTTPProvider]) -> None:
    chat, upstream = provider(kind, answering(FakeAnswer.of_json({})), key=None)

    error = failure(lambda: chat.complete(request()))

    assert isinstance(error, ProviderNotConfigured) and "FAKE_KEY" in error.message
    assert chat.unavailable_reason() == "FAKE_KEY is not set"
    assert upstream.requests == []


@pytest.mark.parametrize("kind", [OpenAIProvider, AnthropicProvider])
def test_a_relayed_body_goes_out_as_it_came_and_its_answer_comes_back_as_bytes(
    kind: type[HTTPProvider],
) -> None:
    answer = FakeAnswer.of_events(("", {"n": 1}), ("", {"n": 2}))
    chat, upstream = provider(kind, answering(answer))
    body = {"model": "m", "stream": True, "unknown_to_the_router": [1]}

    relayed = chat.relay(RelayRequest(body, stream=True, request_id="rid-4"), Watchdog().watch())
    received = b"".join(relayed.chunks)
    relayed.close()

    assert json.loads(upstream.requests[0].body) == body
    assert upstream.requests[0].headers["x-request-id"] == "rid-4"
    assert (relayed.status, relayed.content_type) == (200, "text/event-stream")
    assert received == b'data: {"n": 1}\n\ndata: {"n": 2}\n\n'
    assert upstream.answers[0].closed


def test_a_timeout_says_how_long_the_attempt_was_given() -> None:
    def slow(request: FakeRequest) -> FakeAnswer:
        raise TimeoutError("timed out")

    chat, _ = provider(OpenAIProvider, slow)

    error = failure(lambda: chat.complete(request(timeout=0.25)))

    # The caller's deadline, not the provider's configured 30 s.
    assert isinstance(error, UpstreamTimeout) and "within 0.25s" in error.message


def test_a_fault_in_the_transport_itself_is_not_the_upstreams() -> None:
    def broken(request: FakeRequest) -> FakeAnswer:
        raise RuntimeError("a bug")

    chat, _ = provider(OpenAIProvider, broken)

    with pytest.raises(RuntimeError):
        chat.complete(request())
