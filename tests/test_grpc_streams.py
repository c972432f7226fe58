"""gRPC streams at scale, within the thread-pool design: one real `ai-router grpc` process holds as
many streams at once as its limit, each on a pool thread of a small stack, refuses one more at
once (RESOURCE_EXHAUSTED, counted, never queued) and serves again once they end. The figures at
thousands of streams are the bench's (`make bench-grpc-streams`, docs/PERFORMANCE.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx2
import orjson
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from support import Process, RouterConfig, Simulator, free_port, start_process, wait_for_port, wait_until

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.grpc_api.server import RESERVED_THREADS

LIMIT = 300
CHANNELS = 2  # client connections the streams are spread over
# About 60 tokens, one a second: every stream is still running when the test ends it.
SLOW = pb.AIRequest(provider="openai", prompt=" ".join(["w"] * 60))
SHORT = pb.AIRequest(provider="openai", prompt="a b c")


@pytest.fixture
def limited(simulator: Simulator, tmp_path: Path) -> Iterator[tuple[Process, int]]:
    """A gRPC process with a limit of LIMIT calls, and the port of its metrics."""
    port, metrics_port = free_port(), free_port()
    server = {"grpc_max_workers": LIMIT, "grpc_metrics_port": metrics_port, "grpc_drain_seconds": 0}
    env = {**RouterConfig(simulator, tmp_path, {"server": server}).env(), "GRPC_PORT": str(port)}
    process = start_process("grpc-streams", ["grpc"], env, tmp_path, port)
    try:
        wait_for_port(process)
        yield process, metrics_port
    finally:
        process.stop()


def metric(metrics_port: int, name: str) -> float:
    """The gRPC surface's sample of `name` in the process's /metrics (0 if it has none yet)."""
    text = httpx2.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("surface") == "grpc":
                return float(sample.value)
    return 0.0


def python_threads_of(pid: int) -> int:
    """The process's threads named as the process is: Python's (grpc's core names its own)."""
    name = Path(f"/proc/{pid}/comm").read_text()
    return sum((task / "comm").read_text() == name for task in Path(f"/proc/{pid}/task").iterdir())


def test_a_process_holds_its_limit_of_streams_refuses_one_more_and_serves_again(
    limited: tuple[Process, int], simulator: Simulator
) -> None:
    process, metrics_port = limited
    simulator.set(token_rate=1)
    address = f"127.0.0.1:{process.port}"
    # Channels of their own subchannel pools: one connection each, not one shared.
    channels = [
        grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(CHANNELS)
    ]
    try:
        stubs = [pb_grpc.AIRouterStub(channel) for channel in channels]
        streams = [stubs[n % CHANNELS].StreamingRouteRequest(SLOW, timeout=60) for n in range(LIMIT)]
        for stream in streams:
            next(stream)  # every stream has its first message: all LIMIT are held at once
        assert metric(metrics_port, "ai_router_in_flight_requests") == LIMIT
        # One pool thread per stream, and nothing more per stream (no hub or resolver thread):
        # beyond them, the main thread, grpc's serving thread, the metrics server's.
        assert LIMIT <= python_threads_of(process.popen.pid) <= LIMIT + RESERVED_THREADS + 6

        one_more = stubs[0].StreamingRouteRequest(SLOW, timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            next(one_more)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(caught.value.trailing_metadata())["retry-after"]
        assert metric(metrics_port, "ai_router_overload_refusals_total") == 1
        # The reserved threads answer health checks at the limit.
        health = health_pb2_grpc.HealthStub(channels[0]).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING

        for stream in streams:
            stream.cancel()
        wait_until(
            lambda: metric(metrics_port, "ai_router_in_flight_requests") == 0, 15,
            "every cancelled stream released its slot",
        )  # fmt: skip
        answer = list(stubs[0].StreamingRouteRequest(SHORT, timeout=10))
        assert answer[-1].finish_reason == "stop"
        assert metric(metrics_port, "ai_router_overload_refusals_total") == 1
    finally:
        for channel in channels:
            channel.close()


def test_a_schema_nested_as_deep_as_json_allows_is_answered_on_a_small_stack(
    grpc_channel: grpc.Channel, simulator: Simulator
) -> None:
    # The pool's threads have small stacks (server.THREAD_STACK_BYTES): the deepest a request
    # can nest (orjson reads 1,023 levels) goes down the request path, converted, checked and
    # translated, and is answered with a status, not a crashed process (at 96 KiB it crashed).
    levels = 511  # two JSON levels each: 1,023, the most orjson reads
    schema = '{"type":"object","properties":{"a":' * levels + "{}" + "}}" * levels
    assert orjson.loads(schema)
    tool = pb.Tool(name="deep", description="deep", parameters=schema)
    stub = pb_grpc.AIRouterStub(grpc_channel)

    with pytest.raises(grpc.RpcError) as caught:
        stub.RouteRequest(pb.AIRequest(provider="openai", prompt="hi", tools=[tool]), timeout=10)

    assert caught.value.code() != grpc.StatusCode.UNAVAILABLE  # the process is alive
    reply = stub.RouteRequest(pb.AIRequest(provider="openai", prompt="Say hi"), timeout=10)
    assert reply.content
