"""A Bedrock provider behind a real router (gunicorn + gevent, and the gRPC server), on the
simulator, which checks every request's SigV4 signature with botocore's signer: every front door
reaches it by translation, fallbacks and retries cross it, Bedrock's error types mean what they
should, missing and refused credentials are said without echoing them, and its answers are priced."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx2
import openai
import pytest
from support import RouterConfig, Simulator, http_and_grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.wire import bedrock_converse as wire

MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"
CONVERSE = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse"
CONVERSE_STREAM = "/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/converse-stream"
WRONG_TOKEN = "bedrock-api-key-WRONG-0123456789"
PROVIDERS = {
    "bedrock": {"default_model": MODEL, "region": "us-east-1", "default_max_tokens": 64, "timeout": 3,
                "max_retries": 1},
    # An AWS profile with no credentials (the environment's are not read for a named profile).
    "bedrock-empty": {"type": "bedrock", "default_model": MODEL, "region": "us-east-1", "profile": "empty"},
    # A Bedrock API key the simulator does not know.
    "bedrock-keyed": {"type": "bedrock", "default_model": MODEL, "region": "us-east-1",
                      "api_key_env": "BEDROCK_KEYED_TOKEN", "max_retries": 0},
}
ALIASES = {
    "resilient": {
        "strategy": "fallback",
        "targets": [{"model": "bedrock/anthropic.claude-3-7-sonnet-20250219-v1:0", "max_retries": 0}, "openai/gpt-4o"],
    },
    "openai-then-llama": {
        "strategy": "fallback",
        "targets": [{"model": "openai/gpt-4o", "max_retries": 0}, "bedrock/meta.llama3-3-70b-instruct-v1:0"],
    },
}


def aws_environment(directory: Path) -> dict[str, str]:
    """Nothing of this machine's AWS setup, and never the instance metadata service (an empty
    AWS_PROFILE would name a profile "": it is left unset). The config file has one profile,
    without credentials."""
    (directory / "aws-config").write_text("[profile empty]\nregion = us-east-1\n")
    return {
        "AWS_CONFIG_FILE": str(directory / "aws-config"), "AWS_SHARED_CREDENTIALS_FILE": str(directory / "none"),
        "AWS_EC2_METADATA_DISABLED": "true", "AWS_SESSION_TOKEN": "",
        "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_BEARER_TOKEN_BEDROCK": "",
        "AWS_REGION": "", "AWS_DEFAULT_REGION": "",
    }  # fmt: skip


@pytest.fixture(scope="module")
def router(simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(HTTP URL, gRPC target) of a router with a Bedrock provider on the simulator."""
    directory = tmp_path_factory.mktemp("bedrock")
    config = RouterConfig(simulator_process, directory, {"providers": PROVIDERS, "models": ALIASES})
    env = {
        **config.env(), **aws_environment(directory), "BEDROCK_BASE_URL": simulator_process.url,
        "AWS_ACCESS_KEY_ID": wire.SIMULATOR_ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": wire.SIMULATOR_SECRET_ACCESS_KEY,
        "BEDROCK_KEYED_BASE_URL": simulator_process.url, "BEDROCK_KEYED_TOKEN": WRONG_TOKEN,
    }  # fmt: skip
    with http_and_grpc("bedrock", env, directory) as (http_url, grpc_target, processes):
        yield http_url, grpc_target
    for process in processes:
        assert wire.SIMULATOR_SECRET_ACCESS_KEY not in process.log() and WRONG_TOKEN not in process.log()


@pytest.fixture
def http(router: tuple[str, str]) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=router[0], timeout=15) as client:
        yield client


@pytest.fixture
def oai_client(router: tuple[str, str]) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{router[0]}/v1", api_key="client-key", max_retries=0) as client:
        yield client


def paths(simulator: Simulator) -> list[str]:
    return [request["path"] for request in simulator.requests()]


def sse_data(response: httpx2.Response) -> list[Any]:
    return [json.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
            for line in response.iter_lines() if line.startswith("data: ")]


