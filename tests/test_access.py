"""Router keys, per-key limits, costs and budgets, through real routers (gunicorn + gevent, the gRPC
server) configured for them, against the simulator, with real clients: httpx, the official openai
and anthropic SDKs, gRPC.

Prices are chosen so that costs are exact in binary floating point: "standard" models cost
$0.50 per input token and $2 per output token; the "metered" model costs $0.000001 per input token
and $1 per output token, so a request's reservation is its max_tokens in dollars plus a negligible
amount for whatever the router estimates the prompt to be.

The simulator's tokens are words: the prompt "hi" is 1 input token, and the answer
"Simulated reply from <model>: hi" is 5 output tokens (fewer when max_tokens cuts it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx2
import openai
import pytest
from access_support import (
    COST_HEADER,
    AccessConfig,
    COST_TRAILER,
    Burst,
    RedisServer,
    bearer,
    burst,
    cost,
    json_lines,
    new_key,
    request_lines,
    sha256_hex,
    spent,
    start_redis,
    usage_of,
)
from support import (
    REPO_ROOT,
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router.access.gate import Gate, Meter
from ai_router.config import settings_from_mapping
from ai_router.types import Usage
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

STANDARD = {"input": 500_000.0, "output": 2_000_000.0}  # $0.5 / $2 per token
METERED = {"input": 1.0, "output": 1_000_000.0}  # $0.000001 / $1 per token
PRICES = {
    "openai/gpt-4o-mini": STANDARD,
    "openai/gpt-4o": STANDARD,
    "anthropic/claude-3-5-haiku-20241022": STANDARD,
    "openai/gpt-4.1-mini": METERED,
    "anthropic/claude-3-haiku-20240307": METERED,
}
ALLOWED_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
FORBIDDEN_MODEL = ANTHROPIC_MODEL  # for team-a
METERED_MODEL = "openai/gpt-4.1-mini"
METERED_ANTHROPIC_MODEL = "anthropic/claude-3-haiku-20240307"
# Whatever the router estimates a one-word prompt to be, it is far below this many tokens.
PROMPT_ESTIMATE_BOUND = 1000
ALIASES = {
    "smart": {"targets": ["openai/gpt-4o"]},
    # Its target matches team-a's "openai/*", but the name the client uses does not.
    "other": {"targets": ["openai/gpt-4o-mini"]},
}
ADMIN_ENV = "ACCESS_TEST_ADMIN_KEY"
TEAM_ENV = "ACCESS_TEST_TEAM_ENV_KEY"
ROOMY = {"rpm": 100_000, "tpm": 100_000_000, "max_concurrent": 1000}

ADMIN_KEY = new_key("admin")
KEYS = {
    name: new_key(name)
    for name in (
        "team-a", "team-env", "coster", "burst-sqlite", "burst-redis", "budget", "pair",
        "abandon-stream", "abandon-openai", "abandon-anthropic", "abandon-grpc", "logger",
        "plain", "tokens", "fragile", "warm-redis", "relay-meter", "unlimited",
    )
}
BUDGET = 42.0  # the "budget" key: ten requests of max_tokens 4 on the metered model fit
BUDGET_MAX_TOKENS = 4
BURST_RPM = 60
BURST_SIZE = 200
BURST_THREADS = 50

# Every router process this module starts, and files the router writes, scanned for keys at the end.
STARTED: list[Process] = []
WRITTEN: list[Path] = []


def key_entry(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "key_sha256": sha256_hex(KEYS[name]), **settings}


GATEWAY_KEYS = [
    key_entry("team-a", models=["openai/*", "smart"], **ROOMY),
    {"name": "team-env", "key_env": TEAM_ENV, **ROOMY},
    key_entry("coster", budget_usd=1000.0, budget_period="1d", **ROOMY),
    key_entry("burst-sqlite", rpm=BURST_RPM, tpm=100_000_000, max_concurrent=1000),
    key_entry("budget", budget_usd=BUDGET, budget_period="1d", **ROOMY),
    key_entry("pair", max_concurrent=2, rpm=100_000, tpm=100_000_000),
    *[key_entry(f"abandon-{surface}", budget_usd=1000.0, budget_period="1d", **ROOMY)
      for surface in ("stream", "openai", "anthropic", "grpc")],
    key_entry("tokens", tpm=1000, rpm=100_000, max_concurrent=1000),
    key_entry("fragile", budget_usd=6.0, budget_period="1d", **ROOMY),
    key_entry("relay-meter", budget_usd=1000.0, budget_period="1d", **ROOMY),
    key_entry("unlimited"),  # no rpm, tpm, max_concurrent or budget
    key_entry("logger", models=["openai/*", "smart"], **ROOMY),
    key_entry("plain", **ROOMY),
]


# --- the routers ---------------------------------------------------------------------------------


class Gateway:
    """One `ai-router http` (three gunicorn workers) and one `ai-router grpc`, sharing an sqlite
    state file, the keys above, the prices and a usage log."""

    def __init__(self, url: str, grpc_target: str, http: Process, grpc_process: Process,
                 usage_log: Path) -> None:
        self.url = url
        self.grpc_target = grpc_target
        self.http = http
        self.grpc = grpc_process
        self.usage_log = usage_log

    def spent(self, name: str) -> float:
        return spent(self.url, name, ADMIN_KEY)

    def usage(self, name: str) -> dict[str, Any]:
        return usage_of(self.url, name, ADMIN_KEY)

    def records(self, name: str) -> list[dict[str, Any]]:
        """The usage log's records of key `name`. A request's record is written once it has
        been settled and its answer sent: the event that says its spend is final."""
        if not self.usage_log.exists():
            return []
        return [entry for entry in json_lines(self.usage_log) if entry.get("key") == name]

    def wait_for_records(self, name: str, count: int) -> None:
        wait_until(lambda: len(self.records(name)) >= count, 5, f"{count} usage records of {name}")


@pytest.fixture(scope="module")
def gateway(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("access")
    usage_log = directory / "usage.jsonl"
    WRITTEN.append(usage_log)
    config = AccessConfig(
        simulator_process,
        directory,
        {
            "models": ALIASES,
            "auth": {"admin_key_env": ADMIN_ENV, "keys": GATEWAY_KEYS},
            "state": {"backend": "sqlite", "path": str(directory / "state.db")},
            "prices": PRICES,
        },
        {"usage_log": str(usage_log)},
    )
    http_port, grpc_port = free_port(), free_port()
    env = {
        **config.env(),
        ADMIN_ENV: ADMIN_KEY,
        TEAM_ENV: KEYS["team-env"],
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
    }
    http = start_process("access-http", ["http"], {**env, "WEB_CONCURRENCY": "3"}, directory, http_port)
    grpc_process = start_process("access-grpc", ["grpc"], env, directory, grpc_port)
    STARTED.extend([http, grpc_process])
    try:
        wait_for_port(http)
        wait_for_port(grpc_process)
        yield Gateway(f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", http,
                      grpc_process, usage_log)
    finally:
        http.stop()
        grpc_process.stop()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_routers(
    simulator_process: Simulator,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[str]]:
    """Three `ai-router http` processes (one worker each) sharing a Redis state."""
    directory = tmp_path_factory.mktemp("access-redis")
    config = RouterConfig(
        simulator_process,
        directory,
        {
            "auth": {"keys": [key_entry("burst-redis", rpm=BURST_RPM, tpm=100_000_000,
                                        max_concurrent=1000),
                              key_entry("warm-redis", **ROOMY)]},
            "state": {"backend": "redis", "url": redis_server.url},
            "prices": PRICES,
        },
    )
    env = config.env()
    processes = []
    for number in range(3):
        port = free_port()
        process = start_process(
            f"access-redis-{number}", ["http"],
            {**env, "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}, directory, port,
        )
        processes.append(process)
        STARTED.append(process)
    try:
        for process in processes:
            wait_for_port(process)
        urls = [f"http://127.0.0.1:{process.port}" for process in processes]
        # Warm the workers up (imports, provider clients, the Redis connection) with another key,
        # so that the burst measures the limit, not a cold start.
        warm = burst(urls, 90, 30, {"model": ALLOWED_MODEL, "prompt": "x", "max_tokens": 1},
                     bearer(KEYS["warm-redis"]))
        assert len(warm.accepted) == 90, warm.refused[:3]
        yield urls
    finally:
        for process in processes:
            process.stop()


@pytest.fixture
def stub(gateway: Gateway) -> Iterator[pb_grpc.AIRouterStub]:
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        yield pb_grpc.AIRouterStub(channel)


# --- one request on each surface, its outcome as an HTTP status ----------------------------------

SURFACES = ["generate", "stream", "openai", "anthropic", "grpc", "grpc-stream"]
GRPC_STATUS = {
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


def ask(gateway: Gateway, surface: str, key: str | None, model: str = ALLOWED_MODEL) -> int:
    """Send one small request on `surface` with `key` (None: no key at all); return 200 for an
    answer, else the HTTP status (gRPC codes mapped: UNAUTHENTICATED 401, PERMISSION_DENIED 403,
    RESOURCE_EXHAUSTED 429). Checks the error's shape for that surface on the way."""
    headers = bearer(key) if key is not None else {}
    if surface == "generate":
        response = httpx2.post(f"{gateway.url}/generate", headers=headers, timeout=15,
                               json={"model": model, "prompt": "hi", "max_tokens": 5})
        return _native_status(response)
    if surface == "stream":
        with httpx2.stream("POST", f"{gateway.url}/stream", headers=headers, timeout=15,
                           json={"model": model, "prompt": "hi", "max_tokens": 5}) as response:
            if response.status_code == 200:
                lines = [line for line in response.iter_lines() if line.startswith("data: ")]
                assert lines[-1] == "data: [DONE]", lines
                return 200
            response.read()
            return _native_status(response)
    if surface == "openai":
        if key is None:  # the SDK refuses to send a request without a key: raw HTTP
            response = httpx2.post(f"{gateway.url}/v1/chat/completions", timeout=15, json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]})
            if response.status_code == 401:  # in OpenAI's error format
                error = response.json()["error"]
                assert isinstance(error["message"], str) and isinstance(error["type"], str), error
                assert "type" not in response.json() or response.json()["type"] != "error"
            return response.status_code
        client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
        try:
            answer = client.chat.completions.create(
                model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        except openai.AuthenticationError:
            return 401
        except openai.PermissionDeniedError:
            return 403
        except openai.RateLimitError:
            return 429
        assert answer.choices[0].message.content
        return 200
    if surface == "anthropic":
        if key is None:
            response = httpx2.post(
                f"{gateway.url}/v1/messages", timeout=15,
                headers={"anthropic-version": "2023-06-01"},
                json={"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
            )
            if response.status_code == 401:  # in Anthropic's error format
                body = response.json()
                assert body["type"] == "error", body
                assert body["error"]["type"] == "authentication_error", body
            return response.status_code
        ant = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
        try:
            message = ant.messages.create(
                model=model, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
        except anthropic.AuthenticationError:
            return 401
        except anthropic.PermissionDeniedError:
            return 403
        except anthropic.RateLimitError:
            return 429
        assert message.content
        return 200
    metadata = [("authorization", f"Bearer {key}")] if key is not None else []
    request = pb.AIRequest(model=model, prompt="hi", max_tokens=5)
    with grpc.insecure_channel(gateway.grpc_target) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        try:
            if surface == "grpc":
                assert stub.RouteRequest(request, metadata=metadata, timeout=15).content
            else:
                assert list(stub.StreamingRouteRequest(request, metadata=metadata, timeout=15))
        except grpc.RpcError as error:
            return GRPC_STATUS.get(error.code(), -1)
    return 200


def _native_status(response: httpx2.Response) -> int:
    if response.status_code == 200:
        return 200
    expected_type = {401: "unauthenticated", 403: "permission_denied", 429: "rate_limited"}
    if response.status_code in expected_type:
        assert response.json()["error"]["type"] == expected_type[response.status_code], response.text
    return response.status_code


# --- 1. keys on every surface --------------------------------------------------------------------


@pytest.mark.parametrize("surface", SURFACES)
def test_a_request_without_a_key_is_unauthenticated_and_never_reaches_the_provider(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    assert ask(gateway, surface, None) == 401
    assert simulator.requests() == []


@pytest.mark.parametrize("surface", SURFACES)
def test_a_wrong_key_is_unauthenticated(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    # The SDKs raise AuthenticationError (ask() maps it to 401).
    assert ask(gateway, surface, KEYS["team-a"] + "x") == 401
    assert ask(gateway, surface, "sk-not-a-router-key") == 401
    assert simulator.requests() == []


@pytest.mark.parametrize("surface", SURFACES)
def test_the_right_key_is_served(gateway: Gateway, simulator: Simulator, surface: str) -> None:
    assert ask(gateway, surface, KEYS["team-a"]) == 200


@pytest.mark.parametrize("surface", SURFACES)
def test_a_key_read_from_key_env_is_served(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    assert ask(gateway, surface, KEYS["team-env"]) == 200


def test_the_key_may_come_in_x_api_key_and_is_never_forwarded(
    gateway: Gateway, simulator: Simulator
) -> None:
    right = httpx2.post(f"{gateway.url}/generate", headers={"x-api-key": KEYS["team-a"]},
                        json={"model": ALLOWED_MODEL, "prompt": "hi"}, timeout=15)
    wrong = httpx2.post(f"{gateway.url}/generate", headers={"x-api-key": "nope"},
                        json={"model": ALLOWED_MODEL, "prompt": "hi"}, timeout=15)

    assert right.status_code == 200, right.text
    assert wrong.status_code == 401, wrong.text
    assert wrong.json()["error"]["type"] == "unauthenticated"
    upstream = json.dumps(simulator.requests())
    assert KEYS["team-a"] not in upstream


@pytest.mark.parametrize("surface", SURFACES)
def test_a_model_outside_the_keys_patterns_is_permission_denied(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    # team-a may use ["openai/*", "smart"].
    assert ask(gateway, surface, KEYS["team-a"], FORBIDDEN_MODEL) == 403
    assert simulator.requests() == []


@pytest.mark.parametrize("surface", SURFACES)
def test_an_alias_is_allowed_by_its_own_name_not_by_its_targets(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    assert ask(gateway, surface, KEYS["team-a"], "smart") == 200
    assert ask(gateway, surface, KEYS["team-a"], "other") == 403


def test_the_model_list_needs_a_key_too(gateway: Gateway) -> None:
    # Only /healthz, /readyz and /metrics are open.
    anonymous = httpx2.get(f"{gateway.url}/v1/models", timeout=10)
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=KEYS["team-a"], max_retries=0)

    assert anonymous.status_code == 401, anonymous.text[:200]
    assert "smart" in {model.id for model in oai.models.list()}


def test_health_readiness_and_metrics_need_no_key(gateway: Gateway) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        response = httpx2.get(gateway.url + path, timeout=10)
        assert response.status_code == 200, (path, response.status_code, response.text[:200])


# --- 2. no keys: only on loopback, or when the operator says so ----------------------------------


@pytest.mark.parametrize("command", ["http", "grpc", "serve"])
def test_without_keys_a_router_reachable_from_other_machines_refuses_to_start(
    simulator_process: Simulator, tmp_path: Path, command: str
) -> None:
    env = {
        **os.environ,
        **RouterConfig(simulator_process, tmp_path).env(),
        "HOST": "0.0.0.0",
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
    }
    env.pop("ALLOW_UNAUTHENTICATED", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "ai_router.cli", command], env=env, cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
        pytest.fail(f"`ai-router {command}` on 0.0.0.0 with no keys was still running after 30s")

    assert process.returncode == 2, stderr
    assert "auth.keys" in stderr and "auth.allow_unauthenticated" in stderr, stderr


def test_without_keys_allow_unauthenticated_serves_anyone_on_any_host(
    simulator_process: Simulator, tmp_path: Path
) -> None:
    config = RouterConfig(simulator_process, tmp_path, {"auth": {"allow_unauthenticated": True}})
    http_port, grpc_port = free_port(), free_port()
    env = {**config.env(), "HOST": "0.0.0.0", "HTTP_PORT": str(http_port),
           "GRPC_PORT": str(grpc_port), "WEB_CONCURRENCY": "1"}
    processes = [start_process("access-open-http", ["http"], env, tmp_path, http_port),
                 start_process("access-open-grpc", ["grpc"], env, tmp_path, grpc_port)]
    try:
        for process in processes:
            wait_for_port(process)
        response = httpx2.post(f"http://127.0.0.1:{http_port}/generate", timeout=15,
                               json={"model": ALLOWED_MODEL, "prompt": "hi"})
        assert response.status_code == 200, response.text
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            answer = pb_grpc.AIRouterStub(channel).RouteRequest(
                pb.AIRequest(model=ALLOWED_MODEL, prompt="hi"), timeout=15)
        assert answer.content
    finally:
        for process in processes:
            process.stop()


# --- 3. costs ------------------------------------------------------------------------------------


def test_each_unary_answer_carries_its_cost_and_the_keys_spend_grows_by_exactly_that(
    gateway: Gateway, stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    key = KEYS["coster"]
    start = gateway.spent("coster")

    # /generate
    response = httpx2.post(f"{gateway.url}/generate", headers=bearer(key), timeout=15,
                           json={"model": ALLOWED_MODEL, "prompt": "hi there", "max_tokens": 50})
    assert response.status_code == 200, response.text
    usage = response.json()["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (2, 6)
    generate_cost = cost(2, 6, STANDARD)  # 1 + 12 = $13
    assert float(response.headers[COST_HEADER]) == pytest.approx(generate_cost, abs=1e-9)
    assert gateway.spent("coster") - start == pytest.approx(generate_cost, abs=1e-9)

    # gRPC: the cost in the trailing metadata
    answer, call = stub.RouteRequest.with_call(
        pb.AIRequest(model=ALLOWED_MODEL, prompt="a b c", max_tokens=50),
        metadata=[("authorization", f"Bearer {key}")], timeout=15,
    )
    trailers = dict(call.trailing_metadata())
    grpc_cost = cost(answer.usage.input_tokens, answer.usage.output_tokens, STANDARD)
    assert grpc_cost == cost(3, 7, STANDARD)
    assert COST_TRAILER in trailers, trailers
    assert float(trailers[COST_TRAILER]) == pytest.approx(grpc_cost, abs=1e-9)
    assert gateway.spent("coster") - start == pytest.approx(generate_cost + grpc_cost, abs=1e-9)

    # The SDKs' unary answers carry it too.
    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model="smart", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    completion = raw.parse()
    assert completion.usage is not None
    openai_cost = cost(completion.usage.prompt_tokens, completion.usage.completion_tokens, STANDARD)
    assert float(raw.headers[COST_HEADER]) == pytest.approx(openai_cost, abs=1e-9)

    ant = anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0)
    raw_message = ant.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    message = raw_message.parse()
    anthropic_cost = cost(message.usage.input_tokens, message.usage.output_tokens, STANDARD)
    assert float(raw_message.headers[COST_HEADER]) == pytest.approx(anthropic_cost, abs=1e-9)

    total = generate_cost + grpc_cost + openai_cost + anthropic_cost
    assert gateway.spent("coster") - start == pytest.approx(total, abs=1e-9)


def finished_stream_usage(gateway: Gateway, surface: str, key: str) -> tuple[int, int]:
    """Stream a whole answer on `surface`; return the usage the client was told (in, out).
    The /v1 streams are relayed to a provider of their own family."""
    prompt = "one two"
    if surface == "grpc":
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            messages = list(pb_grpc.AIRouterStub(channel).StreamingRouteRequest(
                pb.AIRequest(model=ALLOWED_MODEL, prompt=prompt, max_tokens=50),
                metadata=[("authorization", f"Bearer {key}")], timeout=15))
        return messages[-1].usage.input_tokens, messages[-1].usage.output_tokens
    messages = [{"role": "user", "content": prompt}]
    requests: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
        "stream": ("/stream", {"model": ALLOWED_MODEL, "prompt": prompt}, bearer(key)),
        "openai": ("/v1/chat/completions",
                   {"model": ALLOWED_MODEL, "messages": messages, "stream": True,
                    "stream_options": {"include_usage": True}}, bearer(key)),
        "anthropic": ("/v1/messages", {"model": ANTHROPIC_MODEL, "messages": messages,
                                       "stream": True},
                      {"x-api-key": key, "anthropic-version": "2023-06-01"}),
    }
    path, body, headers = requests[surface]
    body["max_tokens"] = 50
    with httpx2.stream("POST", gateway.url + path, headers=headers, json=body, timeout=15) as r:
        assert r.status_code == 200
        events = [json.loads(line[6:]) for line in r.iter_lines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    if surface == "stream":
        usage = events[-1]["usage"]
        return usage["input_tokens"], usage["output_tokens"]
    if surface == "openai":
        usage = events[-1]["usage"]
        return usage["prompt_tokens"], usage["completion_tokens"]
    start = next(e for e in events if e["type"] == "message_start")["message"]["usage"]
    delta = [e for e in events if e["type"] == "message_delta"][-1]["usage"]
    return start["input_tokens"], delta["output_tokens"]


@pytest.mark.parametrize("surface", ["stream", "openai", "anthropic", "grpc"])
def test_a_finished_stream_adds_the_cost_of_its_usage(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    start, finished = gateway.spent("coster"), len(gateway.records("coster"))

    tokens_in, tokens_out = finished_stream_usage(gateway, surface, KEYS["coster"])
    expected = cost(tokens_in, tokens_out, STANDARD)
    assert (tokens_in, tokens_out) == (2, 6)  # "Simulated reply from <model>: one two"

    gateway.wait_for_records("coster", finished + 1)  # the stream has ended and settled
    assert gateway.spent("coster") - start == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("max_tokens", [50, None])
def test_a_relayed_openai_stream_without_include_usage_is_billed_for_its_output(
    gateway: Gateway, simulator: Simulator, max_tokens: int | None
) -> None:
    """An OpenAI client streaming to an OpenAI provider without stream_options.include_usage
    (the SDK's default): the provider sends no usage, but the answer (6 tokens out) was relayed
    all the same; it is billed for that output, not for max_tokens and not for nothing."""
    start, finished = gateway.spent("relay-meter"), len(gateway.records("relay-meter"))
    body: dict[str, Any] = {"model": METERED_MODEL, "stream": True,
                            "messages": [{"role": "user", "content": "one two"}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    with httpx2.stream("POST", f"{gateway.url}/v1/chat/completions", json=body,
                       headers=bearer(KEYS["relay-meter"]), timeout=15) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    gateway.wait_for_records("relay-meter", finished + 1)  # the stream has ended and settled

    billed = gateway.spent("relay-meter") - start
    print(f"\nrelayed openai stream, max_tokens={max_tokens}, no include_usage: billed "
          f"${billed:.6f} (the real answer: 2 in, 6 out = ${cost(2, 6, METERED):.6f})")
    assert cost(0, 1, METERED) <= billed < cost(0, 50, METERED), billed


def test_a_request_is_settled_once_however_many_times_its_end_is_reported() -> None:
    # Only the first report of a request's end books its usage; any later one books nothing.
    gate = Gate(settings_from_mapping({"providers": {"openai": {"default_model": "gpt-4o-mini"}}}, {}))
    meter = Meter(gate, None, None)
    usage = Usage(1000, 1000)
    first = meter.settle("openai", "gpt-4o-mini", usage)
    assert first == gate.cost("openai", "gpt-4o-mini", usage) > 0
    assert meter.settle("openai", "gpt-4o-mini", usage) == 0.0


def test_the_usage_log_takes_a_batch_in_one_write_and_is_made_again_when_deleted(tmp_path: Path) -> None:
    usage_log = tmp_path / "usage.jsonl"
    gate = Gate(settings_from_mapping(
        {"providers": {"openai": {"default_model": "gpt-4o-mini"}}, "usage_log": str(usage_log)}, {}
    ))  # fmt: skip

    gate.record_usage([{"request_id": "r-1", "model_asked": "ünï"}, {"request_id": "r-2"}])
    assert [json.loads(line) for line in usage_log.read_text(encoding="utf-8").splitlines()] == [
        {"request_id": "r-1", "model_asked": "ünï"}, {"request_id": "r-2"},
    ]  # fmt: skip

    usage_log.unlink()  # rotated away
    gate.record_usage([{"request_id": "r-3"}])
    assert usage_log.read_text(encoding="utf-8") == '{"request_id":"r-3"}\n'


def test_a_key_without_any_limit_still_accumulates_its_spend(
    gateway: Gateway, simulator: Simulator
) -> None:
    start = gateway.spent("unlimited")

    response = httpx2.post(f"{gateway.url}/generate", headers=bearer(KEYS["unlimited"]),
                           timeout=15, json={"model": ALLOWED_MODEL, "prompt": "hi there"})

    assert response.status_code == 200, response.text
    assert float(response.headers[COST_HEADER]) == pytest.approx(cost(2, 6, STANDARD), abs=1e-9)
    assert gateway.spent("unlimited") - start == pytest.approx(cost(2, 6, STANDARD), abs=1e-9)


def test_the_usage_endpoint_shows_the_period_and_needs_the_admin_key(gateway: Gateway) -> None:
    url = f"{gateway.url}/v1/usage"
    before = time.time()
    usage = gateway.usage("coster")
    plain = gateway.usage("plain")

    assert usage["key"] == "coster"
    assert usage["budget_usd"] == 1000.0
    assert usage["remaining_usd"] == pytest.approx(1000.0 - usage["spent_usd"], abs=1e-9)
    assert usage["period_start"] <= before + 1 and usage["period_end"] >= before - 1
    assert usage["period_end"] - usage["period_start"] == pytest.approx(86400, abs=1)
    assert plain["key"] == "plain"
    assert plain["budget_usd"] is None and plain["remaining_usd"] is None
    assert plain["spent_usd"] == 0

    for headers in ({}, bearer(KEYS["coster"]), bearer("wrong")):
        refused = httpx2.get(url, params={"key": "coster"}, headers=headers, timeout=10)
        assert refused.status_code in (401, 403), (headers.keys(), refused.status_code, refused.text)
        assert "spent_usd" not in refused.text


# --- 4, 5. rpm under a burst, across processes ---------------------------------------------------


def check_burst(name: str, result: Burst) -> None:
    accepted, refused = len(result.accepted), len(result.refused)
    print(f"\n{name}: {accepted} accepted, {refused} refused, in {result.duration:.2f}s "
          f"(allowed: {BURST_RPM} to {BURST_RPM + result.duration + 1:.1f})")
    wrong = [o for o in result.refused
             if o.status != 429 or o.error_type != "rate_limited"
             or not (o.retry_after or "").isdigit() or int(o.retry_after or 0) < 1]
    assert not wrong, f"{len(wrong)} refusals are not 429 rate_limited with Retry-After: {wrong[:3]}"
    assert BURST_RPM <= accepted <= BURST_RPM + result.duration + 1, (accepted, result.duration)


def test_a_burst_over_three_processes_sharing_redis_gets_the_rpm_and_no_more(
    redis_routers: list[str], simulator: Simulator
) -> None:
    result = burst(redis_routers, BURST_SIZE, BURST_THREADS,
                   {"model": ALLOWED_MODEL, "prompt": "x", "max_tokens": 1},
                   bearer(KEYS["burst-redis"]))

    check_burst("redis burst", result)


def test_a_burst_over_three_workers_sharing_sqlite_gets_the_rpm_and_no_more(
    gateway: Gateway, simulator: Simulator
) -> None:
    result = burst([gateway.url], BURST_SIZE, BURST_THREADS,
                   {"model": ALLOWED_MODEL, "prompt": "x", "max_tokens": 1},
                   bearer(KEYS["burst-sqlite"]))

    check_burst("sqlite burst", result)


# --- 6. the budget -------------------------------------------------------------------------------


def test_concurrent_requests_never_overshoot_the_budget_by_more_than_one_reservation(
    gateway: Gateway, simulator: Simulator
) -> None:
    simulator.set(latency=0.3)  # so that each wave of requests is in flight together
    # One request reserves max_tokens of output plus its prompt estimate.
    reservation = cost(PROMPT_ESTIMATE_BOUND, BUDGET_MAX_TOKENS, METERED)
    answer_cost = cost(1, BUDGET_MAX_TOKENS, METERED)  # "hi": 1 token in, 4 out (cut)

    result = burst([gateway.url], 40, 20,
                   {"model": METERED_MODEL, "prompt": "hi", "max_tokens": BUDGET_MAX_TOKENS},
                   bearer(KEYS["budget"]))
    final = gateway.spent("budget")
    billed = sum(float(o.cost or "nan") for o in result.accepted)

    print(f"\nbudget: {len(result.accepted)} accepted, {len(result.refused)} refused; "
          f"spent ${final:.6f} of ${BUDGET}; overshoot ${final - BUDGET:.6f} "
          f"(allowed: one reservation, ${reservation:.6f})")
    assert result.accepted and result.refused
    wrong = [o for o in result.refused
             if o.status != 429 or o.error_type != "rate_limited" or not o.retry_after]
    assert not wrong, f"refusals that are not 429 rate_limited with Retry-After: {wrong[:3]}"
    for outcome in result.accepted:
        assert float(outcome.cost or "nan") == pytest.approx(answer_cost, abs=1e-9)
    assert final == pytest.approx(billed, abs=1e-6)  # the ledger is what the answers were billed
    assert final <= BUDGET + reservation
    # And the refusals were due: the budget was (nearly) used up.
    assert final > BUDGET - reservation


# --- 7. concurrency ------------------------------------------------------------------------------


def test_max_concurrent_admits_two_open_streams_refuses_a_third_and_readmits_when_one_ends(
    gateway: Gateway, stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    simulator.set(token_rate=5)  # 5 tokens a second
    headers = bearer(KEYS["pair"])
    short = {"model": ALLOWED_MODEL, "prompt": "a"}  # 5 tokens: about a second
    long = {"model": ALLOWED_MODEL, "prompt": " ".join(["w"] * 20)}  # 24 tokens: about 5 s
    with httpx2.Client(base_url=gateway.url, timeout=20) as first, \
            httpx2.Client(base_url=gateway.url, timeout=20) as second, \
            httpx2.Client(base_url=gateway.url, timeout=20) as third:
        with first.stream("POST", "/stream", json=short, headers=headers) as stream_a, \
                second.stream("POST", "/stream", json=long, headers=headers) as stream_b:
            assert (stream_a.status_code, stream_b.status_code) == (200, 200)
            lines_a, lines_b = stream_a.iter_lines(), stream_b.iter_lines()
            assert next(line for line in lines_a if line.startswith("data: "))
            assert next(line for line in lines_b if line.startswith("data: "))

            started = time.monotonic()
            refused = third.post("/generate", json=short, headers=headers)
            refused_in = time.monotonic() - started
            with pytest.raises(grpc.RpcError) as caught:
                stub.RouteRequest(pb.AIRequest(model=ALLOWED_MODEL, prompt="a"),
                                  metadata=[("authorization", f"Bearer {KEYS['pair']}")], timeout=10)

            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["type"] == "rate_limited"
            assert refused.headers.get("Retry-After", "").isdigit(), refused.headers
            assert refused_in < 1.0, f"the third request took {refused_in:.2f}s to be refused"
            assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "retry-after" in dict(caught.value.trailing_metadata() or ())

            rest_a = [line for line in lines_a if line.startswith("data: ")]
            assert rest_a[-1] == "data: [DONE]"
            stream_a.close()
            # A stream's slot is free once it has ended; give the router a moment to see it end.
            deadline = time.monotonic() + 2
            admitted = third.post("/generate", json=short, headers=headers)
            while admitted.status_code == 429 and time.monotonic() < deadline:
                time.sleep(0.1)
                admitted = third.post("/generate", json=short, headers=headers)
            assert admitted.status_code == 200, admitted.text


# --- 8. an abandoned stream ----------------------------------------------------------------------

ABANDON_SURFACES = ["stream", "openai", "anthropic", "grpc"]
ABANDON_PROMPT = " ".join(["w"] * 30)  # 30 tokens in; the answer would be 4 + 30 = 34 tokens
ABANDON_MAX_TOKENS = 40


def abandon_after_three_deltas(gateway: Gateway, surface: str, key: str) -> None:
    """Open a stream of the metered model on `surface` (the /v1 ones relayed to a provider of
    their own family), read three text deltas, and hang up."""
    if surface == "grpc":
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            stream = pb_grpc.AIRouterStub(channel).StreamingRouteRequest(
                pb.AIRequest(model=METERED_MODEL, prompt=ABANDON_PROMPT,
                             max_tokens=ABANDON_MAX_TOKENS),
                metadata=[("authorization", f"Bearer {key}")], timeout=20)
            deltas = 0
            for message in stream:
                deltas += bool(message.content)
                if deltas == 3:
                    break
            stream.cancel()
        return
    messages = [{"role": "user", "content": ABANDON_PROMPT}]
    requests: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
        "stream": ("/stream", {"model": METERED_MODEL, "prompt": ABANDON_PROMPT}, bearer(key)),
        "openai": ("/v1/chat/completions", {"model": METERED_MODEL, "messages": messages,
                                            "stream": True}, bearer(key)),
        "anthropic": ("/v1/messages", {"model": METERED_ANTHROPIC_MODEL, "messages": messages,
                                       "stream": True},
                      {"x-api-key": key, "anthropic-version": "2023-06-01"}),
    }
    path, body, headers = requests[surface]
    body["max_tokens"] = ABANDON_MAX_TOKENS
    deltas = 0
    with httpx2.Client(base_url=gateway.url, timeout=20) as client:
        with client.stream("POST", path, headers=headers, json=body) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                event = json.loads(line[6:])
                if surface == "stream":
                    deltas += bool(event.get("content"))
                elif surface == "openai":
                    deltas += bool(event["choices"] and event["choices"][0]["delta"].get("content"))
                else:
                    deltas += event["type"] == "content_block_delta"
                if deltas == 3:
                    break
    # Leaving both blocks closes the connection mid-stream.


@pytest.mark.parametrize("surface", ABANDON_SURFACES)
def test_an_abandoned_stream_is_billed_for_what_was_relayed(
    gateway: Gateway, simulator: Simulator, surface: str
) -> None:
    simulator.set(token_rate=10)  # the whole answer would take 3.4 s
    name = f"abandon-{surface}"
    reservation_floor = cost(0, ABANDON_MAX_TOKENS, METERED)  # $40: the least it reserves
    full_answer = cost(30, 34, METERED)

    abandon_after_three_deltas(gateway, surface, KEYS[name])

    gateway.wait_for_records(name, 1)  # the router saw the client leave, and settled
    final = gateway.spent(name)
    print(f"\nabandoned {surface} stream after 3 deltas: spend ${final:.6f} "
          f"(full answer ${full_answer:.6f}, reservation >= ${reservation_floor})")
    assert 0 < final < reservation_floor, f"spent ${final}: not settled below the reservation"
    assert final < full_answer, f"spent ${final}: billed as if the whole answer had been relayed"
    # What was relayed is billed: at least one output token ($1), not only the prompt.
    assert final >= cost(0, 1, METERED), f"spent ${final}: the relayed tokens were not billed"


# --- reserve, settle, release: tpm and failures ---------------------------------------------------


def test_tpm_reserves_max_tokens_and_gives_back_what_was_not_used(
    gateway: Gateway, simulator: Simulator
) -> None:
    # "tokens" has tpm 1000; a request with max_tokens 400 reserves over 400 of them.
    body = {"model": ALLOWED_MODEL, "prompt": "hi", "max_tokens": 400}
    headers = bearer(KEYS["tokens"])
    # One after another, each settles at its real ~6 tokens: five of them fit easily.
    sequential = [httpx2.post(f"{gateway.url}/generate", json=body, headers=headers, timeout=15)
                  for _ in range(5)]
    assert [r.status_code for r in sequential] == [200] * 5, [r.text for r in sequential]

    simulator.set(latency=0.5)  # all in flight together: only two reservations fit in 1000
    result = burst([gateway.url], 4, 4, body, headers)

    print(f"\ntpm: {len(result.accepted)} of 4 concurrent requests admitted")
    assert 1 <= len(result.accepted) <= 2
    assert all(o.status == 429 and o.error_type == "rate_limited" and o.retry_after
               for o in result.refused), result.refused


def test_a_failed_request_releases_its_reservation(gateway: Gateway, simulator: Simulator) -> None:
    # "fragile" has a budget of $6: one reservation of max_tokens 4 ($4) fits, two do not.
    body = {"model": METERED_MODEL, "prompt": "hi", "max_tokens": BUDGET_MAX_TOKENS}
    headers = bearer(KEYS["fragile"])
    simulator.fail_next({"status": 500}, {"status": 500}, {"status": 500})

    failed = [httpx2.post(f"{gateway.url}/generate", json=body, headers=headers, timeout=15)
              for _ in range(3)]
    answered = httpx2.post(f"{gateway.url}/generate", json=body, headers=headers, timeout=15)

    assert [r.status_code for r in failed] == [502] * 3, [r.text for r in failed]
    assert answered.status_code == 200, answered.text
    assert gateway.spent("fragile") == pytest.approx(cost(1, BUDGET_MAX_TOKENS, METERED), abs=1e-9)


# --- 9. usage records ----------------------------------------------------------------------------


def test_every_request_leaves_one_usage_record_in_the_file_and_in_the_log(
    gateway: Gateway, stub: pb_grpc.AIRouterStub, simulator: Simulator
) -> None:
    key = KEYS["logger"]
    expected = []  # (provider, model, input, output, cost)

    response = httpx2.post(f"{gateway.url}/generate", headers=bearer(key), timeout=15,
                           json={"model": ALLOWED_MODEL, "prompt": "log me", "max_tokens": 50})
    assert response.status_code == 200
    u = response.json()["usage"]
    expected.append(("openai", "gpt-4o-mini", u["input_tokens"], u["output_tokens"],
                     float(response.headers[COST_HEADER])))

    with httpx2.stream("POST", f"{gateway.url}/stream", headers=bearer(key), timeout=15,
                       json={"model": ALLOWED_MODEL, "prompt": "log me too"}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    u = json.loads(events[-2])["usage"]
    expected.append(("openai", "gpt-4o-mini", u["input_tokens"], u["output_tokens"],
                     cost(u["input_tokens"], u["output_tokens"], STANDARD)))

    answer, call = stub.RouteRequest.with_call(
        pb.AIRequest(model="smart", prompt="a b c d"),
        metadata=[("authorization", f"Bearer {key}")], timeout=15)
    expected.append(("openai", "gpt-4o", answer.usage.input_tokens, answer.usage.output_tokens,
                     float(dict(call.trailing_metadata())[COST_TRAILER])))

    oai = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    raw = oai.chat.completions.with_raw_response.create(
        model=ALLOWED_MODEL, messages=[{"role": "user", "content": "x y"}])
    usage = raw.parse().usage
    assert usage is not None
    expected.append(("openai", "gpt-4o-mini", usage.prompt_tokens, usage.completion_tokens,
                     float(raw.headers[COST_HEADER])))

    gateway.wait_for_records("logger", 4)
    # One more request, of another key, reported after these four: had any of them been
    # reported twice, the second record would be in the log by the time this one is.
    others = len(gateway.records("unlimited"))
    assert httpx2.post(f"{gateway.url}/generate", headers=bearer(KEYS["unlimited"]), timeout=15,
                       json={"model": ALLOWED_MODEL, "prompt": "after"}).status_code == 200
    gateway.wait_for_records("unlimited", others + 1)
    found = gateway.records("logger")
    assert len(found) == 4, found
    for record in found:
        for field in ("key", "alias", "provider", "model", "input_tokens", "output_tokens",
                      "cost_usd", "status", "attempts"):
            assert field in record, (field, record)
        assert any(name.startswith("latency") for name in record), record
        assert record["status"] == "ok", record
        assert key not in json.dumps(record)
    got = sorted((r["provider"], r["model"], r["input_tokens"], r["output_tokens"],
                  round(float(r["cost_usd"]), 9)) for r in found)
    assert got == sorted((p, m, i, o, round(c, 9)) for p, m, i, o, c in expected)
    alias_records = [r for r in found if r["model"] == "gpt-4o"]
    assert alias_records[0].get("alias") == "smart", alias_records

    # The per-request log lines carry the key's name and the cost too.
    def log_lines() -> list[dict[str, Any]]:
        return request_lines([gateway.http.log_path, gateway.grpc.log_path],
                             lambda entry: entry.get("key") == "logger")

    wait_until(lambda: len(log_lines()) >= 4, 3, "four request log lines")
    lines = log_lines()
    assert len(lines) == 4, lines
    assert sorted(round(float(line["cost_usd"]), 9) for line in lines) == sorted(
        round(c, 9) for *_, c in expected)


# --- and keys are never written down -------------------------------------------------------------


def test_router_keys_never_appear_in_a_log_or_the_usage_log(gateway: Gateway) -> None:
    """Runs last: every process this module started has served its requests by now."""
    secrets_ = {**KEYS, "admin": ADMIN_KEY}
    problems = []
    for path in [process.log_path for process in STARTED] + [
        process.output_path for process in STARTED
    ] + WRITTEN:
        if not path.exists():
            continue
        text = path.read_text(errors="replace")
        problems += [f"{path.name}: the {name} key" for name, secret in secrets_.items()
                     if secret in text]
    assert not problems, problems
    assert STARTED  # the scan saw something
