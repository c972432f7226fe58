"""The OpenAPI 3.1 document of the HTTP API: GET /openapi.json, and GET /docs (page.py).

Generated from the code, so it cannot drift from it:

- request bodies are the pydantic models the endpoints validate bodies with;
- answers, stream events and error bodies are the models the endpoints build their JSON through
  (`ResponseModel`s); their schemas are pydantic's, as components (`models_json_schema`);
- each endpoint's error statuses, and the error types behind each, come from the table that
  turns errors into statuses (`errors.documented_statuses`), and the error body's format from
  the path (`errors.family_of`), as the app's error handler picks it;
- which endpoints want a router key comes from the views themselves (`@metered`, `@keyed`).

Written here by hand: the list of endpoints (tests/test_openapi.py checks it against the app's
routes and views), their summaries, and which kinds of error each view raises itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from flask import Blueprint, Flask, Response, current_app
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

import ai_router
from ai_router import errors
from ai_router.http_api import health, native
from ai_router.http_api.docs import page
from ai_router.http_api.errors import NativeError, documented_statuses, family_of
from ai_router.http_api.headers import COST_HEADER, REPLICA_HEADER, REQUEST_ID_HEADER
from ai_router.http_api.scoped import is_keyed
from ai_router.http_api.usage_api import KeyUsage
from ai_router.http_api.v1 import (
    anthropic_messages,
    openai_api,
    openai_chat,
    openai_responses,
    passthrough,
    responses_api,
    responses_documents,
)
from ai_router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"
EVENT_STREAM = "text/event-stream"

_ERROR_BODIES: dict[str, type[BaseModel]] = {
    "native": NativeError,
    "openai": openai_chat.OpenAIError,
    "anthropic": anthropic_messages.AnthropicError,
}
_GENERATION_ERRORS = (errors.RouterError,)  # everything, from a bad body to a failed upstream
_RETRY_STATUSES = (429, 503)  # the errors that may say when to come back
# A router key, needed when auth.keys has any: either header, or none.
_KEYS: tuple[dict[str, list[str]], ...] = ({"bearer": []}, {"x-api-key": []}, {})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # an OpenAPI path template
    view: str  # the Flask endpoint that serves it
    operation_id: str
    tag: str
    summary: str
    description: str = ""
    body: type[BaseModel] | None = None  # the JSON request body, as validated
    answer: type[BaseModel] | None = None  # the JSON answer
    answer_statuses: tuple[int, ...] = (200,)
    events: type[BaseModel] | None = None  # the JSON of one text/event-stream event
    answer_description: str = "OK"
    other_content: dict[str, dict[str, Any]] = field(default_factory=dict)  # non-JSON answers
    raises: tuple[type[errors.RouterError], ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    security: tuple[dict[str, list[str]], ...] | None = None  # default: a router key if keyed
    costed: bool = False  # a unary answer carries its cost header

    def errors(self, keyed: bool) -> tuple[type[errors.RouterError], ...]:
        return self.raises + ((errors.Unauthenticated,) if keyed else ())


_RESPONSE_ID = {
    "name": "response_id",
    "in": "path",
    "required": True,
    "description": "the `id` of a response",
    "schema": {"type": "string"},
}

_STREAM_NOTE = (
    "A failure before the first event is an ordinary error response (below); one after it is "
    "sent as an error event, which ends the stream."
)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "post", "/generate",
        "native.generate", "generate", "native", "One complete answer",
        "`provider` may be omitted when `model` is `provider/model` or an alias; `parameters` "
        "takes the sampling options as a map whose values may be strings.",
        body=native.GenerateBody, answer=native.GenerateResponse,
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "post", "/stream",
        "native.stream", "stream", "native", "A streamed answer (server-sent events)",
        "The body of /generate. Each event's `data:` is one JSON document of the event schema: "
        "one per text delta, then the end with the finish reason and usage, then `data: [DONE]`. "
        + _STREAM_NOTE + " (The error event ends it without [DONE].)",
        body=native.GenerateBody, events=native.GenerateStreamEvent,
        answer_description="Server-sent events: `data: <event JSON>`, then `data: [DONE]`",
        raises=_GENERATION_ERRORS,
    ),
    Endpoint(
        "post", "/v1/chat/completions",
        "openai_api.chat_completions", "createChatCompletion", "openai",
        "OpenAI Chat Completions, unary or streamed",
        "Name the model `provider/model` or an alias. To an OpenAI-family provider the body is "
        "relayed with only `model` changed (the router reads `model` and `stream`), so any field "
        "passes; to another family it is translated, and the schema lists what can be: any "
        "other field set is refused with a 400 naming it. With `stream: true` the answer is "
        "server-sent events, `data: <chunk>` each, then `data: [DONE]`. " + _STREAM_NOTE,
        body=openai_chat.ChatCompletionRequest, answer=openai_chat.ChatCompletion,
        events=openai_chat.ChatCompletionStreamEvent,
        answer_description="A chat.completion; with `stream: true`, server-sent events "
        "(`data: <chunk>`, then `data: [DONE]`)",
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "post", "/v1/messages",
        "anthropic_api.messages", "createMessage", "anthropic",
        "Anthropic Messages, unary or streamed",
        "Name the model `provider/model` or an alias. To an Anthropic-family provider the body "
        "is relayed with only `model` changed, so any field passes; to another family it is "
        "translated, and the schema lists what can be: any other field set is refused with a "
        "400 naming it (`cache_control` hints are let go). With `stream: true` the answer is "
        "Anthropic's named server-sent events: `event: <type>` and `data: <event JSON>`, from "
        "message_start to message_stop. " + _STREAM_NOTE,
        body=anthropic_messages.MessagesRequest, answer=anthropic_messages.MessageResponse,
        events=anthropic_messages.MessageStreamEvent,
        answer_description="A message; with `stream: true`, named server-sent events "
        "(`event: <type>`, `data: <event JSON>`)",
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "post", "/v1/responses",
        "responses_api.create", "createResponse", "openai",
        "OpenAI Responses, unary or streamed",
        "Name the model `provider/model` or an alias. To an OpenAI-family provider the body is "
        "relayed with only `model` changed; to another family it is translated, and the schema "
        "lists what can be. A response stored (`store`, true by default) is kept by the router "
        "for `responses.retention_seconds`, visible to the router key that made it, and may be "
        "continued with `previous_response_id` on any provider; an unknown id is a 400 "
        "`previous_response_not_found`. With `stream: true` the answer is the Responses API's "
        "named server-sent events, `response.created` to `response.completed`. " + _STREAM_NOTE,
        body=openai_responses.ResponsesRequest, answer=responses_documents.ResponseObject,
        events=responses_documents.ResponseStreamEvent,
        answer_description="A response; with `stream: true`, named server-sent events "
        "(`event: <type>`, `data: <event JSON>`)",
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "get", "/v1/responses/{response_id}",
        "responses_api.retrieve", "getResponse", "openai", "A stored response",
        "As it was answered, to the router key that made it; another key's is a 404.",
        answer=responses_documents.ResponseObject,
        raises=(errors.NotFound, errors.Unavailable),
        parameters=(_RESPONSE_ID,),
    ),
    Endpoint(
        "delete", "/v1/responses/{response_id}",
        "responses_api.delete", "deleteResponse", "openai", "Delete a stored response",
        "The router's copy. A response an OpenAI-family provider answered is also kept by that "
        "provider, under its own retention.",
        answer=responses_api.DeletedResponse,
        raises=(errors.NotFound, errors.Unavailable),
        parameters=(_RESPONSE_ID,),
    ),
    Endpoint(
        "get", "/v1/responses/{response_id}/input_items",
        "responses_api.input_items", "listInputItems", "openai",
        "The input items of a stored response's conversation",
        "Every input item of the conversation up to the response: earlier turns' input and "
        "output, then its own input; newest first unless `order=asc`.",
        answer=responses_api.InputItemList,
        raises=(errors.InvalidRequest, errors.NotFound, errors.Unavailable),
        parameters=(
            _RESPONSE_ID,
            {"name": "limit", "in": "query", "required": False,
             "description": "1 to 100 items (20)", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
            {"name": "order", "in": "query", "required": False,
             "description": "`desc` (newest first, the default) or `asc`",
             "schema": {"type": "string", "enum": ["asc", "desc"]}},
            {"name": "after", "in": "query", "required": False,
             "description": "the id of the item the page starts after", "schema": {"type": "string"}},
        ),
    ),
    Endpoint(
        "post", "/v1/embeddings",
        "passthrough.embeddings", "createEmbedding", "openai", "OpenAI embeddings",
        "For a model of an OpenAI-family provider (OpenAI, or any OpenAI-compatible server), "
        "named `provider/model` or an alias: the body is relayed with only `model` changed (the "
        "router reads `model`, and `input` to estimate its tokens), in either `encoding_format`. "
        "A model of another family is a 400 naming the providers that offer embeddings. Billed "
        "at the model's input price for the tokens the provider reports.",
        body=passthrough.EmbeddingsRequest, answer=passthrough.EmbeddingList,
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "post", "/v1/messages/count_tokens",
        "passthrough.count_tokens", "countMessageTokens", "anthropic",
        "Anthropic token counting",
        "For a model of an Anthropic-family provider: the body is relayed with only `model` "
        "changed, and the provider counts. A model of another family is a 400 (no count is made "
        "up). Free, as Anthropic's is: it costs 0 and takes nothing from the key's rpm, tpm or "
        "budget, but the key must allow the model.",
        body=passthrough.CountTokensRequest, answer=passthrough.MessageTokensCount,
        raises=_GENERATION_ERRORS, costed=True,
    ),
    Endpoint(
        "get", "/v1/models",
        "openai_api.list_models", "listModels", "openai", "Every model and alias the router serves",
        "Every configured model as `provider/model`, and every alias.",
        answer=openai_api.ModelList,
    ),
    Endpoint(
        "get", "/v1/models/{model_id}",
        "openai_api.get_model", "getModel", "openai", "One model or alias",
        answer=openai_api.ModelObject,
        raises=(errors.NotFound,),
        parameters=(
            {
                "name": "model_id",
                "in": "path",
                "required": True,
                "description": "`provider/model` (the model may contain slashes) or an alias",
                "schema": {"type": "string"},
            },
        ),
    ),
    Endpoint(
        "get", "/v1/usage",
        "usage_api.usage", "getUsage", "operations", "A key's spend and remaining budget",
        "For the admin key only (the variable named by `auth.admin_key_env`), as "
        "`Authorization: Bearer <key>`.",
        answer=KeyUsage,
        raises=(errors.InvalidRequest, errors.Unauthenticated, errors.NotFound),
        parameters=(
            {
                "name": "key",
                "in": "query",
                "required": True,
                "description": "the name of a key in `auth.keys`",
                "schema": {"type": "string"},
            },
        ),
        security=({"bearer": []},),
    ),
    Endpoint(
        "get", "/healthz",
        "_healthz", "healthz", "operations", "The process is alive",
        answer=health.Health,
    ),
    Endpoint(
        "get", "/readyz",
        "_readyz", "readyz", "operations", "Config loaded; which providers are usable",
        "Lists each provider and why it is unusable; 503 when no provider is usable.",
        answer=health.Readiness, answer_statuses=(200, 503),
        answer_description="Each provider's readiness",
    ),
    Endpoint(
        "get", "/metrics",
        "metrics", "metrics", "operations", "Prometheus metrics of every worker",
        other_content={METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}},
        answer_description="The Prometheus text format",
    ),
    Endpoint(
        "get", "/openapi.json",
        "openapi.openapi_json", "openapi", "operations", "This document",
        other_content={JSON: {"schema": {"type": "object"}}},
        answer_description="The OpenAPI 3.1 document",
    ),
    Endpoint(
        "get", "/docs",
        "openapi.docs_page", "docs", "operations", "This document as a web page",
        other_content={"text/html": {"schema": {"type": "string"}}},
        answer_description="HTML, with no script and nothing fetched from elsewhere",
    ),
)

TAGS = (
    {"name": "native", "description": "The native API: /generate and /stream"},
    {"name": "openai", "description": "Drop-in OpenAI API: the SDK's base_url is <router>/v1"},
    {"name": "anthropic", "description": "Drop-in Anthropic API: the SDK's base_url is <router>"},
    {"name": "operations", "description": "Health, metrics, spend and this document"},
)


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of ENDPOINTS as `app` serves them. Built once per app; cheap enough
    to call in tests."""
    keyed = {endpoint.view: is_keyed(app.view_functions[endpoint.view]) for endpoint in ENDPOINTS}
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = []
    for endpoint in ENDPOINTS:
        if endpoint.body is not None:
            wanted.append((endpoint.body, "validation"))
        for model in (endpoint.answer, endpoint.events):
            if model is not None:
                wanted.append((model, "serialization"))
        if endpoint.errors(keyed[endpoint.view]):
            wanted.append((_ERROR_BODIES[family_of(endpoint.path)], "serialization"))
    refs, definitions = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF_TEMPLATE)

    def ref(model: type[BaseModel], mode: JsonSchemaMode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    paths: dict[str, dict[str, Any]] = {}
    for endpoint in ENDPOINTS:
        operation = _operation(endpoint, keyed[endpoint.view], ref)
        paths.setdefault(endpoint.path, {})[endpoint.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ai-router",
            "version": ai_router.__version__,
            "summary": "A self-hosted AI gateway: one API in front of many LLM providers",
            "description": (
                "Every response carries `X-Request-ID` (the request's id: the one sent, or a "
                f"generated one) and `{REPLICA_HEADER}` (the replica that answered). Errors "
                "come in the format of the API family of the path: the native one for /generate "
                "and /stream, OpenAI's under /v1/, Anthropic's for /v1/messages."
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "tags": list(TAGS),
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "headers": {
                "RequestId": {
                    "description": f"`{REQUEST_ID_HEADER}`: the request's id",
                    "schema": {"type": "string"},
                },
                "RetryAfter": {
                    "description": "Seconds to wait before trying again, when the error has one",
                    "schema": {"type": "integer", "minimum": 1},
                },
                "Cost": {
                    "description": "The answer's cost in USD (prices: the built-in table and "
                    "`prices:`)",
                    "schema": {"type": "string"},
                },
            },
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A router key from `auth.keys` (for /v1/usage: the admin "
                    "key). Needed only when keys are configured.",
                },
                "x-api-key": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "x-api-key",
                    "description": "A router key, as the anthropic SDK sends it",
                },
            },
        },
    }


