"""A Gemini provider behind a real router (gunicorn + gevent, and the gRPC server), on the
simulator: every front door reaches it by translation, fallbacks and retries cross it, its key
is checked and never echoed, and its answers are priced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import grpc
import httpx2
import openai
import pytest
from support import RouterConfig, Simulator, http_and_grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.wire import gemini_generate as wire

GEMINI_TEST_KEY = "AIzaSy-test-gemini-0123456789"
MODEL = "gemini-2.5-flash"
GENERATE = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
PROVIDERS = {
    "gemini": {"default_model": MODEL, "default_max_tokens": 64, "timeout": 3, "max_retries": 1},
    # A second Gemini account whose key (GEMINI_SPARE_API_KEY) is never set.
    "gemini-spare": {"type": "gemini", "default_model": MODEL},
}
ALIASES = {
    "resilient": {
        "strategy": "fallback",
        "targets": [{"model": "gemini/gemini-2.5-pro", "max_retries": 0}, "openai/gpt-4o"],
    },
}


@pytest.fixture(scope="module")
def router(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(HTTP URL, gRPC target) of a router with a Gemini provider on the simulator."""
    directory = tmp_path_factory.mktemp("gemini")
    config = RouterConfig(simulator_process, directory, {"providers": PROVIDERS, "models": ALIASES})
    env = {**config.env(), "GEMINI_API_KEY": GEMINI_TEST_KEY, "GEMINI_BASE_URL": simulator_process.url}
    with http_and_grpc("gemini", env, directory) as (http_url, grpc_target, processes):
        yield http_url, grpc_target
    # Google's key never reaches a log line (the session's log check knows only the other keys).
    for process in processes:
        assert GEMINI_TEST_KEY not in process.log()


@pytest.fixture
def http(router: tuple[str, str]) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=router[0], timeout=15) as client:
        yield client


@pytest.fixture
def stub(router: tuple[str, str]) -> Iterator[pb_grpc.AIRouterStub]:
    with grpc.insecure_channel(router[1]) as channel:
        yield pb_grpc.AIRouterStub(channel)


@pytest.fixture
def oai_client(router: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{router[0]}/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def ant_client(router: tuple[str, str]) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=router[0], api_key="client-key", max_retries=0) as client:
        yield client


def paths(simulator: Simulator) -> list[str]:
    return [request["path"] for request in simulator.requests()]


def sse_data(response: httpx2.Response) -> list[Any]:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
            for line in response.iter_lines() if line.startswith("data: ")]


def test_generate_reaches_gemini_with_its_key_in_googles_header(
    http: httpx2.Client, simulator: Simulator
) -> None:
    response = http.post("/generate", json={"provider": "gemini", "prompt": "hi there", "max_tokens": 40})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"] == f"Simulated reply from {MODEL}: hi there"
    assert (body["provider"], body["model"], body["finish_reason"]) == ("gemini", MODEL, "stop")
    (sent,) = simulator.requests()
    assert sent["path"] == GENERATE
    assert sent["headers"]["x-goog-api-key"] == GEMINI_TEST_KEY
    assert "authorization" not in sent["headers"]
    assert sent["body"] == {"contents": [{"role": "user", "parts": [{"text": "hi there"}]}],
                            "generationConfig": {"maxOutputTokens": 40}}
    # Priced from the built-in table: $0.30 in, $2.50 out per million tokens.
    usage = body["usage"]
    expected = (usage["input_tokens"] * 0.3 + usage["output_tokens"] * 2.5) / 1e6
    assert float(response.headers["X-AI-Router-Cost-USD"]) == pytest.approx(expected)


def test_stream_reaches_gemini(http: httpx2.Client, simulator: Simulator) -> None:
    with http.stream("POST", "/stream", json={"provider": "gemini", "prompt": "one two"}) as response:
        assert response.status_code == 200
        events = sse_data(response)

    assert events[-1] == "[DONE]"
    deltas, final = events[:-2], events[-2]
    assert "".join(event["content"] for event in deltas) == f"Simulated reply from {MODEL}: one two"
    assert final["finish_reason"] == "stop" and final["usage"]["output_tokens"] == len(deltas)
    assert paths(simulator) == [STREAM]


def test_grpc_reaches_gemini(stub: pb_grpc.AIRouterStub, simulator: Simulator) -> None:
    whole = stub.RouteRequest(pb.AIRequest(provider="gemini", prompt="by rpc"), timeout=10)
    pieces = list(stub.StreamingRouteRequest(pb.AIRequest(provider="gemini", prompt="by rpc"), timeout=10))

    assert whole.content == f"Simulated reply from {MODEL}: by rpc"
    assert (whole.provider, whole.finish_reason) == ("gemini", "stop")
    assert "".join(piece.content for piece in pieces) == whole.content
    assert pieces[-1].finish_reason == "stop"
    assert paths(simulator) == [GENERATE, STREAM]


def test_an_openai_client_calls_a_gemini_function_and_its_signature_comes_back(
    oai_client: openai.OpenAI, simulator: Simulator
) -> None:
    tools: Any = [{"type": "function", "function": {
        "name": "lookup", "description": "look up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    messages: Any = [{"role": "user", "content": "weather in Oslo?"}]
    first = oai_client.chat.completions.create(model=f"gemini/{MODEL}", messages=messages, tools=tools)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"query": "weather in Oslo?"})
    # The simulator signs each call, as Gemini 3 does; the call's id carries the signature.
    assert call.id.startswith(wire.CALL_ID_PREFIX) and wire.signature_of(call.id)

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "rain"},
    ]
    second = oai_client.chat.completions.create(model=f"gemini/{MODEL}", messages=messages, tools=tools)

    assert second.choices[0].message.content == f"Simulated reply from {MODEL}: tool said: rain"
    contents = simulator.last_request()["body"]["contents"]
    assert contents[1]["parts"][0]["thoughtSignature"] == wire.signature_of(call.id)
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "lookup", "response": {"output": "rain"}}}]}


