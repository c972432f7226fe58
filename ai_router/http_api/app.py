"""The Flask app factory: settings in, app out, no module-level state.

Errors are translated here, once, into the error format of the API family the client used:
OpenAI's under /v1/ (Anthropic's for /v1/messages), the native shape elsewhere.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ai_router.config import Settings
from ai_router.errors import InvalidRequest, NotFound, RequestTooLarge, RouterError
from ai_router.http_api import (
    anthropic_api,
    anthropic_wire,
    health,
    native,
    openai_api,
    openai_wire,
    openapi,
    usage_api,
)
from ai_router.http_api.errors import error_body, error_headers, family_of, status_and_type
from ai_router.http_api import lifecycle
from ai_router.http_api.json_provider import OrjsonProvider
from ai_router.http_api.limits import ConcurrencyLimit
from ai_router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ai_router.http_api import state
from ai_router.router import Router

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
ANTHROPIC_REQUEST_ID_HEADER = "request-id"  # where the anthropic SDK looks for it
REPLICA_HEADER = "X-AI-Router-Replica"
MAX_REQUEST_ID_LENGTH = 128


class RouterApp(Flask):
    """Flask, remembering which functions are coroutine functions: Flask asks `ensure_sync` for
    every hook and view of every request (eight a generation request here), and the answer,
    from inspect.iscoroutinefunction, never changes for a function."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = self._sync[func] = super().ensure_sync(func)
        return sync


def create_app(settings: Settings, router: Router | None = None) -> Flask:
    app = RouterApp("ai_router")
    app.json = OrjsonProvider(app)
    # Werkzeug refuses bodies over this with 413 whether they are sized or chunked.
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions[state.ROUTER_KEY] = router or Router.from_settings(settings)
    app.register_blueprint(native.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(anthropic_api.blueprint)
    app.register_blueprint(usage_api.blueprint)
    app.register_blueprint(openapi.blueprint)
    replica = settings.server.replica_name

    def name_replica(response: Response) -> Response:
        response.headers[REPLICA_HEADER] = replica
        return response

    app.before_request(state.bind_router)
    app.before_request(_assign_request_id)
    app.after_request(_return_request_id)
    app.after_request(name_replica)
    limit = ConcurrencyLimit(settings.server.http_max_concurrent)
    lifecycle.install(app, limit)

    def metrics() -> Response:
        return Response(state.router().metrics.exposition(), content_type=METRICS_CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", metrics)
    app.register_error_handler(RouterError, _router_error)
    app.register_error_handler(HTTPException, _http_error)
    app.add_url_rule("/healthz", view_func=_healthz)
    app.add_url_rule("/readyz", view_func=_readyz)
    return app


def _assign_request_id() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given[:MAX_REQUEST_ID_LENGTH] if given.isprintable() and given else uuid.uuid4().hex


def _return_request_id(response: Response) -> Response:
    request_id = g.get("request_id", "")
    response.headers[REQUEST_ID_HEADER] = request_id
    response.headers[ANTHROPIC_REQUEST_ID_HEADER] = request_id
    return response


def _family() -> str:
    return family_of(request.path)


def _router_error(error: RouterError) -> tuple[Response, int, dict[str, str]]:
    status, error_type = status_and_type(error)
    request_id = g.get("request_id", "")
    g.error_type = error_type
    log.info("request failed: %d %s", status, error.message, extra={"request_id": request_id})
    family = _family()
    body: dict[str, Any]
    if family == "openai":
        body = openai_wire.error_body(error, status)
    elif family == "anthropic":
        body = anthropic_wire.error_body(error, status)
    else:
        body = error_body(error, request_id)
    return jsonify(body), status, error_headers(error)


def _http_error(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return _router_error(
            RequestTooLarge(f"the request body is larger than the limit of {limit} bytes")
        )
    message = f"{request.method} {request.path}: {error.description}"
    status = error.code or 500
    response, _, headers = _router_error(NotFound(message) if status == 404 else InvalidRequest(message))
    return response, status, headers


def _healthz() -> Response:
    return jsonify(health.Health().to_json())


def _readyz() -> tuple[Response, int]:
    reasons = state.router().readiness()
    readiness = health.Readiness.of(reasons)
    return jsonify(readiness.to_json()), 200 if readiness.usable else 503
