"""The OpenAPI document (GET /openapi.json) and its page (GET /docs).

The document is valid OpenAPI 3.1, names every route the app serves and nothing else, and is
true: real answers of the running server (gunicorn + gevent, against the simulator) validate
against it, with JSON Schema draft 2020-12 resolving its $refs into the components: successes,
every stream event, and errors of each API family.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import httpx2
import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from support import Simulator

from ai_router.config import settings_from_mapping
from ai_router.http_api.app import create_app
from ai_router.http_api.docs.openapi import ENDPOINTS, build_document

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
EMBEDDING_MODEL = "openai/text-embedding-3-small"
MODELS = [OPENAI_MODEL, ANTHROPIC_MODEL]  # relayed to the same family, or translated
HELLO = [{"role": "user", "content": "hello there"}]
OPENAI_TOOL = {"type": "function", "function": {"name": "weather", "parameters": {}}}
ANTHROPIC_TOOL = {"name": "weather", "input_schema": {"type": "object"}}
RESPONSES_TOOL = {"type": "function", "name": "weather", "parameters": {"type": "object"}}
# What a Responses body adds for each kind of answer: text, a function call, reasoning first.
RESPONSES_KINDS: dict[str, dict[str, Any]] = {
    "text": {},
    "tool call": {"tools": [RESPONSES_TOOL]},
    "reasoning": {"reasoning": {"effort": "low", "summary": "auto"}},
}
DOCUMENT_URI = "urn:ai-router:openapi"


class Spec:
    """The document, and a check that a real response is one it documents."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        resource = Resource.from_contents(document, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)

    def check(self, response: httpx2.Response, path: str, method: str) -> list[Any]:
        """Assert that `response` is documented for `method path`: its status, its media type,
        and its body (each event's data, for a stream). Returns the body, or the events."""
        responses = self.document["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method.upper()} {path} answered {status}: undocumented"
        media_type = response.headers["content-type"].split(";")[0]
        content = responses[status]["content"]
        documented = [media.split(";")[0] for media in content]
        assert media_type in documented, f"{media_type} is not among {documented}"
        schema = self.schema_of(path, method, status, list(content)[documented.index(media_type)])
        if media_type == "text/event-stream":
            events = list(sse_events(response.text))
            assert events, "a stream with no event"
            for name, data in events:
                self.validate(data, schema)
                if name is not None:  # Anthropic's named events
                    assert name == data["type"]
            return [data for _, data in events]
        if media_type == "application/json":
            self.validate(response.json(), schema)
            return [response.json()]
        return [response.text]

    def validate(self, instance: Any, pointer: str) -> None:
        validator = Draft202012Validator({"$ref": DOCUMENT_URI + pointer}, registry=self.registry)
        error = best_match(validator.iter_errors(instance))
        assert error is None, f"{error.message} at {list(error.absolute_path)} in {instance}"

    def component(self, name: str) -> str:
        return f"#/components/schemas/{name}"

    def schema_of(
        self, path: str, method: str, status: str, media_type: str = "application/json"
    ) -> str:
        """Where the document keeps the schema of a response."""
        return (
            f"#/paths/{_escape(path)}/{method}/responses/{status}/content/{_escape(media_type)}"
            "/schema"
        )


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


def sse_events(text: str) -> Iterator[tuple[str | None, Any]]:
    """(event name or None, data JSON) of each event; `data: [DONE]` ends it."""
    for block in re.split(r"\r?\n\r?\n", text):
        name = None
        for line in block.splitlines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and line != "data: [DONE]":
                yield name, json.loads(line.removeprefix("data: "))


@pytest.fixture(scope="module")
def served_document(http_url: str) -> dict[str, Any]:
    response = httpx2.get(f"{http_url}/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture(scope="module")
def spec(served_document: dict[str, Any]) -> Spec:
    return Spec(served_document)


def post_json(client: httpx2.Client, path: str, body: Any) -> httpx2.Response:
    content = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


# --- the document ---------------------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1(served_document: dict[str, Any]) -> None:
    assert served_document["openapi"].startswith("3.1.")
    validate_openapi(served_document)


def test_the_served_document_is_built_from_the_code(served_document: dict[str, Any]) -> None:
    app = create_app(settings_from_mapping({"providers": {"openai": {"default_model": "m"}}}, {}))
    assert served_document == json.loads(json.dumps(build_document(app)))


def test_every_route_of_the_app_is_documented_and_nothing_else() -> None:
    settings = settings_from_mapping({"providers": {"openai": {"default_model": "m"}}}, {})
    app = create_app(settings)
    routes = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower(), rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    listed = {(endpoint.path, endpoint.method, endpoint.view) for endpoint in ENDPOINTS}
    paths = build_document(app)["paths"]

    assert listed == routes
    assert {(path, method) for path in paths for method in paths[path]} == {
        (path, method) for path, method, _ in routes
    }


def test_what_wants_a_router_key_is_documented_so(served_document: dict[str, Any]) -> None:
    paths = served_document["paths"]
    keyed = {
        (path, method)
        for path, methods in paths.items()
        for method, operation in methods.items()
        if {"bearer": []} in operation.get("security", [])
    }

    assert keyed == {
        ("/generate", "post"),
        ("/stream", "post"),
        ("/v1/chat/completions", "post"),
        ("/v1/embeddings", "post"),
        ("/v1/messages", "post"),
        ("/v1/messages/count_tokens", "post"),
        ("/v1/models", "get"),
        ("/v1/models/{model_id}", "get"),
        ("/v1/responses", "post"),
        ("/v1/responses/{response_id}", "get"),
        ("/v1/responses/{response_id}", "delete"),
        ("/v1/responses/{response_id}/input_items", "get"),
        ("/v1/usage", "get"),  # the admin key
    }
    assert "401" in paths["/v1/models"]["get"]["responses"]
    assert paths["/v1/usage"]["get"]["security"] == [{"bearer": []}]


def test_components_are_named_after_their_models(served_document: dict[str, Any]) -> None:
    names = served_document["components"]["schemas"]
    # pydantic qualifies a name with its module when two models share it: none do.
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) for name in names), sorted(names)
    for name in ("GenerateBody", "ChatCompletionRequest", "MessagesRequest"):
        assert name in names  # the request models, exactly as the endpoints validate with