def test_generate_reaches_bedrock_signed(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "bedrock", "prompt": "hi there", "max_tokens": 40,
                                            "system": "Be brief.", "temperature": 0.5})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["content"] == f"Simulated reply from {MODEL}: hi there"
    assert (body["provider"], body["model"], body["finish_reason"]) == ("bedrock", MODEL, "stop")
    (sent,) = simulator.requests()
    assert sent["path"] == CONVERSE
    # Signed with the simulator's credentials for bedrock in us-east-1 (the simulator recomputed
    # the signature with botocore's signer, or it would have answered 403).
    authorization = sent["headers"]["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={wire.SIMULATOR_ACCESS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, " in authorization
    assert sent["headers"]["x-amz-date"][:8] in authorization
    assert sent["body"] == {"messages": [{"role": "user", "content": [{"text": "hi there"}]}],
                            "system": [{"text": "Be brief."}],
                            "inferenceConfig": {"maxTokens": 40, "temperature": 0.5}}
    # Priced from the built-in table: Claude 3.5 Haiku on Bedrock, $0.80 in, $4 out per million.
    usage = body["usage"]
    expected = (usage["input_tokens"] * 0.8 + usage["output_tokens"] * 4.0) / 1e6
    assert float(response.headers["X-AI-Router-Cost-USD"]) == pytest.approx(expected)


def test_stream_and_grpc_reach_bedrock(http: httpx2.Client, router: tuple[str, str], simulator: Simulator) -> None:
    with http.stream("POST", "/stream", json={"provider": "bedrock", "prompt": "one two"}) as response:
        assert response.status_code == 200
        events = sse_data(response)
    assert events[-1] == "[DONE]"
    deltas, final = events[:-2], events[-2]
    assert "".join(event["content"] for event in deltas) == f"Simulated reply from {MODEL}: one two"
    assert final["finish_reason"] == "stop" and final["usage"]["output_tokens"] == len(deltas)

    with grpc.insecure_channel(router[1]) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        whole = stub.RouteRequest(pb.AIRequest(provider="bedrock", prompt="by rpc"), timeout=10)
        pieces = list(stub.StreamingRouteRequest(pb.AIRequest(provider="bedrock", prompt="by rpc"), timeout=10))
    assert whole.content == f"Simulated reply from {MODEL}: by rpc" and whole.provider == "bedrock"
    assert "".join(piece.content for piece in pieces) == whole.content and pieces[-1].finish_reason == "stop"
    assert paths(simulator) == [CONVERSE_STREAM, CONVERSE, CONVERSE_STREAM]
    assert all(r["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 ") for r in simulator.requests())


def test_an_openai_client_calls_a_bedrock_tool_and_streams_its_result(
    oai_client: openai.OpenAI, simulator: Simulator
) -> None:
    tools: Any = [{"type": "function", "function": {
        "name": "lookup", "description": "look up",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
    messages: Any = [{"role": "user", "content": "weather in Oslo?"}]
    first = oai_client.chat.completions.create(model=f"bedrock/{MODEL}", messages=messages, tools=tools)

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"query": "weather in Oslo?"})
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "rain"},
    ]
    stream = oai_client.chat.completions.create(model=f"bedrock/{MODEL}", messages=messages, tools=tools,
                                                stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Simulated reply from {MODEL}: tool said: rain"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    sent = simulator.last_request()["body"]["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"toolUse": {"toolUseId": call.id, "name": "lookup", "input": {"query": "weather in Oslo?"}}}]}
    assert sent[2] == {"role": "user", "content": [{"toolResult": {"toolUseId": call.id, "content": [{"text": "rain"}]}}]}


