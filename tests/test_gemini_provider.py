"""The Gemini provider: the request it builds, the answers and errors it reads (on an in-process
upstream), and the simulator's Gemini wire, checked with Google's own client (google-genai) and
with the provider itself."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types
from pydantic import SecretStr

from ai_router.config import ProviderSettings
from ai_router.errors import (
    InvalidRequest,
    ProviderNotConfigured,
    RouterError,
    UpstreamAuthFailed,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.providers.gemini_provider import GeminiProvider
from ai_router.types import (
    ChatChunk,
    ChatRequest,
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
from ai_router.wire import gemini_generate as wire

KEY = "AIzaSy-fake-0123456789"
SIGNATURE = base64.b64encode(b"\xfb\xff signature bytes \x00\x01").decode()


def gemini(handler: Any, key: str | None = KEY, base_url: str = "https://upstream.test") -> tuple[GeminiProvider, FakeUpstream]:
    settings = ProviderSettings(
        name="gemini", type="gemini", default_model="gemini-2.5-flash",
        api_key=SecretStr(key) if key else None, api_key_env="GEMINI_API_KEY", base_url=base_url,
        timeout=30,
    )  # fmt: skip
    upstream = FakeUpstream(handler)
    return GeminiProvider(settings, upstream.connect), upstream


def request(**fields: Any) -> ChatRequest:
    fields.setdefault("messages", (Message("user", "hi"),))
    fields.setdefault("model", "gemini-2.5-flash")
    return ChatRequest(provider="gemini", max_tokens=64, request_id="rid-7", **fields)


def answer(parts: list[dict[str, Any]], finish: str = "STOP", **usage: int) -> FakeAnswer:
    return FakeAnswer.of_json({
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage or {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
        "modelVersion": "gemini-2.5-flash",
    })


def error(status: int, message: str, *details: dict[str, Any]) -> FakeAnswer:
    body = {"error": {"code": status, "message": message, "status": wire.status_name(status),
                      "details": list(details)}}
    return FakeAnswer.of_json(body, status)


def failure(provider: GeminiProvider, chat: ChatRequest, stream: bool = False) -> RouterError:
    with pytest.raises(RouterError) as caught:
        if stream:
            list(provider.stream(chat, Watchdog().watch()))
        else:
            provider.complete(chat)
    return caught.value


def sent(upstream: FakeUpstream) -> dict[str, Any]:
    body: dict[str, Any] = upstream.requests[-1].json()
    return body


# ---- the request ---------------------------------------------------------------------------------


def test_the_url_names_the_model_and_the_key_goes_in_its_header() -> None:
    provider, upstream = gemini(lambda r: answer([{"text": "ok"}]))
    provider.complete(request(model="models/gemini-2.5-pro"))
    list(provider.stream(request(), Watchdog().watch()))
    whole, streamed = upstream.requests
    assert whole.url == "https://upstream.test/v1beta/models/gemini-2.5-pro:generateContent"
    assert streamed.url == "https://upstream.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert whole.headers["x-goog-api-key"] == KEY
    assert "authorization" not in {name.lower() for name in whole.headers}
    provider.complete(request(model="../../files?x=1#"))
    assert upstream.requests[-1].url == "https://upstream.test/v1beta/models/..%2F..%2Ffiles%3Fx%3D1%23:generateContent"
    assert streamed.stream and not whole.stream


def test_a_conversation_becomes_contents_with_user_and_model_turns() -> None:
    call = ToolCall(wire.call_id("a1", SIGNATURE), "weather", '{"city": "Oslo"}')
    plain = ToolCall("call_from_openai", "time", "{}")
    provider, upstream = gemini(lambda r: answer([{"text": "ok"}]))
    chat = request(
        system="Be brief.",
        messages=(
            Message("user", (TextPart("look"), ImagePart(media_type="image/png", data="AAAA"))),
            Message("assistant", "checking", (call, plain)),
            Message("tool", "rain", tool_call_id=call.id),
            Message("tool", "boom", tool_call_id=plain.id, is_error=True),
            Message("user", "thanks"),
        ),
        sampling=Sampling(temperature=1.5, top_p=0.9, top_k=3, stop=("END",)),
        tools=(Tool("weather", "the weather", {"type": "object", "properties": {"city": {"type": "string"}}}),
               Tool("time")),
        tool_choice=ToolChoice("tool", "weather"),
        user="u-3",
        parallel_tool_calls=False,
    )
    provider.check(chat)
    provider.complete(chat)
    assert sent(upstream) == {
        "contents": [
            {"role": "user", "parts": [{"text": "look"}, {"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]},
            {"role": "model", "parts": [
                {"text": "checking"},
                {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": SIGNATURE},
                {"functionCall": {"name": "time", "args": {}}},
            ]},
            # The results of parallel calls in one turn, named after their calls; the user's
            # next words merged into it (one role never takes two turns in a row).
            {"role": "user", "parts": [
                {"functionResponse": {"name": "weather", "response": {"output": "rain"}}},
                {"functionResponse": {"name": "time", "response": {"error": "boom"}}},
                {"text": "thanks"},
            ]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "tools": [{"functionDeclarations": [
            {"name": "weather", "description": "the weather",
             "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}}},
            {"name": "time", "description": ""},
        ]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
        "generationConfig": {"maxOutputTokens": 64, "temperature": 1.5, "topP": 0.9, "topK": 3,
                             "stopSequences": ["END"]},
    }


def test_structured_output_and_thinking_go_in_generation_config() -> None:
    provider, upstream = gemini(lambda r: answer([{"text": "{}"}]))
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    provider.complete(request(output_format=OutputFormat(schema), reasoning_effort="medium"))
    config = sent(upstream)["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == schema
    # Gemini 2.5 takes a budget in tokens; 3 a level.
    assert config["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}
    provider.complete(request(model="gemini-3-flash-preview", output_format=OutputFormat(), reasoning_effort="xhigh"))
    config = sent(upstream)["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" not in config
    assert config["thinkingConfig"] == {"thinkingLevel": "high", "includeThoughts": True}
    provider.complete(request(reasoning_effort="none"))
    assert sent(upstream)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 0, "includeThoughts": False}
    provider.complete(request(tool_choice=ToolChoice("none"), tools=(Tool("t"),)))
    assert sent(upstream)["toolConfig"] == {"functionCallingConfig": {"mode": "NONE"}}


@pytest.mark.parametrize(
    ("chat", "param"),
    [
        (request(messages=(Message("user", (ImagePart(url="https://x/cat.png"),)),)), "messages[0].content[0]"),
        (request(messages=(Message("user", "a"), Message("tool", "r", tool_call_id="nobody"))),
         "messages[1].tool_call_id"),
        (request(sampling=Sampling(stop=tuple("abcdef"))), "stop"),
        (request(messages=(Message("assistant", "", (ToolCall("c", "f", "[1]"),)),)),
         "messages[0].tool_calls[0].function.arguments"),
    ],
)
def test_what_gemini_cannot_carry_is_refused_before_any_attempt(chat: ChatRequest, param: str) -> None:
    provider, upstream = gemini(lambda r: answer([{"text": "ok"}]))
    with pytest.raises(InvalidRequest) as refused:
        provider.check(chat)
    assert refused.value.param == param
    assert not upstream.requests


def test_call_ids_carry_the_thought_signature_in_characters_every_family_accepts() -> None:
    made = wire.call_id("0123abcd", SIGNATURE)
    assert made.startswith("gemini_0123abcd_")
    assert all(c.isalnum() or c in "_-" for c in made)
    assert wire.signature_of(made) == SIGNATURE
    assert wire.call_id("0123abcd", None) == "gemini_0123abcd"
    assert wire.signature_of("gemini_0123abcd") is None
    assert wire.signature_of("call_abc_def") is None


# ---- the answer ----------------------------------------------------------------------------------


def test_an_answer_with_thoughts_and_a_function_call_is_read() -> None:
    provider, _ = gemini(lambda r: answer(
        [{"text": "pondering", "thought": True},
         {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}, "thoughtSignature": SIGNATURE}],
        promptTokenCount=10, toolUsePromptTokenCount=2, candidatesTokenCount=4, thoughtsTokenCount=7,
    ))
    got = provider.complete(request())
    assert got.finish_reason == "tool_calls"
    assert got.content == "" and got.reasoning == "pondering"
    assert got.usage == Usage(12, 11)  # thoughts are output, billed as such
    (call,) = got.tool_calls
    assert (call.name, json.loads(call.arguments)) == ("weather", {"city": "Oslo"})
    assert wire.signature_of(call.id) == SIGNATURE


@pytest.mark.parametrize(
    ("finish", "expected"),
    [("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"),
     ("RECITATION", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("OTHER", "stop")],
)
def test_finish_reasons(finish: str, expected: str) -> None:
    provider, _ = gemini(lambda r: answer([{"text": "partial"}], finish))
    got = provider.complete(request())
    assert (got.content, got.finish_reason) == ("partial", expected)


def test_a_blocked_prompt_is_a_rejection_naming_the_reason() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 4, "totalTokenCount": 4},
    }
    provider, _ = gemini(lambda r: FakeAnswer.of_events(("", blocked)) if r.stream else FakeAnswer.of_json(blocked))
    for stream in (False, True):
        refused = failure(provider, request(), stream)
        assert isinstance(refused, UpstreamRejected) and not refused.provider_side
        assert "PROHIBITED_CONTENT" in refused.message


def test_a_malformed_function_call_is_retried_not_passed_on() -> None:
    provider, _ = gemini(lambda r: answer([], "MALFORMED_FUNCTION_CALL"))
    failed = failure(provider, request())
    assert isinstance(failed, UpstreamUnavailable) and failed.retryable


def test_a_stream_is_read_piece_by_piece_with_the_last_usage() -> None:
    def chunk(parts: list[dict[str, Any]], finish: str | None = None, out: int = 1) -> tuple[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        if finish:
            candidate["finishReason"] = finish
        return ("", {"candidates": [candidate],
                     "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": out, "thoughtsTokenCount": 2}})

    provider, _ = gemini(lambda r: FakeAnswer.of_events(
        chunk([{"text": "hm", "thought": True}]),
        chunk([{"text": "Hello"}]),
        chunk([{"text": " world"}, {"functionCall": {"name": "f", "args": {"x": 1}}}], "STOP", out=9),
    ))
    chunks = list(provider.stream(request(), Watchdog().watch()))
    assert chunks[:3] == [ChatChunk(reasoning="hm"), ChatChunk(delta="Hello"), ChatChunk(delta=" world")]
    delta = chunks[3].tool_call
    assert isinstance(delta, ToolCallDelta) and (delta.index, delta.name, delta.arguments) == (0, "f", '{"x":1}')
    assert delta.id.startswith("gemini_")
    assert chunks[4] == ChatChunk(finish_reason="tool_calls", usage=Usage(5, 11))


def test_an_error_in_a_stream_fails_it() -> None:
    provider, _ = gemini(lambda r: FakeAnswer.of_events(
        ("", {"candidates": [{"content": {"role": "model", "parts": [{"text": "a"}]}}]}),
        ("", {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}),
    ))
    failed = failure(provider, request(), stream=True)
    assert isinstance(failed, UpstreamUnavailable) and "overloaded" in failed.message


# ---- errors --------------------------------------------------------------------------------------


def test_an_invalid_argument_names_its_field() -> None:
    provider, _ = gemini(lambda r: error(
        400, "Invalid JSON payload received.",
        {"@type": wire.BAD_REQUEST, "fieldViolations": [
            {"field": "generation_config.top_k", "description": "must be positive"}]},
    ))
    refused = failure(provider, request())
    assert isinstance(refused, UpstreamRejected) and refused.status == 400 and not refused.retryable
    assert "generation_config.top_k: must be positive" in refused.message


@pytest.mark.parametrize(
    "answered",
    [
        error(400, f"API key not valid. Please pass a valid API key. ({KEY})",
              {"@type": wire.ERROR_INFO, "reason": "API_KEY_INVALID", "domain": "googleapis.com"}),
        error(403, f"Permission denied for key {KEY}"),
        error(401, "Request had invalid authentication credentials."),
    ],
)
def test_a_bad_key_is_an_auth_failure_that_never_echoes_it(answered: FakeAnswer) -> None:
    provider, _ = gemini(lambda r: answered)
    failed = failure(provider, request())
    assert isinstance(failed, UpstreamAuthFailed)
    assert KEY not in failed.message and "AIza" not in failed.message


def test_resource_exhausted_is_a_rate_limit_with_googles_retry_delay() -> None:
    provider, _ = gemini(lambda r: error(
        429, "Quota exceeded", {"@type": wire.RETRY_INFO, "retryDelay": "37s"}))
    failed = failure(provider, request())
    assert isinstance(failed, UpstreamRateLimited) and failed.retryable
    assert failed.retry_after == 37.0


@pytest.mark.parametrize("status", [500, 503, 504])
def test_server_errors_are_retryable(status: int) -> None:
    provider, _ = gemini(lambda r: error(status, "try again"))
    failed = failure(provider, request(), stream=status == 503)
    assert isinstance(failed, UpstreamUnavailable) and failed.retryable and failed.provider_side


def test_no_key_names_the_variable_and_sends_nothing() -> None:
    provider, upstream = gemini(lambda r: answer([{"text": "ok"}]), key=None)
    failed = failure(provider, request())
    assert isinstance(failed, ProviderNotConfigured) and "GEMINI_API_KEY" in failed.message
    assert provider.unavailable_reason() == "GEMINI_API_KEY is not set"
    assert not upstream.requests


# ---- the simulator's Gemini wire -----------------------------------------------------------------


@pytest.fixture(scope="module")
def google(sim: str) -> Iterator[genai.Client]:
    client = genai.Client(api_key="sim-key", http_options=genai_types.HttpOptions(base_url=sim))
    yield client
    client.close()


def sim_requests(sim: str) -> list[dict[str, Any]]:
    import urllib.request

    with urllib.request.urlopen(f"{sim}/_sim/requests", timeout=5) as response:
        found: list[dict[str, Any]] = json.loads(response.read())["requests"]
        return found


def sim_faults(sim: str, *faults: dict[str, Any]) -> None:
    import urllib.request

    data = json.dumps({"faults": list(faults)}).encode()
    sent_request = urllib.request.Request(f"{sim}/_sim/faults", data=data, method="POST",
                                          headers={"content-type": "application/json"})
    urllib.request.urlopen(sent_request, timeout=5).close()


def test_googles_client_reads_the_simulators_answers(google: genai.Client, sim: str) -> None:
    got = google.models.generate_content(
        model="gemini-2.5-flash", contents="hello there",
        config=genai_types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=50),
    )
    assert got.text == "Simulated reply from gemini-2.5-flash: hello there"
    assert got.candidates and got.candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert got.usage_metadata and got.usage_metadata.prompt_token_count == 4
    assert sim_requests(sim)[-1]["headers"]["x-goog-api-key"] == "sim-key"
    pieces = [c.text for c in google.models.generate_content_stream(model="gemini-2.5-flash", contents="hi")]
    assert "".join(p for p in pieces if p) == "Simulated reply from gemini-2.5-flash: hi"


def test_googles_client_calls_a_function_and_sends_back_its_signature(google: genai.Client, sim: str) -> None:
    def lookup(query: str) -> str:
        """Look something up."""
        return "sunny"

    got = google.models.generate_content(
        model="gemini-3-flash-preview", contents="weather?",
        config=genai_types.GenerateContentConfig(tools=[lookup]),
    )
    assert got.text == "Simulated reply from gemini-3-flash-preview: tool said: sunny"
    contents = sim_requests(sim)[-1]["body"]["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"]
    assert contents[2]["parts"][0]["functionResponse"] == {"name": "lookup", "response": {"result": "sunny"}}


def test_the_simulators_function_call_is_an_instance_of_its_declared_schema(google: genai.Client) -> None:
    # Gemini has no strict flag: a call follows its declaration, OpenAPI-typed or JSON Schema.
    openapi = genai_types.FunctionDeclaration(
        name="forecast", description="A forecast.",
        parameters=genai_types.Schema(type=genai_types.Type.OBJECT, required=["city", "days", "units"], properties={
            "city": genai_types.Schema(type=genai_types.Type.STRING),
            "days": genai_types.Schema(type=genai_types.Type.INTEGER),
            "units": genai_types.Schema(type=genai_types.Type.STRING, enum=["metric", "imperial"]),
        }),
    )
    json_schema = genai_types.FunctionDeclaration(
        name="lookup", description="Look it up.",
        parameters_json_schema={"type": "object", "properties": {"query": {"type": "string"}, "strict": {
            "type": "boolean"}}, "required": ["query", "strict"], "additionalProperties": False},
    )
    calls = []
    for name in ("forecast", "lookup"):
        got = google.models.generate_content(
            model="gemini-2.5-flash", contents="rain in Oslo",
            config=genai_types.GenerateContentConfig(
                tools=[genai_types.Tool(function_declarations=[openapi, json_schema])],
                tool_config=genai_types.ToolConfig(function_calling_config=genai_types.FunctionCallingConfig(
                    mode=genai_types.FunctionCallingConfigMode.ANY, allowed_function_names=[name]))),
        )
        calls += [(call.name, call.args) for call in got.function_calls or ()]

    assert calls == [
        ("forecast", {"city": "rain in Oslo", "days": 1, "units": "metric"}),
        ("lookup", {"query": "rain in Oslo", "strict": True}),
    ]


def test_googles_client_gets_json_of_its_schema(google: genai.Client) -> None:
    got = google.models.generate_content(
        model="gemini-2.5-flash", contents="json",
        config=genai_types.GenerateContentConfig(
            response_mime_type="application/json",
            response_json_schema={"type": "object", "properties": {"answer": {"type": "string"}},
                                  "required": ["answer"]}),
    )
    assert json.loads(got.text or "") == {"answer": "Simulated reply from gemini-2.5-flash: json"}


def test_the_simulator_refuses_what_gemini_refuses_in_googles_error_shape(google: genai.Client) -> None:
    with pytest.raises(genai_errors.ClientError) as refused:
        google.models.generate_content(model="gemini-2.5-flash", contents="x",
                                       config=genai_types.GenerateContentConfig(stop_sequences=list("abcdef")))
    assert (refused.value.code, refused.value.status) == (400, "INVALID_ARGUMENT")
    assert "stopSequences" in (refused.value.message or "")


def test_the_provider_on_the_simulator_with_faults(sim: str) -> None:
    settings = ProviderSettings(
        name="gemini", type="gemini", default_model="gemini-2.5-flash",
        api_key=SecretStr("sim-key"), api_key_env="GEMINI_API_KEY", base_url=sim,
    )  # fmt: skip
    provider = GeminiProvider(settings)
    try:
        chat = request(messages=(Message("user", "hello there"),), sampling=Sampling(stop=("there",)))
        got = provider.complete(chat)
        assert (got.content, got.finish_reason) == ("Simulated reply from gemini-2.5-flash: hello ", "stop")
        chunks = list(provider.stream(chat, Watchdog().watch()))
        assert "".join(c.delta for c in chunks) == got.content and chunks[-1].usage == got.usage
        sim_faults(sim, {"status": 503, "family": "gemini"})
        failed = failure(provider, chat)
        assert isinstance(failed, UpstreamUnavailable) and failed.status == 503
        sim_faults(sim, {"status": 429, "family": "gemini", "retry_after": 2})
        limited = failure(provider, chat)
        assert isinstance(limited, UpstreamRateLimited) and limited.retry_after == 2
        sim_faults(sim, {"error_event_after_tokens": 2, "family": "gemini"})
        cut = failure(provider, chat, stream=True)
        assert isinstance(cut, UpstreamUnavailable) and "mid-stream" in cut.message
    finally:
        provider.close()