@pytest.mark.parametrize(
    ("path", "error_body"),
    [
        ("/generate", "NativeError"),
        ("/stream", "NativeError"),
        ("/v1/chat/completions", "OpenAIError"),
        ("/v1/responses", "OpenAIError"),
        ("/v1/embeddings", "OpenAIError"),
        ("/v1/messages", "AnthropicError"),
        ("/v1/messages/count_tokens", "AnthropicError"),
    ],
)
def test_generation_endpoints_document_every_error_status_in_their_family_format(
    served_document: dict[str, Any], path: str, error_body: str
) -> None:
    responses = served_document["paths"][path]["post"]["responses"]

    # The README's Errors table, and the router keys' 401 and 403.
    for status in ("400", "401", "403", "404", "413", "429", "502", "503", "504"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{error_body}"}, status
    assert "Retry-After" in responses["429"]["headers"]
    assert "499" not in responses  # a cancelled request's client has gone


def test_streams_are_documented_as_server_sent_events(served_document: dict[str, Any]) -> None:
    paths = served_document["paths"]
    stream = paths["/stream"]["post"]["responses"]["200"]["content"]
    chat = paths["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    messages = paths["/v1/messages"]["post"]["responses"]["200"]["content"]
    responses = paths["/v1/responses"]["post"]["responses"]["200"]["content"]

    assert list(stream) == ["text/event-stream"]
    assert set(chat) == set(messages) == set(responses) == {"application/json", "text/event-stream"}
    assert chat["text/event-stream"]["schema"]["$ref"].endswith("/ChatCompletionStreamEvent")
    assert messages["text/event-stream"]["schema"]["$ref"].endswith("/MessageStreamEvent")
    assert responses["text/event-stream"]["schema"]["$ref"].endswith("/ResponseStreamEvent")


def test_the_check_catches_an_answer_the_document_does_not_allow(spec: Spec) -> None:
    answer = {"content": "hi", "provider": "openai", "model": "m", "finish_reason": "stop"}
    with pytest.raises(AssertionError, match="usage"):
        spec.validate(answer, spec.component("GenerateResponse"))
    with pytest.raises(AssertionError):
        spec.validate({**answer, "finish_reason": "tired"}, spec.component("GenerateResponse"))


# --- the native API -------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_generate_answers_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, provider: str
) -> None:
    response = client.post("/generate", json={"provider": provider, "prompt": "Say hi"})

    assert response.status_code == 200
    spec.check(response, "/generate", "post")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_every_stream_event_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, provider: str
) -> None:
    response = client.post("/stream", json={"provider": provider, "prompt": "one two three"})

    assert response.status_code == 200
    events = spec.check(response, "/stream", "post")
    assert events[-1]["finish_reason"] == "stop"
    assert response.text.endswith("data: [DONE]\n\n")


