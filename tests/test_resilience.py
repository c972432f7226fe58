"""Aliases, retries, fallbacks, timeouts, cooldowns, cancellation and overload, through a real
router (gunicorn + gevent, and the gRPC server) configured for it, against the simulator."""

from __future__ import annotations

import json
import random
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import grpc
import httpx2
import openai
import pytest
from support import RouterConfig, Simulator, http_and_grpc, wait_until

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.config import settings_from_mapping
from ai_router.http_api.app import create_app
from ai_router.providers.fake_transport import FakeAnswer, FakeUpstream
from ai_router.router import Router, build_providers

OPENAI = "/v1/chat/completions"
ANTHROPIC = "/v1/messages"
PROVIDERS = {
    "openai": {
        "default_model": "gpt-4o-mini",
        "default_max_tokens": 64,
        "timeout": 3,
        "max_retries": 2,
    },
    "anthropic": {
        "default_model": "claude-3-5-haiku-20241022",
        "default_max_tokens": 64,
        "timeout": 3,
        "max_retries": 0,
        "stream_idle_timeout": 0.5,
    },
}
def fallback_alias(openai_model: str, anthropic_model: str) -> dict[str, Any]:
    return {
        "strategy": "fallback",
        "targets": [{"model": f"openai/{openai_model}", "max_retries": 0}, f"anthropic/{anthropic_model}"],
    }


# Each test that fails targets has an alias of its own, over models no other test uses, so that
# the failures it causes never cool down another test's targets.
ALIASES = {
    "smart": fallback_alias("gpt-4o", "claude-3-5-sonnet-20240620"),
    "careful": fallback_alias("gpt-4.1", "claude-3-opus-20240229"),
    "resting": fallback_alias("gpt-4o-2024-08-06", "claude-3-7-sonnet-20250219"),
    "fast": {
        "strategy": "weighted",
        "targets": [
            {"model": "openai/gpt-4o-mini", "weight": 3},
            {"model": "anthropic/claude-3-5-haiku-20241022", "weight": 1},
        ],
    },
    "impatient": {"targets": [{"model": "openai/o3", "timeout": 1, "max_retries": 0}]},
}


@pytest.fixture(scope="module")
def router(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """(HTTP URL, gRPC target) of a router with aliases and retries configured."""
    directory = tmp_path_factory.mktemp("resilience")
    config = RouterConfig(
        simulator_process,
        directory,
        {
            "providers": PROVIDERS,
            "models": ALIASES,
            "cooldown": {"failures": 3, "window_seconds": 30, "seconds": 1},
        },
    )
    with http_and_grpc("resilience", config.env(), directory) as (http_url, grpc_target, _):
        yield http_url, grpc_target


@pytest.fixture
def http(router: tuple[str, str]) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=router[0], timeout=15) as client:
        yield client


@pytest.fixture
def stub(router: tuple[str, str]) -> Iterator[pb_grpc.AIRouterStub]:
    with grpc.insecure_channel(router[1]) as channel:
        yield pb_grpc.AIRouterStub(channel)


def upstream_paths(simulator: Simulator) -> list[str]:
    return [request["path"] for request in simulator.requests()]


# --- retries -------------------------------------------------------------------------------------


def test_a_429_then_success_gives_one_answer_and_two_upstream_calls(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 429, "retry_after": 0.3})
    started = time.monotonic()

    response = http.post("/generate", json={"provider": "openai", "prompt": "hi"})

    assert response.status_code == 200
    assert response.json()["content"].endswith(": hi")
    assert upstream_paths(simulator) == [OPENAI, OPENAI]
    assert time.monotonic() - started >= 0.3  # the provider's retry-after was honoured


def test_retries_stop_after_max_retries_and_name_every_attempt(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next(*[{"status": 500}] * 3)

    response = http.post("/generate", json={"provider": "openai", "prompt": "hi"})

    assert response.status_code == 502
    assert upstream_paths(simulator) == [OPENAI] * 3
    message = response.json()["error"]["message"]
    assert message.count("openai/gpt-4o-mini: failed (HTTP 500)") == 3


def test_the_clients_own_4xx_is_never_retried(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 400, "message": "bad stop"})

    response = http.post("/generate", json={"provider": "openai", "prompt": "hi"})

    assert response.status_code == 400
    assert upstream_paths(simulator) == [OPENAI]