def _operation(
    endpoint: Endpoint,
    keyed: bool,
    ref: Callable[[type[BaseModel], JsonSchemaMode], dict[str, Any]],
) -> dict[str, Any]:
    raised = endpoint.errors(keyed)
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "tags": [endpoint.tag],
        "summary": endpoint.summary,
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.parameters:
        operation["parameters"] = list(endpoint.parameters)
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": ref(endpoint.body, "validation")}},
        }
    request_id = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
    content: dict[str, Any] = dict(endpoint.other_content)
    if endpoint.answer is not None:
        content[JSON] = {"schema": ref(endpoint.answer, "serialization")}
    if endpoint.events is not None:
        content[EVENT_STREAM] = {"schema": ref(endpoint.events, "serialization")}
    responses: dict[str, Any] = {}
    for status in endpoint.answer_statuses:
        headers = dict(request_id)
        if endpoint.costed:
            headers[COST_HEADER] = {"$ref": "#/components/headers/Cost"}
        description = endpoint.answer_description if status == 200 else HTTPStatus(status).phrase
        responses[str(status)] = {
            "description": description,
            "headers": headers,
            "content": content,
        }
    if raised:
        error_body = ref(_ERROR_BODIES[family_of(endpoint.path)], "serialization")
        for status, types in documented_statuses(raised).items():
            headers = dict(request_id)
            if status in _RETRY_STATUSES:
                headers["Retry-After"] = {"$ref": "#/components/headers/RetryAfter"}
            responses[str(status)] = {
                "description": f"{HTTPStatus(status).phrase}: {', '.join(types)}",
                "headers": headers,
                "content": {JSON: {"schema": error_body}},
            }
    operation["responses"] = responses
    security = endpoint.security or (_KEYS if keyed else None)
    if security is not None:
        operation["security"] = list(security)
    return operation


# --- serving -------------------------------------------------------------------------------------

blueprint = Blueprint("openapi", __name__)
_PUBLISHED_KEY = "ai_router.openapi"


@dataclass(frozen=True)
class _Published:
    json: bytes
    html: bytes


def _published() -> _Published:
    """The document and its page, made on the first request for either rather than at every
    worker's start, for an endpoint few ask for."""
    published: _Published | None = current_app.extensions.get(_PUBLISHED_KEY)
    if published is None:
        document = build_document(current_app)
        published = current_app.extensions[_PUBLISHED_KEY] = _Published(
            json.dumps(document, ensure_ascii=False, indent=1).encode(),
            page.render(document).encode(),
        )
    return published


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    return Response(_published().json, content_type=JSON)


@blueprint.get("/docs")
def docs_page() -> Response:
    return Response(_published().html, content_type="text/html; charset=utf-8")