def test_an_error_event_mid_stream_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})

    response = client.post("/stream", json={"provider": "openai", "prompt": "a b c"})

    events = spec.check(response, "/stream", "post")
    assert events[-1]["error"]["type"] == "upstream_unavailable"


@pytest.mark.parametrize(
    ("body", "fault", "status"),
    [
        ("{not json", None, 400),
        ({"provider": "openai", "prompt": "x", "colour": "red"}, None, 400),
        ({"provider": "mystery", "prompt": "x"}, None, 404),
        ({"provider": "openai", "prompt": "x" * 100_000}, None, 413),
        ({"provider": "openai", "prompt": "x"}, {"status": 500}, 502),
        ({"provider": "anthropic", "prompt": "x"}, {"status": 429, "retry_after": 3}, 429),
        ({"provider": "spare", "prompt": "x"}, None, 503),  # no key: provider_not_configured
        ({"provider": "anthropic", "prompt": "x"}, {"delay": 5}, 504),
    ],
)
@pytest.mark.parametrize("path", ["/generate", "/stream"])
def test_native_errors_are_documented(
    client: httpx2.Client,
    spec: Spec,
    simulator: Simulator,
    path: str,
    body: Any,
    fault: dict[str, Any] | None,
    status: int,
) -> None:
    if fault is not None:
        simulator.fail_next(fault)

    response = post_json(client, path, body)

    assert response.status_code == status
    [error] = spec.check(response, path, "post")
    assert error["error"]["request_id"] == response.headers["X-Request-ID"]


# --- the OpenAI API -------------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool call"])
def test_chat_completions_answer_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, tools: bool
) -> None:
    body: dict[str, Any] = {"model": model, "messages": HELLO, "max_tokens": 20}
    if tools:
        body["tools"] = [OPENAI_TOOL]

    response = client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200, response.text
    [completion] = spec.check(response, "/v1/chat/completions", "post")
    assert ("tool_calls" in completion["choices"][0]["message"]) == tools


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool call"])
def test_every_chat_completion_chunk_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, tools: bool
) -> None:
    body: dict[str, Any] = {
        "model": model,
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if tools:
        body["tools"] = [OPENAI_TOOL]

    response = client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200, response.text
    chunks = spec.check(response, "/v1/chat/completions", "post")
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert response.text.endswith("data: [DONE]\n\n")


@pytest.mark.parametrize("model", MODELS)
def test_an_openai_error_event_mid_stream_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})
    body = {"model": model, "messages": HELLO, "stream": True}

    response = client.post("/v1/chat/completions", json=body)

    events = spec.check(response, "/v1/chat/completions", "post")
    assert "error" in events[-1]


