"""The gRPC front door facing careless clients: malformed messages, request ids that cannot
travel, JSON nested past reason, and a fault of the router's own; and the same metrics as HTTP.

In-process: the real grpc.server with its interceptor, on a fake upstream.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.config import settings_from_mapping
from ai_router.grpc_api.server import GrpcServer, build_server
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.router import Router, build_providers

ANSWER = {
    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}
ROUTE = "/ai_router.AIRouter/RouteRequest"


class Served:
    def __init__(self, server: GrpcServer, upstream: FakeUpstream) -> None:
        self.server = server
        self.upstream = upstream
        self.channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        self.stub = pb_grpc.AIRouterStub(self.channel)

    def sample(self, name: str, **labels: str) -> float:
        value = self.server.router.metrics.registry.get_sample_value(name, labels)
        return value or 0.0


@pytest.fixture
def served() -> Iterator[Served]:
    def answer(request: FakeRequest) -> FakeAnswer:
        if b"broken" in request.body:
            raise RuntimeError("a bug in the router")
        return FakeAnswer.of_json(ANSWER)

    settings = settings_from_mapping(
        {
            "server": {"grpc_port": 0, "grpc_drain_seconds": 0, "grpc_max_workers": 2},
            "providers": {"openai": {"default_model": "gpt-4o-mini", "max_retries": 0}},
        },
        {"OPENAI_API_KEY": "sk-o"},
    )
    upstream = FakeUpstream(answer)
    server = build_server(settings, Router(settings, build_providers(settings, upstream.connect)))
    server.start()
    served = Served(server, upstream)
    try:
        yield served
    finally:
        served.channel.close()
        server.stop()


def rpc_error(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def test_bytes_that_are_not_a_message_are_invalid_argument(served: Served) -> None:
    raw = served.channel.unary_unary(ROUTE, request_serializer=None, response_deserializer=None)

    error = rpc_error(lambda: raw(b"\xff\xff\xff\xff", timeout=5))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid message" in (error.details() or "")
    assert served.upstream.requests == []


@pytest.mark.parametrize("given", ["line\nbreak", "nul\x00", "caf\u00e9", "x" * 20_000])
def test_a_request_id_that_cannot_travel_is_replaced_or_cut(served: Served, given: str) -> None:
    response, call = served.stub.RouteRequest.with_call(
        pb.AIRequest(provider="openai", prompt="hi", request_id=given), timeout=5
    )

    sent = served.upstream.requests[-1].headers["x-request-id"]
    assert response.request_id == sent == dict(call.trailing_metadata())["x-request-id"]
    assert sent.isascii() and sent.isprintable() and len(sent) <= 128
    if given.startswith("x"):
        assert sent == given[:128]


def test_tool_parameters_nested_past_reason_are_invalid_argument(served: Served) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    request = pb.AIRequest(provider="openai", prompt="hi", tools=[pb.Tool(name="w", parameters=deep)])

    error = rpc_error(lambda: served.stub.RouteRequest(request, timeout=5))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tools[0].parameters" in (error.details() or "")


def test_tool_parameters_nested_deeper_than_the_router_writes_are_invalid_argument(
    served: Served,
) -> None:
    # Within what orjson reads (1,024 levels), past what it writes (254).
    deep = '{"a":' * 300 + "1" + "}" * 300
    request = pb.AIRequest(provider="openai", prompt="hi", tools=[pb.Tool(name="w", parameters=deep)])

    error = rpc_error(lambda: served.stub.RouteRequest(request, timeout=5))

    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "tools[0].parameters nests objects and arrays more than 128 levels deep" in (error.details() or "")


def test_a_fault_of_the_routers_own_is_internal_with_the_request_id_logged_once(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        error = rpc_error(lambda: served.stub.RouteRequest(
            pb.AIRequest(provider="openai", prompt="broken", request_id="bug-2"), timeout=5))

    assert error.code() == grpc.StatusCode.INTERNAL
    assert "bug-2" in (error.details() or "") and "a bug" not in (error.details() or "")
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert served.sample("ai_router_requests_total", surface="grpc", alias="", provider="openai",
                         model="gpt-4o-mini", status="internal") == 1


def test_grpc_counts_calls_in_flight_and_refusals_as_http_does(served: Served) -> None:
    released = threading.Event()

    class Held(FakeAnswer):
        """A stream that sends one event, then waits to be released."""

        def iter_bytes(self) -> Iterator[bytes]:
            yield from self.pieces
            released.wait(5)
            yield b"data: [DONE]\n\n"

    chunk = {"choices": [{"index": 0, "delta": {"content": "a"}}]}
    served.upstream.handler = lambda request: Held(pieces=[b"data: %s\n\n" % json.dumps(chunk).encode()])
    request = pb.AIRequest(provider="openai", prompt="hi")
    held = [served.stub.StreamingRouteRequest(request, timeout=10) for _ in range(2)]
    try:
        for stream in held:
            next(stream)  # both running: the limit (grpc_max_workers) is reached
        in_flight = served.sample("ai_router_in_flight_requests", surface="grpc")
        refused = rpc_error(lambda: served.stub.RouteRequest(request, timeout=5))
    finally:
        released.set()
    for stream in held:
        list(stream)

    assert in_flight == 2
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "retry-after" in dict(refused.trailing_metadata() or ())
    assert served.sample("ai_router_overload_refusals_total", surface="grpc") == 1
    assert served.sample("ai_router_in_flight_requests", surface="grpc") == 0


def test_methods_the_server_does_not_have_stay_unimplemented_however_often_they_are_asked(
    served: Served,
) -> None:
    # The interceptor keeps a scoped handler for each method of ours; a name it does not serve,
    # inside the service or out, is answered by grpc each time and keeps nothing.
    for method in ("/ai_router.AIRouter/NoSuchMethod", "/other.Service/RouteRequest"):
        call = served.channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        for _ in range(3):
            assert rpc_error(lambda: call(b"", timeout=5)).code() == grpc.StatusCode.UNIMPLEMENTED

    for _ in range(2):
        reply = served.stub.RouteRequest(pb.AIRequest(provider="openai", prompt="hi"), timeout=5)
        assert reply.content == "hello"
