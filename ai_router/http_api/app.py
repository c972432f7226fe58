"""The Flask app factory: settings in, app out, no module-level state.

Errors are translated here, once, into the error format of the API family the client used:
OpenAI's under /v1/ (Anthropic's for /v1/messages), the native shape elsewhere.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ai_router.config import Settings
from ai_router.errors import InvalidRequest, NotFound, RequestTooLarge, RouterError
from ai_router.http_api import anthropic_api, anthropic_wire, native, openai_api, openai_wire
from ai_router.http_api.errors import error_body, error_headers, status_and_type
from ai_router.http_api.limits import ConcurrencyLimit
from ai_router.http_api.sse import StreamBody
from ai_router.http_api.state import ROUTER_KEY, router
from ai_router.router import Router

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
ANTHROPIC_REQUEST_ID_HEADER = "request-id"  # where the anthropic SDK looks for it
REPLICA_HEADER = "X-AI-Router-Replica"
GENERATION_ENDPOINTS = frozenset(
    {"native.generate", "native.stream", "openai_api.chat_completions", "anthropic_api.messages"}
)
MAX_REQUEST_ID_LENGTH = 128


def create_app(settings: Settings, router: Router | None = None) -> Flask:
    app = Flask("ai_router")
    # Werkzeug refuses bodies over this with 413 whether they are sized or chunked.
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions[ROUTER_KEY] = router or Router.from_settings(settings)
    app.register_blueprint(native.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(anthropic_api.blueprint)
    replica = settings.server.replica_name

    def name_replica(response: Response) -> Response:
        response.headers[REPLICA_HEADER] = replica
        return response

    limit = ConcurrencyLimit(settings.server.http_max_concurrent)

    def admit() -> None:
        if request.endpoint in GENERATION_ENDPOINTS:
            g.release_slot = limit.acquire()

    def release_when_sent(response: Response) -> Response:
        # A stream holds its slot until the server is done with its body; any other response
        # is complete in memory by now.
        release = g.pop("release_slot", None)
        if release is not None:
            if isinstance(response.response, StreamBody):
                response.response.on_close(release)
            else:
                release()
        return response

    app.before_request(_assign_request_id)
    app.before_request(admit)
    app.after_request(_return_request_id)
    app.after_request(name_replica)
    app.after_request(release_when_sent)
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
    path = request.path
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai" if path.startswith("/v1/") else "native"


def _router_error(error: RouterError) -> tuple[Response, int, dict[str, str]]:
    status, _ = status_and_type(error)
    request_id = g.get("request_id", "")
    log.info("request %s failed: %d %s", request_id, status, error.message)
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
    return jsonify(status="ok")


def _readyz() -> tuple[Response, int]:
    reasons = router().readiness()
    usable = [name for name, reason in reasons.items() if reason is None]
    providers = {
        name: {"ready": reason is None, **({"reason": reason} if reason else {})}
        for name, reason in reasons.items()
    }
    status = "ready" if usable else "no provider is usable"
    return jsonify(status=status, providers=providers), 200 if usable else 503