@pytest.mark.parametrize(
    ("body", "fault", "status"),
    [
        ("{not json", None, 400),
        ({"model": ANTHROPIC_MODEL, "messages": HELLO, "n": 2}, None, 400),
        ({"model": "nobody/nothing", "messages": HELLO}, None, 404),
        ({"model": OPENAI_MODEL, "messages": HELLO}, {"status": 500}, 502),
        ({"model": ANTHROPIC_MODEL, "messages": HELLO}, {"status": 500}, 502),
    ],
)
def test_openai_errors_are_documented(
    client: httpx2.Client,
    spec: Spec,
    simulator: Simulator,
    body: Any,
    fault: dict[str, Any] | None,
    status: int,
) -> None:
    if fault is not None:
        simulator.fail_next(fault)

    response = post_json(client, "/v1/chat/completions", body)

    assert response.status_code == status
    [error] = spec.check(response, "/v1/chat/completions", "post")
    assert set(error["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_answer_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, encoding: str
) -> None:
    body = {"model": EMBEDDING_MODEL, "input": ["hello", "there"], "encoding_format": encoding}

    response = client.post("/v1/embeddings", json=body)

    assert response.status_code == 200, response.text
    [embeddings] = spec.check(response, "/v1/embeddings", "post")
    assert len(embeddings["data"]) == 2


@pytest.mark.parametrize(
    ("body", "fault", "status"),
    [
        ({"model": ANTHROPIC_MODEL, "input": "hi"}, None, 400),  # no embeddings there
        ({"model": EMBEDDING_MODEL, "input": ""}, None, 400),  # the upstream refuses it
        ({"model": EMBEDDING_MODEL, "input": "hi"}, {"status": 500}, 502),
    ],
)
def test_embeddings_errors_are_documented(
    client: httpx2.Client,
    spec: Spec,
    simulator: Simulator,
    body: Any,
    fault: dict[str, Any] | None,
    status: int,
) -> None:
    if fault is not None:
        simulator.fail_next(fault)

    response = post_json(client, "/v1/embeddings", body)

    assert response.status_code == status
    [error] = spec.check(response, "/v1/embeddings", "post")
    assert set(error["error"]) == {"message", "type", "param", "code"}


def test_models_are_listed_as_documented(client: httpx2.Client, spec: Spec) -> None:
    [models] = spec.check(client.get("/v1/models"), "/v1/models", "get")
    [one] = spec.check(client.get(f"/v1/models/{OPENAI_MODEL}"), "/v1/models/{model_id}", "get")
    missing = client.get("/v1/models/nobody/nothing")

    assert one in models["data"]
    assert missing.status_code == 404
    spec.check(missing, "/v1/models/{model_id}", "get")


def test_usage_without_the_admin_key_is_a_documented_refusal(
    client: httpx2.Client, spec: Spec
) -> None:
    response = client.get("/v1/usage", params={"key": "team"})

    assert response.status_code == 401
    spec.check(response, "/v1/usage", "get")


def test_usage_with_the_admin_key_answers_as_documented(spec: Spec, tmp_path: Path) -> None:
    environ = {"OPENAI_API_KEY": "sk-unused", "ADMIN_KEY": "admin-secret", "TEAM_KEY": "team"}
    settings = settings_from_mapping(
        {
            "providers": {"openai": {"default_model": "m"}},
            "auth": {
                "admin_key_env": "ADMIN_KEY",
                "keys": [
                    {"name": "team", "key_env": "TEAM_KEY", "budget_usd": 5},
                    {"name": "open", "key_env": "TEAM_KEY"},
                ],
            },
            "state": {"path": str(tmp_path / "state.db")},
        },
        environ,
    )
    client = create_app(settings).test_client()
    admin = {"Authorization": "Bearer admin-secret"}

    for name in ("team", "open"):  # with a budget, and without one (nulls)
        response = client.get(f"/v1/usage?key={name}", headers=admin)
        assert response.status_code == 200, response.text
        spec.validate(response.json, spec.schema_of("/v1/usage", "get", "200"))


# --- the Responses API ----------------------------------------------------------------------------
# Relayed to an OpenAI model (the simulator's Responses wire, as OpenAI sends it), translated for
# an Anthropic one (the router's own documents): both are what the document describes.


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", list(RESPONSES_KINDS))
def test_responses_answer_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, kind: str
) -> None:
    body: dict[str, Any] = {"model": model, "input": "hello there", **RESPONSES_KINDS[kind]}

    response = client.post("/v1/responses", json=body)

    assert response.status_code == 200, response.text
    [answer] = spec.check(response, "/v1/responses", "post")
    types = [item["type"] for item in answer["output"]]
    assert types[-1] == ("function_call" if kind == "tool call" else "message")
    assert (types[0] == "reasoning") == (kind == "reasoning")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("kind", list(RESPONSES_KINDS))
def test_every_responses_event_is_documented_and_named_by_its_type(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, kind: str
) -> None:
    body: dict[str, Any] = {"model": model, "input": "hello there", "stream": True}
    body.update(RESPONSES_KINDS[kind])

    response = client.post("/v1/responses", json=body)

    assert response.status_code == 200, response.text
    events = spec.check(response, "/v1/responses", "post")
    assert [events[0]["type"], events[-1]["type"]] == ["response.created", "response.completed"]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    kinds = {event["type"] for event in events}
    expected = {
        "text": "response.output_text.delta",
        "tool call": "response.function_call_arguments.done",
        "reasoning": "response.reasoning_summary_part.done",
    }
    assert expected[kind] in kinds