def test_anthropic_and_responses_clients_reach_bedrock(router: tuple[str, str], oai_client: openai.OpenAI,
                                                       simulator: Simulator) -> None:
    with anthropic.Anthropic(base_url=router[0], api_key="client-key", max_retries=0) as ant_client:
        message = ant_client.messages.create(
            model=f"bedrock/{MODEL}", max_tokens=4000, system="Be brief.",
            thinking={"type": "enabled", "budget_tokens": 1024},
            messages=[{"role": "user", "content": "hello claude client"}],
        )
        with ant_client.messages.stream(
            model=f"bedrock/{MODEL}", max_tokens=50, messages=[{"role": "user", "content": "hello claude client"}],
        ) as stream:
            streamed = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].type == "text" and message.content[1].text.endswith(": hello claude client")
    assert streamed.content[0].type == "text" and streamed.content[0].text == message.content[1].text
    first = simulator.requests()[0]["body"]
    assert first["system"] == [{"text": "Be brief."}]
    # A budget under 4,096 tokens is effort "low": Claude 3.5 thinks within a budget, read off it.
    assert first["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert "outputConfig" not in first

    response = oai_client.responses.create(model=f"bedrock/{MODEL}", input="by responses")
    assert response.output_text == f"Simulated reply from {MODEL}: by responses"
    assert paths(simulator) == [CONVERSE, CONVERSE_STREAM, CONVERSE]


def test_a_throttled_bedrock_falls_back_to_openai(http: httpx2.Client, simulator: Simulator) -> None:
    simulator.fail_next({"status": 429, "family": "bedrock", "message": "Too many requests, please wait."})

    response = http.post("/generate", json={"model": "resilient", "prompt": "fall back"})

    assert response.status_code == 200, response.text
    assert (response.json()["provider"], response.json()["model"]) == ("openai", "gpt-4o")
    assert paths(simulator) == ["/model/anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse", "/v1/chat/completions"]


def test_throttling_is_retried_on_bedrock(http: httpx2.Client, simulator: Simulator) -> None:
    simulator.fail_next({"status": 429, "family": "bedrock", "retry_after": 0.1})

    response = http.post("/generate", json={"provider": "bedrock", "prompt": "again"})

    assert response.status_code == 200, response.text
    assert paths(simulator) == [CONVERSE, CONVERSE]


def test_a_validation_exception_is_the_clients_not_retried_and_no_cooldown(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next(*[{"status": 400, "family": "bedrock", "message": "messages.0: bad"}] * 3)

    refused = [http.post("/generate", json={"provider": "bedrock", "prompt": "x"}) for _ in range(3)]

    assert [r.status_code for r in refused] == [400, 400, 400]
    assert "ValidationException: messages.0: bad" in refused[0].text
    assert paths(simulator) == [CONVERSE] * 3  # each once: not retried, never cooled down
    assert http.post("/generate", json={"provider": "bedrock", "prompt": "fine"}).status_code == 200


def test_a_prompt_bedrock_cannot_carry_is_refused_before_any_attempt(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "bedrock", "model": "meta.llama3-3-70b-instruct-v1:0",
                                            "prompt": "x", "top_k": 5})

    assert response.status_code == 400 and "top_k" in response.text
    assert simulator.requests() == []


def test_what_a_later_targets_model_cannot_carry_is_refused_before_the_first_attempt(
    http: httpx2.Client, simulator: Simulator
) -> None:
    # Llama on Bedrock has no top_k: checked with each target's model before any is tried, not
    # found after the first target has failed over to it.
    simulator.fail_next({"status": 500})

    response = http.post("/generate", json={"model": "openai-then-llama", "prompt": "x", "top_k": 5})

    assert response.status_code == 400 and response.json()["error"]["param"] == "top_k", response.text
    assert simulator.requests() == []


def test_missing_credentials_are_a_503_naming_the_variables(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "bedrock-empty", "prompt": "x"})

    assert response.status_code == 503, response.text
    assert "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in response.text and "AWS_BEARER_TOKEN_BEDROCK" in response.text
    assert simulator.requests() == []


def test_a_key_bedrock_refuses_is_an_auth_failure_without_the_key(http: httpx2.Client, simulator: Simulator) -> None:
    response = http.post("/generate", json={"provider": "bedrock-keyed", "prompt": "x"})

    assert response.status_code == 502, response.text
    assert response.json()["error"]["type"] == "upstream_auth_failed"
    assert "UnrecognizedClientException" in response.text and WRONG_TOKEN not in response.text
    (sent,) = simulator.requests()
    assert sent["headers"]["authorization"] == f"Bearer {WRONG_TOKEN}"
