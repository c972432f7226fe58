"""The HTTP front door, served by real gunicorn + gevent workers, against the simulator."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any


import flask
import httpx2
import pytest
from support import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, Simulator, free_port

from ai_router.config import settings_from_mapping
from ai_router.http_api.app import create_app

PROVIDERS = ["openai", "anthropic"]


def sse_events(response: httpx2.Response) -> Iterator[Any]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            payload = line.removeprefix("data: ")
            yield payload if payload == "[DONE]" else json.loads(payload)


def error_of(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body["error"]) == {"type", "message", "param", "request_id"}
    error: dict[str, Any] = body["error"]
    return error


# --- /generate ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_generate_answers_with_content_finish_reason_and_usage(
    client: httpx2.Client, simulator: Simulator, provider: str
) -> None:
    response = client.post("/generate", json={"provider": provider, "prompt": "Say hi"})

    assert response.status_code == 200
    body = response.json()
    model = {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-20241022"}[provider]
    assert body["content"] == f"Simulated reply from {model}: Say hi"
    assert body["provider"] == provider
    assert body["model"] == model
    assert body["finish_reason"] == "stop"
    assert body["usage"]["output_tokens"] == len(body["content"].split())
    assert body["usage"]["total_tokens"] == (
        body["usage"]["input_tokens"] + body["usage"]["output_tokens"]
    )


def test_generate_sends_the_provider_key_and_typed_parameters_upstream(
    client: httpx2.Client, simulator: Simulator
) -> None:
    response = client.post(
        "/generate",
        json={
            "model": "openai/gpt-4o",
            "prompt": "hello",
            "max_tokens": 20,
            "parameters": {"temperature": "0.25", "top_p": 0.5, "stop": '["END"]'},
        },
        headers={"Authorization": "Bearer client-key-must-not-travel"},
    )

    assert response.status_code == 200, response.text
    upstream = simulator.last_request()
    assert upstream["path"] == "/v1/chat/completions"
    assert upstream["headers"]["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert upstream["body"]["model"] == "gpt-4o"
    assert upstream["body"]["temperature"] == 0.25
    assert upstream["body"]["top_p"] == 0.5
    assert upstream["body"]["stop"] == ["END"]
    assert upstream["body"]["max_completion_tokens"] == 20
    assert upstream["body"]["messages"] == [{"role": "user", "content": "hello"}]


def test_generate_translates_system_and_messages_for_anthropic(
    client: httpx2.Client, simulator: Simulator
) -> None:
    response = client.post(
        "/generate",
        json={
            "provider": "anthropic",
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "Again"},
            ],
            "temperature": 1.5,
            "stop": "zzz",
        },
    )

    assert response.status_code == 200, response.text
    upstream = simulator.last_request()
    assert upstream["path"] == "/v1/messages"
    assert ANTHROPIC_TEST_KEY in (
        upstream["headers"].get("x-api-key", "") + upstream["headers"].get("authorization", "")
    )
    assert upstream["body"]["system"] == "Be brief."
    assert [m["role"] for m in upstream["body"]["messages"]] == ["user", "assistant", "user"]
    assert upstream["body"]["max_tokens"] == 64  # the provider's default_max_tokens
    assert upstream["body"]["temperature"] == 1.0  # clamped to Anthropic's range
    assert upstream["body"]["stop_sequences"] == ["zzz"]


def test_generate_reports_length_when_max_tokens_cuts_the_answer(
    client: httpx2.Client, simulator: Simulator
) -> None:
    body = client.post(
        "/generate", json={"provider": "anthropic", "prompt": "a b c d e f", "max_tokens": 3}
    ).json()

    assert body["finish_reason"] == "length"
    assert body["usage"]["output_tokens"] == 3


def test_the_request_id_is_returned_and_passed_upstream(
    client: httpx2.Client, simulator: Simulator
) -> None:
    response = client.post(
        "/generate", json={"provider": "openai", "prompt": "x"}, headers={"X-Request-ID": "req-42"}
    )

    assert response.headers["X-Request-ID"] == "req-42"
    assert simulator.last_request()["headers"]["x-request-id"] == "req-42"


def test_a_request_without_an_id_is_given_a_fresh_one(client: httpx2.Client) -> None:
    ids = [
        client.post("/generate", json={"provider": "openai", "prompt": "x"}).headers["X-Request-ID"]
        for _ in range(2)
    ]

    assert all(re.fullmatch(r"[0-9a-f]{32}", request_id) for request_id in ids), ids
    assert ids[0] != ids[1]


# --- /stream -----------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_sends_one_event_per_delta_then_a_final_event_then_done(
    client: httpx2.Client, simulator: Simulator, provider: str
) -> None:
    with client.stream("POST", "/stream", json={"provider": provider, "prompt": "one two"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = list(sse_events(r))

    assert events[-1] == "[DONE]"
    final = events[-2]
    deltas = events[:-2]
    text = "".join(event["content"] for event in deltas)
    assert text.endswith(": one two")
    assert all(set(event) == {"content"} and event["content"] for event in deltas)
    assert final["content"] == ""
    assert final["finish_reason"] == "stop"
    assert final["usage"]["output_tokens"] == len(deltas)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_is_incremental(
    client: httpx2.Client, simulator: Simulator, provider: str
) -> None:
    # 8 tokens at 10 tokens/s: the upstream needs ~0.8 s to finish after its first token.
    simulator.set(token_rate=10)
    arrivals = []
    with client.stream(
        "POST", "/stream", json={"provider": provider, "prompt": "w1 w2 w3 w4"}
    ) as response:
        for event in sse_events(response):
            arrivals.append((time.monotonic(), event))
    first_delta_at = next(at for at, event in arrivals if isinstance(event, dict))
    done_at = arrivals[-1][0]

    assert arrivals[-1][1] == "[DONE]"
    assert done_at - first_delta_at > 0.4


def test_stream_error_before_the_first_byte_gets_a_proper_status(
    client: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 429, "retry_after": 7})

    response = client.post("/stream", json={"provider": "openai", "prompt": "x"})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert error_of(response)["type"] == "rate_limited"


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ({"reset_after_tokens": 2}, "could not be reached or dropped the connection"),
        ({"garbled_after_tokens": 2}, "sent an answer the router cannot read (JSONDecodeError: "),
    ],
    ids=["connection reset", "event not JSON"],
)
def test_stream_error_after_the_first_byte_is_an_error_event(
    client: httpx2.Client, simulator: Simulator, provider: str, fault: dict[str, int], message: str
) -> None:
    simulator.fail_next(fault)

    with client.stream("POST", "/stream", json={"provider": provider, "prompt": "a b c"}) as r:
        assert r.status_code == 200
        events = list(sse_events(r))

    assert [e for e in events if isinstance(e, dict) and "content" in e]
    error = events[-1]["error"]
    assert error["type"] == "upstream_unavailable"
    assert error["message"].startswith(f"provider {provider!r} {message}")
    assert "[DONE]" not in events


def test_stream_error_event_from_upstream_reaches_the_client(
    client: httpx2.Client, simulator: Simulator
) -> None:
    simulator.fail_next({"error_event_after_tokens": 1})

    with client.stream("POST", "/stream", json={"provider": "anthropic", "prompt": "a b"}) as r:
        events = list(sse_events(r))

    assert events[-1]["error"]["type"] == "upstream_unavailable"
    assert "mid-stream" in events[-1]["error"]["message"]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_answer_that_is_not_json_gets_502_saying_it_is_unreadable(
    client: httpx2.Client, simulator: Simulator, provider: str
) -> None:
    simulator.fail_next({"garbled_after_tokens": 0})

    response = client.post("/generate", json={"provider": provider, "prompt": "a b"})

    assert response.status_code == 502
    assert error_of(response)["message"].startswith(
        f"provider {provider!r} sent an answer the router cannot read (JSONDecodeError: "
    )


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "param", "fragment"),
    [
        ("{not json", 400, None, "not valid JSON"),
        ("[1, 2]", 400, None, "must be a JSON object"),
        ("", 400, None, "empty"),
        ({"provider": "openai"}, 400, "prompt", "nothing to answer"),
        ({"provider": "openai", "prompt": "x", "max_tokens": "many"}, 400, "max_tokens", ""),
        ({"provider": "openai", "prompt": "x", "max_tokens": 0}, 400, "max_tokens", "at least 1"),
        ({"provider": "openai", "prompt": "x", "colour": "red"}, 400, "colour", "not a known"),
        (
            {"provider": "openai", "prompt": "x", "parameters": {"warmth": "1"}},
            400,
            "parameters.warmth",
            "not a known parameter",
        ),
        (
            {"provider": "openai", "prompt": "x", "parameters": {"temperature": "hot"}},
            400,
            "parameters.temperature",
            "must be a number",
        ),
        ({"provider": "openai", "prompt": "x", "temperature": 3}, 400, "temperature", "between"),
        ({"provider": "mystery", "prompt": "x"}, 404, "provider", "unknown provider 'mystery'"),
        ({"model": "gpt-4o", "prompt": "x"}, 404, "model", "neither an alias nor provider/model"),
        ({"prompt": "x"}, 400, "provider", "set `provider`"),
    ],
)
@pytest.mark.parametrize("path", ["/generate", "/stream"])
def test_bad_requests_get_a_status_and_a_message_naming_the_field(
    client: httpx2.Client,
    simulator: Simulator,
    path: str,
    body: Any,
    status: int,
    param: str | None,
    fragment: str,
) -> None:
    content = body if isinstance(body, str) else json.dumps(body)

    response = client.post(path, content=content, headers={"Content-Type": "application/json"})

    assert response.status_code == status
    error = error_of(response)
    assert error["param"] == param
    assert fragment in error["message"]
    assert simulator.requests() == []  # nothing reached the provider


def test_a_body_over_the_limit_is_413(client: httpx2.Client, simulator: Simulator) -> None:
    response = client.post("/generate", json={"provider": "openai", "prompt": "x" * 100_000})

    assert response.status_code == 413
    assert "limit of 65536 bytes" in error_of(response)["message"]
    assert simulator.requests() == []


UPSTREAM_FAILURES = [
    ({"status": 500}, 502, "upstream_unavailable"),
    ({"status": 503}, 503, "upstream_unavailable"),
    ({"status": 429, "retry_after": 3}, 429, "rate_limited"),
    ({"status": 401}, 502, "upstream_auth_failed"),
    ({"status": 403}, 502, "upstream_auth_failed"),
    ({"status": 400, "message": "bad stop"}, 400, "upstream_rejected"),
    ({"status": 404, "message": "no such model"}, 404, "upstream_rejected"),
    ({"delay": 5}, 504, "upstream_timeout"),
    ({"reset_after_tokens": 0}, 502, "upstream_unavailable"),
]
# 529 "overloaded" is Anthropic's alone.
FAILURE_CASES = [(provider, *case) for provider in PROVIDERS for case in UPSTREAM_FAILURES] + [
    ("anthropic", {"status": 529}, 503, "upstream_unavailable")
]


@pytest.mark.parametrize(("provider", "fault", "status", "error_type"), FAILURE_CASES)
def test_upstream_failures_map_to_precise_statuses(
    client: httpx2.Client,
    simulator: Simulator,
    provider: str,
    fault: dict[str, Any],
    status: int,
    error_type: str,
) -> None:
    simulator.fail_next(fault)

    response = client.post("/generate", json={"provider": provider, "prompt": "x"})

    assert response.status_code == status
    error = error_of(response)
    assert error["type"] == error_type
    assert provider in error["message"]
    assert OPENAI_TEST_KEY not in response.text and ANTHROPIC_TEST_KEY not in response.text


def test_an_unreachable_provider_is_502() -> None:
    closed_port = free_port()  # nothing listens there
    settings = settings_from_mapping(
        {"providers": {"openai": {"default_model": "m", "max_retries": 0}}},
        {"OPENAI_API_KEY": OPENAI_TEST_KEY, "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port}"},
    )
    client = create_app(settings).test_client()

    response = client.post("/generate", json={"provider": "openai", "prompt": "x"})

    error = response.get_json()["error"]
    assert response.status_code == 502
    assert error["type"] == "upstream_unavailable"
    assert "could not be reached" in error["message"]


def test_unknown_paths_and_methods_are_json_errors(client: httpx2.Client) -> None:
    missing = client.get("/nowhere")
    wrong_method = client.get("/generate")

    assert missing.status_code == 404 and error_of(missing)["type"] == "not_found"
    assert wrong_method.status_code == 405 and "GET /generate" in error_of(wrong_method)["message"]


def _routing_app() -> Any:
    settings = settings_from_mapping(
        {"providers": {"openai": {"default_model": "m"}}}, {"OPENAI_API_KEY": OPENAI_TEST_KEY}
    )
    return create_app(settings)


ROUTED = [
    *[("POST", path) for path in ["/generate", "/stream", "/v1/chat/completions", "/v1/messages"]],
    ("GET", "/v1/models"), ("GET", "/v1/models/openai/m"), ("HEAD", "/healthz"), ("OPTIONS", "/stream"),
    ("GET", "/generate"), ("POST", "/generate/"), ("POST", "/v1//models"), ("GET", "/nowhere"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTED)
def test_a_request_finds_the_rule_werkzeug_would_find(method: str, path: str) -> None:
    app = _routing_app()
    adapter = app.url_map.bind("localhost")
    try:
        expected: Any = adapter.match(path, method, return_rule=True)
    except Exception as exc:  # noqa: BLE001  # the routing exception is the expectation
        expected = type(exc)

    with app.test_request_context(path, method=method) as context:
        found = context.request.routing_exception
        found = type(found) if found else (context.request.url_rule, context.request.view_args)

    assert found == expected


def test_an_exactly_routed_request_still_builds_urls_and_answers_options() -> None:
    app = _routing_app()

    with app.test_request_context("/v1/chat/completions", method="POST") as context:
        assert context.request.endpoint == "openai_api.chat_completions"
        assert flask.url_for("openai_api.get_model", model_id="openai/m") == "/v1/models/openai/m"
    options = app.test_client().options("/v1/chat/completions")

    assert options.status_code == 200
    assert set(options.headers["Allow"].split(", ")) == {"POST", "OPTIONS"}


# --- health ------------------------------------------------------------------------------------


def test_healthz_and_readyz(client: httpx2.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["providers"] == {
        "openai": {"ready": True},
        "anthropic": {"ready": True},
        "spare": {"ready": False, "reason": "SPARE_API_KEY is not set"},
    }


@pytest.mark.parametrize("path", ["/generate", "/stream"])
def test_a_provider_without_a_key_is_503_naming_the_variable(
    client: httpx2.Client, simulator: Simulator, path: str
) -> None:
    response = client.post(path, json={"provider": "spare", "prompt": "x"})

    assert response.status_code == 503
    error = error_of(response)
    assert error["type"] == "provider_not_configured"
    assert "set the environment variable SPARE_API_KEY" in error["message"]
    assert simulator.requests() == []