def test_an_openai_client_streams_from_gemini_with_usage(
    oai_client: openai.OpenAI, simulator: Simulator
) -> None:
    stream = oai_client.chat.completions.create(
        model=f"gemini/{MODEL}", messages=[{"role": "user", "content": "stream me"}],
        stream=True, stream_options={"include_usage": True},
    )
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Simulated reply from {MODEL}: stream me"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert paths(simulator) == [STREAM]


def test_an_anthropic_client_reaches_gemini_whole_and_streamed(
    ant_client: anthropic.Anthropic, simulator: Simulator
) -> None:
    message = ant_client.messages.create(
        model=f"gemini/{MODEL}", max_tokens=50, system="Be brief.",
        messages=[{"role": "user", "content": "hello claude client"}],
    )
    with ant_client.messages.stream(
        model=f"gemini/{MODEL}", max_tokens=50, messages=[{"role": "user", "content": "hello claude client"}],
    ) as stream:
        streamed = stream.get_final_message()

    assert message.content[0].type == "text"
    assert message.content[0].text == f"Simulated reply from {MODEL}: hello claude client"
    assert message.stop_reason == "end_turn"
    assert streamed.content[0].type == "text" and streamed.content[0].text == message.content[0].text
    generate, stream_call = simulator.requests()
    assert generate["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert (generate["path"], stream_call["path"]) == (GENERATE, STREAM)


def test_a_gemini_503_falls_back_to_openai(http: httpx2.Client, simulator: Simulator) -> None:
    simulator.fail_next({"status": 503, "family": "gemini"})

    response = http.post("/generate", json={"model": "resilient", "prompt": "fall back"})

    assert response.status_code == 200, response.text
    assert (response.json()["provider"], response.json()["model"]) == ("openai", "gpt-4o")
    assert paths(simulator) == ["/v1beta/models/gemini-2.5-pro:generateContent", "/v1/chat/completions"]


def test_a_gemini_429_is_retried_on_gemini(http: httpx2.Client, simulator: Simulator) -> None:
    simulator.fail_next({"status": 429, "family": "gemini", "retry_after": 0.1})

    response = http.post("/generate", json={"provider": "gemini", "prompt": "again"})

    assert response.status_code == 200, response.text
    assert paths(simulator) == [GENERATE, GENERATE]


def test_a_gemini_400_is_the_clients_and_names_the_field(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "gemini", "prompt": "x", "stop": list("abcdef")})

    assert response.status_code == 400
    assert "stop" in response.text
    assert simulator.requests() == []  # refused before any attempt: Gemini takes at most 5


def test_a_missing_gemini_key_is_a_503_naming_its_variable(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "gemini-spare", "prompt": "x"})

    assert response.status_code == 503
    assert "GEMINI_SPARE_API_KEY" in response.text
    assert simulator.requests() == []


def test_a_key_google_refuses_is_an_auth_failure_without_the_key(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 403, "family": "gemini", "message": f"Permission denied: {GEMINI_TEST_KEY}"})

    response = http.post("/generate", json={"provider": "gemini", "prompt": "x"})

    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "upstream_auth_failed"
    assert GEMINI_TEST_KEY not in response.text and "AIza" not in response.text
    assert "API key" in response.text


def test_reasoning_effort_and_a_schema_reach_gemini_and_its_thoughts_come_back(
    oai_client: openai.OpenAI, simulator: Simulator
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    response_format: Any = {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema}}
    completion = oai_client.chat.completions.create(
        model=f"gemini/{MODEL}", messages=[{"role": "user", "content": "think"}],
        reasoning_effort="low", response_format=response_format,
    )

    message = completion.choices[0].message
    assert json.loads(message.content or "") == {"answer": f"Simulated reply from {MODEL}: think"}
    assert (message.model_extra or {}).get("reasoning_content") == "Simulated thinking about: think"
    config = simulator.last_request()["body"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingBudget": 1024, "includeThoughts": True}
    assert (config["responseMimeType"], config["responseJsonSchema"]) == ("application/json", schema)
    # The thoughts count as output: 4 of them, and the 6 words of the JSON.
    assert completion.usage is not None and completion.usage.completion_tokens == 4 + 6


def test_an_anthropic_client_gets_geminis_thoughts_as_a_thinking_block(
    ant_client: anthropic.Anthropic, simulator: Simulator
) -> None:
    message = ant_client.messages.create(
        model="gemini/gemini-3-flash-preview", max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "ponder"}],
    )

    kinds = [block.type for block in message.content]
    assert kinds == ["thinking", "text"]
    assert message.content[0].type == "thinking"
    assert message.content[0].thinking == "Simulated thinking about: ponder"
    # A budget under 4,096 is effort "low"; Gemini 3 takes it as a level.
    config = simulator.last_request()["body"]["generationConfig"]
    assert config["thinkingConfig"] == {"thinkingLevel": "low", "includeThoughts": True}