@pytest.mark.parametrize("model", MODELS)
def test_a_responses_error_event_mid_stream_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})
    body = {"model": model, "input": "a b c d e", "stream": True}

    response = client.post("/v1/responses", json=body)

    events = spec.check(response, "/v1/responses", "post")
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "server_error"
    assert events[-2]["type"] == "response.output_text.delta"


_CALL = {"type": "function_call", "call_id": "call_1", "name": "weather", "arguments": "[1]"}
_CALL_OUTPUT = {"type": "function_call_output", "call_id": "call_1", "output": "18C"}
_JSON_MODE = {"format": {"type": "json_object"}}


@pytest.mark.parametrize(
    ("body", "fault", "status", "param", "code"),
    [
        ("{not json", None, 400, None, None),
        ({"model": ANTHROPIC_MODEL, "input": "hi", "conversation": "c"}, None, 400, "conversation", None),
        ({"model": ANTHROPIC_MODEL, "input": "hi", "text": _JSON_MODE}, None, 400, "text.format", None),
        (
            {"model": ANTHROPIC_MODEL, "input": [*HELLO, _CALL, _CALL_OUTPUT]},
            None,
            400,
            "input[1].arguments",
            None,
        ),
        (
            {"model": OPENAI_MODEL, "input": "hi", "previous_response_id": "resp_nothing"},
            None,
            400,
            "previous_response_id",
            "previous_response_not_found",
        ),
        ({"model": "nobody/nothing", "input": "hi"}, None, 404, "model", None),
        ({"model": OPENAI_MODEL, "input": "hi"}, {"status": 500}, 502, None, None),
        ({"model": ANTHROPIC_MODEL, "input": "hi"}, {"status": 500}, 502, None, None),
    ],
)
def test_responses_errors_are_documented(
    client: httpx2.Client,
    spec: Spec,
    simulator: Simulator,
    body: Any,
    fault: dict[str, Any] | None,
    status: int,
    param: str | None,
    code: str | None,
) -> None:
    if fault is not None:
        simulator.fail_next(fault)

    response = post_json(client, "/v1/responses", body)

    assert response.status_code == status, response.text
    [error] = spec.check(response, "/v1/responses", "post")
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert (error["error"]["param"], error["error"]["code"]) == (param, code)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("stream", [False, True], ids=["unary", "streamed"])
def test_a_stored_response_is_retrieved_listed_and_deleted_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, stream: bool
) -> None:
    created = client.post("/v1/responses", json={"model": model, "input": "hi", "stream": stream})
    assert created.status_code == 200, created.text
    last = spec.check(created, "/v1/responses", "post")[-1]
    answered = last["response"] if stream else last  # the whole response, or the final event's
    response_id = answered["id"]
    one = "/v1/responses/{response_id}"
    items = "/v1/responses/{response_id}/input_items"

    [kept] = spec.check(client.get(f"/v1/responses/{response_id}"), one, "get")
    [listed] = spec.check(client.get(f"/v1/responses/{response_id}/input_items"), items, "get")
    [refused] = spec.check(
        client.get(f"/v1/responses/{response_id}/input_items", params={"order": "up"}), items, "get"
    )
    [deleted] = spec.check(client.delete(f"/v1/responses/{response_id}"), one, "delete")
    gone = [
        (client.get(f"/v1/responses/{response_id}"), one, "get"),
        (client.delete(f"/v1/responses/{response_id}"), one, "delete"),
        (client.get(f"/v1/responses/{response_id}/input_items"), items, "get"),
    ]

    assert kept == answered
    assert [item["type"] for item in listed["data"]] == ["message"]
    assert refused["error"]["param"] == "order"
    assert deleted == {"id": response_id, "object": "response.deleted", "deleted": True}
    for answer, path, method in gone:
        assert answer.status_code == 404
        [error] = spec.check(answer, path, method)
        assert error["error"]["param"] == "response_id"


