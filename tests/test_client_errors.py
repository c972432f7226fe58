"""A client's mistake is its own: a precise 4xx naming the field, found before any upstream is
tried, never retried and never cooling a target down for anyone else. And a fault of the
router's own is a 500 of its own type with the request id, logged once.

In-process: the real Flask app, on a fake upstream (providers/fake_transport.py) that records
every request it is sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from ai_router.config import settings_from_mapping
from ai_router.errors import LimitReached
from ai_router.http_api.app import create_app
from ai_router.http_api.errors import error_headers
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.router import Router, build_providers

OPENAI_ANSWER = {
    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}
ANTHROPIC_ANSWER = {
    "content": [{"type": "text", "text": "hello"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
PROVIDERS = {
    "openai": {"default_model": "gpt-4o-mini", "max_retries": 2},
    "anthropic": {"default_model": "claude", "max_retries": 2},
}
FAST = {"targets": ["openai/gpt-4o-mini", "anthropic/claude"]}
KEY = "sk-router-team"


@pytest.fixture(autouse=True)
def own_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's router keeps its state (the default, relative state.path) in a directory of
    its own: the counts of one test's keys never reach another's, nor the next run's."""
    monkeypatch.chdir(tmp_path)


def answer(request: FakeRequest) -> FakeAnswer:
    return FakeAnswer.of_json(OPENAI_ANSWER if "chat/completions" in request.url else ANTHROPIC_ANSWER)


def app_on(
    handler: Callable[[FakeRequest], FakeAnswer] = answer, **sections: Any
) -> tuple[FlaskClient, FakeUpstream]:
    settings = settings_from_mapping(
        {"providers": PROVIDERS, "models": {"fast": FAST}, **sections},
        {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "ADMIN_KEY": "sk-admin"},
    )
    upstream = FakeUpstream(handler)
    router = Router(settings, build_providers(settings, upstream.connect))
    return create_app(settings, router).test_client(), upstream


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.get_json()["error"]
    return body


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"max_tokens": 10**30}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"top_k": 10**25}, "top_k"),
        ({"parameters": {"top_k": "99999999999999999999999"}}, "top_k"),
        ({"parameters": {"top_k": 10**25}}, "top_k"),
        ({"messages": [None]}, "messages[0]"),
    ],
)
def test_a_value_out_of_range_is_refused_before_any_upstream_and_cools_nothing_down(
    body: dict[str, Any], param: str
) -> None:
    client, upstream = app_on()
    request = {"model": "fast", **body}
    if "messages" not in body:
        request["prompt"] = "hi"

    # The stdlib's json: the app's own (orjson) cannot write an integer over 64 bits.
    refused = client.post("/generate", data=json.dumps(request), content_type="application/json")

    assert refused.status_code == 400, refused.get_json()
    assert error_of(refused)["param"] == param
    assert upstream.requests == []
    # Everyone else's requests to the alias go on as before.
    for _ in range(5):
        assert client.post("/generate", json={"model": "fast", "prompt": "hi"}).status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages"])
@pytest.mark.parametrize("value", [10**30, True, 0])
def test_a_relayed_bodys_token_limit_is_checked_too(path: str, value: object) -> None:
    client, upstream = app_on()
    model = "openai/gpt-4o-mini" if path.endswith("completions") else "anthropic/claude"

    body = {"model": model, "max_tokens": value, "messages": [{"role": "user", "content": "x"}]}
    refused = client.post(path, data=json.dumps(body), content_type="application/json")

    assert refused.status_code == 400
    assert upstream.requests == []


def test_tool_call_arguments_nested_past_any_reason_are_refused_naming_them() -> None:
    client, upstream = app_on()
    deep = "[" * 100_000 + "]" * 100_000
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "w", "arguments": deep}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]  # fmt: skip

    refused = client.post("/v1/chat/completions", json={"model": "anthropic/claude", "messages": messages})

    assert refused.status_code == 400
    assert error_of(refused)["param"] == "messages[1].tool_calls[0].function.arguments"
    assert upstream.requests == []


