"""The gRPC front door, served by the real `ai-router grpc` process, against the simulator."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from support import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, RouterConfig, Simulator

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.config import load_settings
from ai_router.grpc_api.server import build_server

PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def stub(grpc_channel: grpc.Channel) -> pb_grpc.AIRouterStub:
    return pb_grpc.AIRouterStub(grpc_channel)


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


@pytest.mark.parametrize("provider", PROVIDERS)
def test_route_request_answers_with_usage_and_finish_reason(
    stub: pb_grpc.AIRouterStub, simulator: Simulator, provider: str
) -> None:
    response, call = stub.RouteRequest.with_call(
        pb.AIRequest(provider=provider, prompt="Say hi"), timeout=10
    )

    assert response.content.endswith(": Say hi")
    assert response.provider == provider
    assert response.model == simulator.last_request()["body"]["model"]
    assert response.finish_reason == "stop"
    assert response.usage.output_tokens == len(response.content.split())
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.request_id
    assert ("x-request-id", response.request_id) in call.trailing_metadata()


def test_the_original_request_fields_keep_working(
    stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    # Fields 1-5 only, as the original service's clients send them.
    request = pb.AIRequest(
        provider="anthropic",
        model="claude-3-5-sonnet-20240620",
        prompt="hello there",
        max_tokens=2,
        parameters={"temperature": "0.25", "top_k": "5"},
    )

    response = stub.RouteRequest(request, timeout=10)

    assert (response.content, response.provider, response.model) == (
        "Simulated reply",
        "anthropic",
        "claude-3-5-sonnet-20240620",
    )
    assert response.finish_reason == "length"
    upstream = simulator.last_request()["body"]
    assert upstream["temperature"] == 0.25  # a number upstream, not the string "0.25"
    assert upstream["top_k"] == 5
    assert upstream["max_tokens"] == 2


def test_multi_turn_messages_system_and_typed_options_reach_openai(
    stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    request = pb.AIRequest(
        model="openai/gpt-4o",
        system="Be brief.",
        messages=[
            pb.Message(role="user", content="Hi"),
            pb.Message(role="assistant", content="Hello"),
            pb.Message(role="user", content="Again"),
        ],
        temperature=0.5,
        top_p=0.9,
        stop=["STOP"],
    )

    stub.RouteRequest(request, timeout=10)

    upstream = simulator.last_request()
    assert upstream["headers"]["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert upstream["body"]["model"] == "gpt-4o"
    assert upstream["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]
    assert (upstream["body"]["temperature"], upstream["body"]["top_p"]) == (0.5, 0.9)
    assert upstream["body"]["stop"] == ["STOP"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streaming_sends_one_message_per_delta_then_a_closing_message(
    stub: pb_grpc.AIRouterStub, simulator: Simulator, provider: str
) -> None:
    messages = list(
        stub.StreamingRouteRequest(pb.AIRequest(provider=provider, prompt="one two"), timeout=10)
    )

    deltas, closing = messages[:-1], messages[-1]
    assert "".join(m.content for m in deltas).endswith(": one two")
    assert all(m.content and not m.finish_reason for m in deltas)
    assert all(m.provider == provider for m in messages)
    assert closing.content == "" and closing.finish_reason == "stop"
    assert closing.usage.output_tokens == len(deltas)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_streaming_is_incremental(
    stub: pb_grpc.AIRouterStub, simulator: Simulator, provider: str
) -> None:
    simulator.set(token_rate=10)
    arrivals = [
        time.monotonic()
        for _ in stub.StreamingRouteRequest(
            pb.AIRequest(provider=provider, prompt="w1 w2 w3 w4"), timeout=10
        )
    ]

    assert arrivals[-1] - arrivals[0] > 0.4


@pytest.mark.parametrize(
    ("request_fields", "code", "fragment"),
    [
        ({"provider": "openai"}, grpc.StatusCode.INVALID_ARGUMENT, "nothing to answer"),
        (
            {"provider": "openai", "prompt": "x", "parameters": {"warmth": "1"}},
            grpc.StatusCode.INVALID_ARGUMENT,
            "parameters.warmth",
        ),
        (
            {"provider": "openai", "prompt": "x", "parameters": {"temperature": "hot"}},
            grpc.StatusCode.INVALID_ARGUMENT,
            "parameters.temperature must be a number",
        ),
        (
            {"provider": "openai", "prompt": "x", "max_tokens": -1},
            grpc.StatusCode.INVALID_ARGUMENT,
            "max_tokens",
        ),
        (
            {"provider": "openai", "prompt": "x", "messages": [pb.Message(role="robot")]},
            grpc.StatusCode.INVALID_ARGUMENT,
            "messages[0].role",
        ),
        ({"provider": "mystery", "prompt": "x"}, grpc.StatusCode.NOT_FOUND, "'mystery'"),
        (
            {"provider": "spare", "prompt": "x"},
            grpc.StatusCode.FAILED_PRECONDITION,
            "set the environment variable SPARE_API_KEY",
        ),
        ({"model": "gpt-4o", "prompt": "x"}, grpc.StatusCode.NOT_FOUND, "provider/model"),
    ],
)
@pytest.mark.parametrize("method", ["RouteRequest", "StreamingRouteRequest"])
def test_bad_requests_are_refused_with_a_message_naming_the_field(
    stub: pb_grpc.AIRouterStub,
    simulator: Simulator,
    method: str,
    request_fields: dict[str, Any],
    code: grpc.StatusCode,
    fragment: str,
) -> None:
    rpc = getattr(stub, method)

    error = rpc_error(lambda: list_if_stream(rpc(pb.AIRequest(**request_fields), timeout=10)))

    assert error.code() == code
    assert fragment in error.details()
    assert simulator.requests() == []


def list_if_stream(result: Any) -> Any:
    return result if isinstance(result, pb.AIResponse) else list(result)


UPSTREAM_FAILURES = [
    ({"status": 500}, grpc.StatusCode.UNAVAILABLE),
    ({"status": 429, "retry_after": 3}, grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"status": 401}, grpc.StatusCode.FAILED_PRECONDITION),
    ({"status": 400, "message": "bad stop"}, grpc.StatusCode.INVALID_ARGUMENT),
    ({"delay": 5}, grpc.StatusCode.DEADLINE_EXCEEDED),
    ({"reset_after_tokens": 0}, grpc.StatusCode.UNAVAILABLE),
]


@pytest.mark.parametrize(("fault", "code"), UPSTREAM_FAILURES)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_upstream_failures_map_to_status_codes_without_keys(
    stub: pb_grpc.AIRouterStub,
    simulator: Simulator,
    provider: str,
    fault: dict[str, Any],
    code: grpc.StatusCode,
) -> None:
    simulator.fail_next(fault)

    error = rpc_error(lambda: stub.RouteRequest(pb.AIRequest(provider=provider, prompt="x")))

    assert error.code() == code
    assert provider in error.details()
    assert OPENAI_TEST_KEY not in error.details() and ANTHROPIC_TEST_KEY not in error.details()


def test_a_rate_limit_tells_the_client_when_to_retry(
    stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 429, "retry_after": 3})

    error = rpc_error(lambda: stub.RouteRequest(pb.AIRequest(provider="openai", prompt="x")))

    assert ("retry-after", "3") in error.trailing_metadata()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_failure_mid_stream_ends_the_stream_with_unavailable(
    stub: pb_grpc.AIRouterStub, simulator: Simulator, provider: str
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})
    received = []

    def consume() -> None:
        for message in stub.StreamingRouteRequest(
            pb.AIRequest(provider=provider, prompt="a b c"), timeout=10
        ):
            received.append(message)

    error = rpc_error(consume)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert len(received) == 2


def test_calls_beyond_the_concurrency_limit_are_refused_not_queued(
    simulator: Simulator, tmp_path: Path
) -> None:
    config = RouterConfig(
        simulator, tmp_path, {"server": {"grpc_max_workers": 2, "grpc_port": 0, "grpc_drain_seconds": 0}}
    )
    settings = load_settings(config.write(), config.env())
    server = build_server(settings)
    server.start()
    simulator.set(token_rate=5)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AIRouterStub(channel)
            request = pb.AIRequest(provider="openai", prompt="a b c")
            open_streams = [stub.StreamingRouteRequest(request, timeout=10) for _ in range(2)]
            for stream in open_streams:
                next(stream)  # both running, the pool is full

            error = rpc_error(lambda: stub.RouteRequest(request, timeout=10))

            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            for stream in open_streams:
                assert list(stream)[-1].finish_reason == "stop"  # the admitted ones finish
    finally:
        server.stop()


def test_health_reports_serving_for_the_server_and_the_service(grpc_channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(grpc_channel)
    for service in ("", "ai_router.AIRouter"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(grpc_channel: grpc.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(grpc_channel)
    replies = reflection.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {service.name for service in next(replies).list_services_response.service}

    assert {"ai_router.AIRouter", "grpc.health.v1.Health"} <= names