# --- the Anthropic API ----------------------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool use"])
def test_messages_answer_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, tools: bool
) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 20, "messages": HELLO}
    if tools:
        body["tools"] = [ANTHROPIC_TOOL]

    response = client.post("/v1/messages", json=body)

    assert response.status_code == 200, response.text
    [message] = spec.check(response, "/v1/messages", "post")
    assert message["content"][-1]["type"] == ("tool_use" if tools else "text")


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool use"])
def test_every_anthropic_event_is_documented_and_named_by_its_type(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str, tools: bool
) -> None:
    body: dict[str, Any] = {"model": model, "max_tokens": 20, "messages": HELLO, "stream": True}
    if tools:
        body["tools"] = [ANTHROPIC_TOOL]

    response = client.post("/v1/messages", json=body)

    assert response.status_code == 200, response.text
    events = spec.check(response, "/v1/messages", "post")
    assert [events[0]["type"], events[-1]["type"]] == ["message_start", "message_stop"]


@pytest.mark.parametrize("model", MODELS)
def test_an_anthropic_error_event_mid_stream_is_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, model: str
) -> None:
    simulator.fail_next({"reset_after_tokens": 2})
    body = {"model": model, "max_tokens": 20, "messages": HELLO, "stream": True}

    response = client.post("/v1/messages", json=body)

    events = spec.check(response, "/v1/messages", "post")
    assert events[-1]["type"] == "error"


@pytest.mark.parametrize(
    ("body", "fault", "status"),
    [
        ("{not json", None, 400),
        ({"model": OPENAI_MODEL, "max_tokens": 5, "messages": HELLO, "thinking": {}}, None, 400),
        ({"model": "nobody/nothing", "max_tokens": 5, "messages": HELLO}, None, 404),
        ({"model": ANTHROPIC_MODEL, "max_tokens": 5, "messages": HELLO}, {"status": 500}, 502),
        ({"model": OPENAI_MODEL, "max_tokens": 5, "messages": HELLO}, {"status": 500}, 502),
    ],
)
def test_anthropic_errors_are_documented(
    client: httpx2.Client,
    spec: Spec,
    simulator: Simulator,
    body: Any,
    fault: dict[str, Any] | None,
    status: int,
) -> None:
    if fault is not None:
        simulator.fail_next(fault)

    response = post_json(client, "/v1/messages", body)

    assert response.status_code == status
    [error] = spec.check(response, "/v1/messages", "post")
    assert error["type"] == "error"


def test_a_token_count_answers_as_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator
) -> None:
    body = {"model": ANTHROPIC_MODEL, "messages": HELLO}

    response = client.post("/v1/messages/count_tokens", json=body)

    assert response.status_code == 200, response.text
    [count] = spec.check(response, "/v1/messages/count_tokens", "post")
    assert count == {"input_tokens": 2}


@pytest.mark.parametrize(
    "body",
    [
        {"model": OPENAI_MODEL, "messages": HELLO},  # no token counting there
        {"model": ANTHROPIC_MODEL, "messages": HELLO, "max_tokens": 5},  # the upstream refuses it
    ],
)
def test_token_count_errors_are_documented(
    client: httpx2.Client, spec: Spec, simulator: Simulator, body: Any
) -> None:
    response = post_json(client, "/v1/messages/count_tokens", body)

    assert response.status_code == 400
    [error] = spec.check(response, "/v1/messages/count_tokens", "post")
    assert error["type"] == "error"


# --- operations -----------------------------------------------------------------------------------


def test_health_readiness_and_metrics_answer_as_documented(
    client: httpx2.Client, spec: Spec
) -> None:
    [health] = spec.check(client.get("/healthz"), "/healthz", "get")
    [ready] = spec.check(client.get("/readyz"), "/readyz", "get")
    spec.check(client.get("/metrics"), "/metrics", "get")

    assert health == {"status": "ok"}
    assert ready["providers"]["spare"] == {"ready": False, "reason": "SPARE_API_KEY is not set"}


def test_readiness_with_no_usable_provider_is_a_documented_503(spec: Spec) -> None:
    settings = settings_from_mapping({"providers": {"openai": {"default_model": "m"}}}, {})
    response = create_app(settings).test_client().get("/readyz")

    assert response.status_code == 503
    spec.validate(response.json, spec.schema_of("/readyz", "get", "503"))


def test_the_docs_page_shows_every_endpoint_and_schema_without_scripts_or_the_internet(
    client: httpx2.Client, spec: Spec
) -> None:
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for path, methods in spec.document["paths"].items():
        for method, operation in methods.items():
            assert f'<span class="method {method}">{method}</span> <code>{path}</code>' in page
            assert escape(operation["summary"]) in page
    for name in spec.document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert '<a href="#schema-GenerateBody">' in page  # request bodies link to their schemas
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
