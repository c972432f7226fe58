"""ai_router.client, the Python client, against the real `ai-router grpc` process and the
simulator; and, for what today's server never does (refuse a key), against a small recording
server on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import pytest
from support import Simulator, free_port

from ai_router import client as ai
from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

PROVIDERS = ["openai", "anthropic"]


@pytest.fixture
def router(grpc_port: int) -> Iterator[ai.Client]:
    with ai.Client(f"127.0.0.1:{grpc_port}", timeout=10) as client:
        yield client


# Complete answers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_complete_returns_the_answer_with_usage(
    router: ai.Client, simulator: Simulator, provider: str
) -> None:
    completion = router.complete("Say hi", provider=provider)

    assert completion.content.endswith(": Say hi")
    assert completion.finish_reason == "stop"
    assert completion.provider == provider
    assert completion.model == simulator.last_request()["body"]["model"]
    assert completion.usage.output_tokens == len(completion.content.split())
    assert completion.usage.total_tokens == (
        completion.usage.input_tokens + completion.usage.output_tokens
    )
    assert completion.usage.cost is None  # the server does not report cost yet
    assert completion.request_id
    assert completion.tool_calls == ()


def test_messages_system_and_sampling_options_reach_the_provider(
    router: ai.Client, simulator: Simulator
) -> None:
    router.complete(
        model="openai/gpt-4o",
        system="Be brief.",
        messages=[
            ai.Message("user", "Hi"),
            {"role": "assistant", "content": "Hello"},
            ai.Message("user", "Again"),
        ],
        max_tokens=20,
        temperature=0.5,
        top_p=0.9,
        stop="STOP",
    )

    upstream = simulator.last_request()["body"]
    assert upstream["model"] == "gpt-4o"
    assert upstream["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
    ]
    assert (upstream["temperature"], upstream["top_p"], upstream["stop"]) == (0.5, 0.9, ["STOP"])
    assert upstream["max_completion_tokens"] == 20


def test_max_tokens_cuts_the_answer(router: ai.Client, simulator: Simulator) -> None:
    completion = router.complete("one two three", provider="anthropic", max_tokens=2)

    assert completion.content == "Simulated reply"
    assert completion.finish_reason == "length"


# Streams


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_deltas_concatenate_to_the_answer_and_the_last_carries_usage(
    router: ai.Client, simulator: Simulator, provider: str
) -> None:
    deltas = list(router.stream("one two", provider=provider))

    *pieces, last = deltas
    answer = router.complete("one two", provider=provider).content
    assert "".join(d.content for d in deltas) == answer
    assert all(d.content and not d.finish_reason and d.usage is None for d in pieces)
    assert last.content == "" and last.finish_reason == "stop"
    assert last.usage is not None and last.usage.output_tokens == len(pieces)
    assert {d.provider for d in deltas} == {provider}
    assert len({d.request_id for d in deltas}) == 1


def test_a_stream_arrives_as_it_is_generated(router: ai.Client, simulator: Simulator) -> None:
    simulator.set(token_rate=10)

    arrivals = [time.monotonic() for _ in router.stream("w1 w2 w3 w4", provider="openai")]

    assert arrivals[-1] - arrivals[0] > 0.4


def test_a_stream_left_early_leaves_the_client_usable(
    router: ai.Client, simulator: Simulator
) -> None:
    simulator.set(token_rate=20)
    stream = router.stream("a b c d e f g h", provider="openai")

    first = next(stream)
    stream.close()  # what `break` does to a for loop's iterator

    assert first.content
    assert router.complete("again", provider="openai").content.endswith(": again")


def test_nothing_is_sent_until_a_stream_is_iterated(
    router: ai.Client, simulator: Simulator
) -> None:
    router.stream("unread", provider="openai")

    assert simulator.requests() == []


# Deadlines


def test_a_call_past_its_deadline_raises_deadline_exceeded(
    router: ai.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"delay": 5})
    started = time.monotonic()

    with pytest.raises(ai.DeadlineExceeded) as caught:
        router.complete("slow", provider="openai", timeout=0.5)

    assert time.monotonic() - started < 2
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert caught.value.request_id


def test_the_clients_timeout_is_the_default_deadline_of_a_stream(
    grpc_port: int, simulator: Simulator
) -> None:
    simulator.fail_next({"delay": 5})

    with ai.Client(f"127.0.0.1:{grpc_port}", timeout=0.5) as client:
        with pytest.raises(ai.DeadlineExceeded):
            list(client.stream("slow", provider="openai"))


# Errors: typed by status code, with the server's message and the request id


@dataclass
class Failure:
    fault: dict[str, Any] | None
    request: dict[str, Any]
    error: type[ai.ClientError]
    fragment: str


FAILURES = {
    "invalid": Failure(None, {"provider": "openai"}, ai.InvalidArgument, "nothing to answer"),
    "unknown provider": Failure(
        None, {"prompt": "x", "provider": "mystery"}, ai.NotFound, "'mystery'"
    ),
    "no provider key": Failure(
        None, {"prompt": "x", "provider": "spare"}, ai.FailedPrecondition, "SPARE_API_KEY"
    ),
    "rate limited": Failure(
        {"status": 429, "retry_after": 3},
        {"prompt": "x", "provider": "openai"},
        ai.RateLimited,
        "openai",
    ),
    "upstream down": Failure(
        {"status": 500}, {"prompt": "x", "provider": "openai"}, ai.Unavailable, "openai"
    ),
}


def complete(client: ai.Client, **request: Any) -> object:
    return client.complete(**request)


def stream(client: ai.Client, **request: Any) -> object:
    return list(client.stream(**request))


@pytest.mark.parametrize("call", [complete, stream])
@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_failures_raise_typed_errors_with_the_message_and_request_id(
    grpc_port: int, simulator: Simulator, failure: Failure, call: Callable[..., object]
) -> None:
    if failure.fault:
        simulator.fail_next(failure.fault)

    with ai.Client(f"127.0.0.1:{grpc_port}", metadata=[("x-request-id", "req-7")]) as client:
        with pytest.raises(failure.error) as caught:
            call(client, **failure.request)

    error = caught.value
    assert isinstance(error, ai.ClientError)
    assert failure.fragment in error.message
    assert error.request_id == "req-7"
    assert error.message in str(error)


def test_a_rate_limit_says_when_to_retry(router: ai.Client, simulator: Simulator) -> None:
    simulator.fail_next({"status": 429, "retry_after": 3})

    with pytest.raises(ai.RateLimited) as caught:
        router.complete("x", provider="openai")

    assert caught.value.retry_after == 3.0


def test_an_unreachable_router_is_unavailable() -> None:
    with ai.Client(f"127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(ai.Unavailable) as caught:
            client.complete("x")

    assert caught.value.message
    assert caught.value.request_id  # generated by the client, so the attempt can be named


# Metadata


def test_the_request_id_in_metadata_names_the_call_end_to_end(
    grpc_port: int, simulator: Simulator
) -> None:
    with ai.Client(f"127.0.0.1:{grpc_port}", metadata=[("x-request-id", "req-42")]) as client:
        completion = client.complete("x", provider="openai")
        deltas = list(client.stream("x", provider="openai"))

    assert completion.request_id == "req-42"
    assert {d.request_id for d in deltas} == {"req-42"}
    assert {r["headers"]["x-request-id"] for r in simulator.requests()} == {"req-42"}


def test_each_call_gets_its_own_request_id_by_default(
    router: ai.Client, simulator: Simulator
) -> None:
    first, second = (router.complete("x", provider="openai") for _ in range(2))

    assert first.request_id and second.request_id and first.request_id != second.request_id


@dataclass
class RecordingServicer(pb_grpc.AIRouterServicer):
    """Refuses every call with the status code named by its prompt, as a router with keys
    would; records the metadata it received."""

    metadata: list[dict[str, str]] = field(default_factory=list)

    def RouteRequest(self, request: pb.AIRequest, context: grpc.ServicerContext) -> pb.AIResponse:
        self.metadata.append(dict(context.invocation_metadata()))
        context.set_trailing_metadata((("x-request-id", "server-id"),))
        context.abort(grpc.StatusCode[request.prompt], f"refused: {request.prompt}")
        raise AssertionError("unreachable")


@pytest.fixture
def recording() -> Iterator[tuple[RecordingServicer, str]]:
    servicer = RecordingServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_AIRouterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        server.stop(None)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ("UNAUTHENTICATED", ai.Unauthenticated),
        ("PERMISSION_DENIED", ai.PermissionDenied),
        ("CANCELLED", ai.Cancelled),
        ("RESOURCE_EXHAUSTED", ai.RateLimited),
        ("INTERNAL", ai.ClientError),
    ],
)
def test_every_status_has_its_error_type(
    recording: tuple[RecordingServicer, str], status: str, error: type[ai.ClientError]
) -> None:
    _, target = recording

    with ai.Client(target) as client:
        with pytest.raises(ai.ClientError) as caught:
            client.complete(status)

    assert type(caught.value) is error
    assert caught.value.code == grpc.StatusCode[status]
    assert caught.value.message == f"refused: {status}"
    assert caught.value.request_id == "server-id"
    if isinstance(caught.value, ai.RateLimited):
        assert caught.value.retry_after is None  # the server did not say


def test_the_router_key_and_metadata_are_sent_on_every_call(
    recording: tuple[RecordingServicer, str],
) -> None:
    servicer, target = recording

    with ai.Client(target, api_key="rk-123", metadata=[("x-team", "search")]) as client:
        for _ in range(2):
            with pytest.raises(ai.Unauthenticated):
                client.complete("UNAUTHENTICATED")

    assert len(servicer.metadata) == 2
    for received in servicer.metadata:
        assert received["authorization"] == "Bearer rk-123"
        assert received["x-team"] == "search"
    assert servicer.metadata[0]["x-request-id"] != servicer.metadata[1]["x-request-id"]


def test_without_a_key_no_authorization_is_sent(recording: tuple[RecordingServicer, str]) -> None:
    servicer, target = recording

    with ai.Client(target) as client, pytest.raises(ai.Unauthenticated):
        client.complete("UNAUTHENTICATED")

    assert "authorization" not in servicer.metadata[0]