def test_nothing_is_retried_once_a_stream_has_started(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})

    with http.stream("POST", "/stream", json={"provider": "openai", "prompt": "a b c"}) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]

    assert '"error"' in events[-1]
    assert upstream_paths(simulator) == [OPENAI]


# --- aliases and fallback ------------------------------------------------------------------------


def test_a_failing_first_target_gives_the_second_providers_answer_on_every_surface(
    router: tuple[str, str], http: httpx2.Client, stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    oai = openai.OpenAI(base_url=f"{router[0]}/v1", api_key="k", max_retries=0)
    ant = anthropic.Anthropic(base_url=router[0], api_key="k", max_retries=0)
    answers = []
    calls: list[Callable[[], object]] = [
        lambda: http.post("/generate", json={"model": "smart", "prompt": "hi"}).json()["content"],
        lambda: stub.RouteRequest(pb.AIRequest(model="smart", prompt="hi"), timeout=10).content,
        lambda: oai.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "hi"}]
        ).choices[0].message.content,
        lambda: ant.messages.create(
            model="smart", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        ).content[0].text,  # type: ignore[union-attr]
    ]
    for call in calls:
        simulator.reset()
        simulator.fail_next({"status": 503, "family": "openai"})
        answers.append(call())
        assert upstream_paths(simulator) == [OPENAI, ANTHROPIC]
        assert simulator.requests()[1]["body"]["model"] == "claude-3-5-sonnet-20240620"

    assert answers == ["Simulated reply from claude-3-5-sonnet-20240620: hi"] * 4


def test_when_every_target_fails_the_error_lists_each_attempt_without_keys(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 500, "family": "openai"}, {"status": 401, "family": "anthropic"})

    response = http.post("/generate", json={"model": "careful", "prompt": "hi"})

    assert response.status_code == 502
    message = response.json()["error"]["message"]
    assert "openai/gpt-4.1: failed (HTTP 500)" in message
    assert "anthropic/claude-3-opus-20240229: rejected the router's key (HTTP 401)" in message
    assert "sk-" not in response.text