def nested_schema(levels: int) -> dict[str, Any]:
    """A JSON schema whose objects nest `levels` deep (each level is two of JSON's)."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def tool_request(path: str, model: str, parameters: dict[str, Any]) -> dict[str, Any]:
    message = [{"role": "user", "content": "hi"}]
    if path == "/v1/messages":
        return {"model": model, "max_tokens": 10, "messages": message,
                "tools": [{"name": "f", "input_schema": parameters}]}  # fmt: skip
    if path == "/v1/responses":
        return {"model": model, "input": "hi",
                "tools": [{"type": "function", "name": "f", "parameters": parameters}]}  # fmt: skip
    return {"model": model, "messages": message,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}]}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/chat/completions", "openai/gpt-4o-mini"),  # relayed as it came
        ("/v1/chat/completions", "anthropic/claude"),  # translated
        ("/v1/messages", "anthropic/claude"),
        ("/v1/messages", "openai/gpt-4o-mini"),
        ("/v1/responses", "anthropic/claude"),
    ],
)
def test_a_body_nested_deeper_than_the_router_writes_is_a_400_not_a_fault_of_its_own(
    path: str, model: str
) -> None:
    # orjson reads 1,024 levels but writes only 254: a body between the two once reached the
    # upstream's serialisation and came back as a 500 of the router's own.
    client, upstream = app_on()

    refused = client.post(path, json=tool_request(path, model, nested_schema(100)))
    served = client.post(path, json=tool_request(path, model, nested_schema(20)))

    assert refused.status_code == 400, refused.get_json()
    assert "more than 128 levels deep" in json.dumps(refused.get_json())
    assert served.status_code == 200, served.get_json()
    assert len(upstream.requests) == 1


def test_a_fault_of_the_routers_own_is_a_500_with_the_request_id_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(request: FakeRequest) -> FakeAnswer:
        raise RuntimeError("a bug in the router")

    client, _ = app_on(broken)

    with caplog.at_level(logging.ERROR):
        response = client.post("/generate", json={"provider": "openai", "prompt": "hi"},
                               headers={"X-Request-ID": "bug-1"})

    error = error_of(response)
    assert response.status_code == 500
    assert error["type"] == "internal_error" and error["request_id"] == "bug-1"
    assert "bug-1" in error["message"] and "a bug in the router" not in error["message"]
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(logged) == 1 and logged[0].exc_info is not None


def test_a_retry_after_is_rounded_up_never_down() -> None:
    assert error_headers(LimitReached("wait", retry_after=10.4)) == {"Retry-After": "11"}
    assert error_headers(LimitReached("wait", retry_after=0.2)) == {"Retry-After": "1"}


def test_a_method_not_allowed_says_which_are() -> None:
    client, _ = app_on()

    response = client.get("/generate")

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"POST"}


# --- pages in browsers -------------------------------------------------------------------------


def test_a_page_from_another_origin_is_refused_and_an_allowed_one_gets_cors() -> None:
    client, upstream = app_on(server={"allowed_origins": ["https://app.example"]})
    body = {"provider": "openai", "prompt": "hi"}

    evil = client.post("/generate", json=body, headers={"Origin": "https://evil.example"})
    form = client.post("/generate", data="x=1", headers={"Origin": "https://evil.example"})
    allowed = client.post("/generate", json=body, headers={"Origin": "https://app.example"})
    preflight = client.options("/generate", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
    no_origin = client.post("/generate", json=body)  # curl, the SDKs

    assert evil.status_code == form.status_code == 403
    assert error_of(evil)["type"] == "permission_denied"
    assert len(upstream.requests) == 2  # the allowed page's and curl's
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert preflight.status_code == 200 and "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert no_origin.status_code == 200 and "Access-Control-Allow-Origin" not in no_origin.headers


# --- keys --------------------------------------------------------------------------------------


def keyed(**key: Any) -> dict[str, Any]:
    entry = {"name": "team", "key_sha256": hashlib.sha256(KEY.encode()).hexdigest(), **key}
    return {"auth": {"keys": [entry], "admin_key_env": "ADMIN_KEY", "metrics_need_admin_key": True}}


BEARER = {"Authorization": f"Bearer {KEY}"}


def test_a_keys_models_are_matched_against_provider_and_model_however_they_are_named() -> None:
    client, _ = app_on(**keyed(models=["openai/*"]))

    for body in (
        {"provider": "openai", "prompt": "hi"},
        {"provider": "openai", "model": "gpt-4o-mini", "prompt": "hi"},
        {"model": "openai/gpt-4o-mini", "prompt": "hi"},
    ):
        assert client.post("/generate", json=body, headers=BEARER).status_code == 200, body
    refused = client.post("/generate", json={"provider": "anthropic", "prompt": "hi"}, headers=BEARER)
    listed = client.get("/v1/models", headers=BEARER).get_json()["data"]

    assert refused.status_code == 403
    assert [model["id"] for model in listed] == ["openai/gpt-4o-mini"]
    assert client.get("/v1/models/anthropic/claude", headers=BEARER).status_code == 404


def test_a_request_that_could_cost_more_than_the_whole_budget_is_refused_not_told_to_wait() -> None:
    client, upstream = app_on(
        **keyed(budget_usd=0.001),
        prices={"openai/gpt-4o-mini": {"input": 1.0, "output": 1000.0}},
    )

    refused = client.post("/generate", json={"provider": "openai", "prompt": "hi", "max_tokens": 100},
                          headers=BEARER)

    assert refused.status_code == 400 and "Retry-After" not in refused.headers
    assert error_of(refused)["param"] == "max_tokens"
    assert upstream.requests == []


def test_metrics_want_the_admin_key_when_so_configured() -> None:
    client, _ = app_on(**keyed())

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=BEARER).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer sk-admin"}).status_code == 200


def test_the_usage_of_an_unknown_key_does_not_echo_what_was_asked() -> None:
    client, _ = app_on(**keyed())

    response = client.get(f"/v1/usage?key={KEY}", headers={"Authorization": "Bearer sk-admin"})

    assert response.status_code == 404 and KEY not in response.get_data(as_text=True)
