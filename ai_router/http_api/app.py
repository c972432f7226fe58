"""The Flask app factory: settings in, app out, no module-level state."""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ai_router.config import Settings
from ai_router.errors import RequestTooLarge, RouterError
from ai_router.http_api import native
from ai_router.http_api.errors import error_body, error_headers, status_and_type
from ai_router.router import Router

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
MAX_REQUEST_ID_LENGTH = 128


def create_app(settings: Settings, router: Router | None = None) -> Flask:
    app = Flask("ai_router")
    # Werkzeug refuses bodies over this with 413 whether they are sized or chunked.
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions["ai_router.router"] = router or Router.from_settings(settings)
    app.extensions["ai_router.settings"] = settings
    app.register_blueprint(native.blueprint)
    app.before_request(_assign_request_id)
    app.after_request(_return_request_id)
    app.register_error_handler(RouterError, _router_error)
    app.register_error_handler(HTTPException, _http_error)
    app.add_url_rule("/healthz", view_func=_healthz)
    app.add_url_rule("/readyz", view_func=_readyz)
    return app


def _assign_request_id() -> None:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given[:MAX_REQUEST_ID_LENGTH] if given.isprintable() and given else uuid.uuid4().hex


def _return_request_id(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    return response


def _router_error(error: RouterError) -> tuple[Response, int, dict[str, str]]:
    status, _ = status_and_type(error)
    request_id = g.get("request_id", "")
    log.info("request %s failed: %d %s", request_id, status, error.message)
    return jsonify(error_body(error, request_id)), status, error_headers(error)


def _http_error(error: HTTPException) -> tuple[Response, int] | tuple[Response, int, dict[str, str]]:
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return _router_error(
            RequestTooLarge(f"the request body is larger than the limit of {limit} bytes")
        )
    status = error.code or 500
    body = {
        "error": {
            "type": "not_found" if status == 404 else "invalid_request",
            "message": f"{request.method} {request.path}: {error.description}",
            "param": None,
            "request_id": g.get("request_id", ""),
        }
    }
    return jsonify(body), status


def _healthz() -> Response:
    return jsonify(status="ok")


def _readyz() -> tuple[Response, int]:
    router: Router = current_app.extensions["ai_router.router"]
    reasons = router.readiness()
    usable = [name for name, reason in reasons.items() if reason is None]
    providers = {
        name: {"ready": reason is None, **({"reason": reason} if reason else {})}
        for name, reason in reasons.items()
    }
    status = "ready" if usable else "no provider is usable"
    return jsonify(status=status, providers=providers), 200 if usable else 503