def test_weighted_balancing_spreads_by_weight() -> None:
    # In-process, on a fake upstream, with a seeded generator: the split is the same every run.
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json(FAKE_ANSWERS[request.url.rpartition("/")[2]]))
    settings = settings_from_mapping(
        {"providers": PROVIDERS, "models": {"fast": ALIASES["fast"]}},
        {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-test"},
    )
    router = Router(settings, build_providers(settings, upstream.connect), rng=random.Random(11))
    client = create_app(settings, router).test_client()

    for _ in range(200):
        assert client.post("/generate", json={"model": "fast", "prompt": "x"}).status_code == 200

    spread = Counter(request.url.rpartition("/")[2] for request in upstream.requests)
    # 3:1 over 200 requests: 150 expected, a standard deviation of about 6.
    assert 125 <= spread["completions"] <= 175, spread
    assert spread["completions"] + spread["messages"] == 200


FAKE_ANSWERS: dict[str, Any] = {
    "completions": {"choices": [{"message": {"content": "a"}, "finish_reason": "stop"}], "usage": {}},
    "messages": {"content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 1, "output_tokens": 1}},
}


def test_the_cooldown_skips_a_failing_target_then_readmits_it(
    http: httpx2.Client, simulator: Simulator
) -> None:
    def ask(*faults: dict[str, Any]) -> list[str]:
        simulator.reset()
        simulator.fail_next(*faults)
        assert http.post("/generate", json={"model": "resting", "prompt": "x"}).status_code == 200
        return upstream_paths(simulator)

    for _ in range(3):  # three failures within the window: the openai target rests for 1 s
        assert ask({"status": 500, "family": "openai"}) == [OPENAI, ANTHROPIC]
    assert ask() == [ANTHROPIC]  # skipped while cooling

    time.sleep(1.1)  # the configured rest (cooldown.seconds: 1) runs out: a duration, no event
    assert ask() == [OPENAI]  # probed after the cooldown, and back


def test_aliases_are_listed_as_models(router: tuple[str, str]) -> None:
    oai = openai.OpenAI(base_url=f"{router[0]}/v1", api_key="k", max_retries=0)

    assert {"smart", "fast", "impatient"} <= {model.id for model in oai.models.list()}


# --- timeouts ------------------------------------------------------------------------------------


def test_a_slow_upstream_is_cut_at_the_timeout(
    http: httpx2.Client, stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    simulator.fail_next({"delay": 5})
    started = time.monotonic()
    response = http.post("/generate", json={"model": "impatient", "prompt": "x"})
    http_took = time.monotonic() - started

    simulator.fail_next({"delay": 5})
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        stub.RouteRequest(pb.AIRequest(model="impatient", prompt="x"), timeout=10)
    grpc_took = time.monotonic() - started

    assert response.status_code == 504
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # Cut at the 1 s timeout, well before the 5 s answer.
    assert 1.0 <= http_took < 3.5 and 1.0 <= grpc_took < 3.5


def test_a_stream_that_stalls_is_cut_at_the_idle_timeout(
    http: httpx2.Client, simulator: Simulator
) -> None:
    simulator.set(token_rate=1)  # a token a second; the idle limit is 0.5 s

    with http.stream("POST", "/stream", json={"provider": "anthropic", "prompt": "a b"}) as r:
        events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]

    assert events[0] == {"content": "Simulated"}
    assert events[-1]["error"]["type"] == "upstream_timeout"
    assert "sent nothing for 0.5s" in events[-1]["error"]["message"]


def test_a_grpc_deadline_bounds_the_upstream_call(
    stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    simulator.set(token_rate=2)  # ~7 tokens: 3.5 s
    started = time.monotonic()

    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamingRouteRequest(pb.AIRequest(provider="openai", prompt="a b c"), timeout=1))

    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: bool(simulator.requests()[0].get("closed_early")), 2, "upstream closed")
    assert time.monotonic() - started < 2.5


# --- cancellation --------------------------------------------------------------------------------


def test_an_http_client_that_hangs_up_mid_stream_closes_the_upstream(
    router: tuple[str, str], simulator: Simulator
) -> None:
    simulator.set(token_rate=5)
    port = int(router[0].rsplit(":", 1)[1])
    body = json.dumps({"provider": "openai", "prompt": " ".join(["w"] * 40)}).encode()
    with socket.create_connection(("127.0.0.1", port)) as client:
        client.sendall(
            b"POST /stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"data: " not in received:  # until the stream has started
            chunk = client.recv(4096)
            assert chunk, received
            received += chunk
    hung_up_at = time.monotonic()

    wait_until(lambda: bool(simulator.requests()[0].get("closed_early")), 5, "upstream closed")
    took = time.monotonic() - hung_up_at
    print(f"\nHTTP hang-up reached the upstream in {took * 1000:.0f} ms")
    assert took < 3.0  # the whole answer would take ~9 s


# --- overload ------------------------------------------------------------------------------------


def test_a_worker_at_its_limit_refuses_at_once_with_retry_after(simulator: Simulator) -> None:
    settings = settings_from_mapping(
        {"server": {"http_max_concurrent": 1}, "providers": {"openai": PROVIDERS["openai"]}},
        {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": f"{simulator.url}/v1"},
    )
    client = create_app(settings).test_client()
    simulator.set(token_rate=20)
    held = client.post("/stream", json={"provider": "openai", "prompt": "x"}, buffered=False)

    refused = client.post("/generate", json={"provider": "openai", "prompt": "x"})
    held.close()  # the stream's slot is free once its response is closed
    admitted = client.post("/generate", json={"provider": "openai", "prompt": "x"})

    assert held.status_code == 200
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.json["error"]["type"] == "overloaded"  # type: ignore[index]
    assert admitted.status_code == 200

