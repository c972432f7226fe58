"""The Flask app factory: settings in, app out, no module-level state.

Errors are translated here, once, into the error format of the API family the client used:
OpenAI's under /v1/ (Anthropic's for /v1/messages), the native shape elsewhere. A path under /v1
that is no endpoint is answered in its client's format, whatever the path (v1/offered.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Response, current_app, g, jsonify, request
from flask.ctx import RequestContext
from flask.wrappers import Request
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import MapAdapter, Rule

from ai_router.access.keys import presented_key
from ai_router.config import Settings
from ai_router.errors import (
    InternalError,
    InvalidRequest,
    NotFound,
    RequestTooLarge,
    RouterError,
    Unauthenticated,
)
from ai_router.http_api import health, native, origins, scoped, state, usage_api
from ai_router.http_api.docs import openapi
from ai_router.http_api.errors import (
    Family,
    error_body,
    error_headers,
    family_of,
    status_and_type,
)
from ai_router.http_api.headers import (
    ANTHROPIC_REQUEST_ID_HEADER,
    REPLICA_HEADER,
    REQUEST_ID_ENVIRON,
    REQUEST_ID_HEADER,
)
from ai_router.http_api.json_provider import OrjsonProvider
from ai_router.http_api.v1 import (
    anthropic_api,
    anthropic_messages,
    offered,
    openai_api,
    openai_chat,
    passthrough,
    responses_api,
)
from ai_router.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from ai_router.reload import LiveRouter
from ai_router.router import Router
from ai_router.scope import ConcurrencyLimit, request_id_of

log = logging.getLogger(__name__)


class RouterApp(Flask):
    """Flask, with two costs of every request taken out (docs/PERFORMANCE.md):

    - which functions are coroutine functions is remembered: Flask asks `ensure_sync` for every
      hook and view of every request (eight a generation request here), and the answer, from
      inspect.iscoroutinefunction, never changes for a function;
    - a request whose path is exactly that of a rule without variable parts (all of the
      router's hot endpoints) finds the rule in a dict: werkzeug would first bind the URL map
      to the request (reading host, scheme and script name out of the environ) and then run its
      matcher. Anything else, url_for and an OPTIONS answer included, binds and matches as
      Flask does.
    """

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._exact_rules: dict[tuple[str, str], Rule] | None = None

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = self._sync[func] = super().ensure_sync(func)
        return sync

    def request_context(self, environ: dict[str, Any]) -> RequestContext:
        return _RouterRequestContext(self, environ)

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        if request is None or not self._may_defer_binding():
            return super().create_url_adapter(request)
        bind = super().create_url_adapter
        return cast(MapAdapter, _DeferredAdapter(lambda: bind(request)))

    def exact_rule(self, method: str, path: str) -> Rule | None:
        if self._exact_rules is None:
            self._exact_rules = self._index_exact_rules()
        return self._exact_rules.get((method, path))

    def _index_exact_rules(self) -> dict[tuple[str, str], Rule]:
        # Built at the first request, after which Flask allows no new rules. A path and method
        # that two rules share is left to werkzeug's matcher, which knows its precedence.
        index: dict[tuple[str, str], Rule] = {}
        shared: set[tuple[str, str]] = set()
        for rule in self.url_map.iter_rules():
            if rule.arguments or rule.defaults or rule.redirect_to or rule.websocket:
                continue
            for method in rule.methods or ():
                key = (method, rule.rule)
                if key in index:
                    shared.add(key)
                index[key] = rule
        return {key: rule for key, rule in index.items() if key not in shared}

    def _may_defer_binding(self) -> bool:
        # What binding checks or decides up front, which a dict cannot: trusted hosts, a
        # server name, host matching, subdomains.
        config = self.config
        return (
            config["TRUSTED_HOSTS"] is None
            and config["SERVER_NAME"] is None
            and not self.url_map.host_matching
            and not self.subdomain_matching
        )


class _DeferredAdapter:
    """Stands for a request's MapAdapter, and binds it the first time it is used."""

    def __init__(self, bind: Callable[[], MapAdapter | None]) -> None:
        self._bind = bind
        self._adapter: MapAdapter | None = None

    def __getattr__(self, name: str) -> Any:
        if self._adapter is None:
            self._adapter = self._bind()
        return getattr(self._adapter, name)


class _RouterRequestContext(RequestContext):
    app: RouterApp

    def match_request(self) -> None:
        request = self.request
        rule = self.app.exact_rule(request.method, request.path)
        if rule is None or not isinstance(self.url_adapter, _DeferredAdapter):
            super().match_request()
            return
        request.url_rule, request.view_args = rule, {}


def create_app(settings: Settings, router: Router | None = None) -> Flask:
    app = RouterApp("ai_router")
    app.json = OrjsonProvider(app)
    # Werkzeug refuses bodies over this with 413 whether they are sized or chunked.
    app.config["MAX_CONTENT_LENGTH"] = settings.server.max_body_bytes
    app.extensions[state.ROUTER_KEY] = LiveRouter(router or Router.from_settings(settings))
    app.register_blueprint(native.blueprint)
    app.register_blueprint(openai_api.blueprint)
    app.register_blueprint(anthropic_api.blueprint)
    app.register_blueprint(passthrough.blueprint)
    app.register_blueprint(responses_api.blueprint)
    app.register_blueprint(usage_api.blueprint)
    replica = settings.server.replica_name
    pages = origins.Origins(settings.server.allowed_origins)

    # One hook each way for what every request needs: Flask's cost is per hook, and each
    # reaches the request's context through its proxies anew.
    def open_request() -> None:
        globals_ = state.request_globals()
        environ = request.environ
        state.hold_router(app, globals_)
        globals_.request_id = request_id_of(environ.get(REQUEST_ID_ENVIRON))  # not request.headers: cheaper
        pages.refuse_other_pages(environ)

    def close_request(response: Response) -> Response:
        globals_ = state.request_globals()
        scoped.finish_when_sent(globals_, response)
        headers = response.headers
        request_id = globals_.get("request_id", "")
        headers.add(REQUEST_ID_HEADER, request_id)
        headers.add(ANTHROPIC_REQUEST_ID_HEADER, request_id)
        headers.add(REPLICA_HEADER, replica)
        pages.allow_the_page(request.environ, headers)
        state.unhold_router(globals_)
        return response

    app.before_request(open_request)
    app.after_request(close_request)
    scoped.install(app, ConcurrencyLimit(settings.server.http_max_concurrent))

    def metrics() -> Response:
        serving = state.router()
        if serving.settings.auth.metrics_need_admin_key:
            presented = presented_key(request.headers.get("Authorization"), None)
            if not serving.gate.keyring.is_admin(presented):
                raise Unauthenticated("GET /metrics needs the admin key, as `Authorization: Bearer <key>`")
        return Response(serving.metrics.exposition(), content_type=METRICS_CONTENT_TYPE)

    app.add_url_rule("/metrics", "metrics", metrics)
    app.register_error_handler(RouterError, _router_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)
    app.add_url_rule("/healthz", view_func=_healthz)
    app.add_url_rule("/readyz", view_func=_readyz)
    # Last: the document it publishes describes the views registered before it.
    app.register_blueprint(openapi.blueprint)
    return app


def _family() -> Family:
    return family_of(request.path)


def _router_error(
    error: RouterError, family: Family | None = None
) -> tuple[Response, int, dict[str, str]]:
    """`error` in the format of `family` (default: the path's)."""
    status, error_type = status_and_type(error)
    request_id = g.get("request_id", "")
    g.error_type = error_type
    log.info("request failed: %d %s", status, error.message, extra={"request_id": request_id})
    family = family or _family()
    body: dict[str, Any]
    if family == "openai":
        body = openai_chat.error_body(error, status)
    elif family == "anthropic":
        body = anthropic_messages.error_body(error, status)
    else:
        body = error_body(error, request_id)
    return jsonify(body), status, error_headers(error)


def _http_error(error: HTTPException) -> tuple[Response, int, dict[str, str]]:
    if isinstance(error, RequestEntityTooLarge):
        limit = request.max_content_length
        return _router_error(
            RequestTooLarge(f"the request body is larger than the limit of {limit} bytes")
        )
    status = error.code or 500
    if status >= 500:
        return _internal_error(error)
    if status == 404 and offered.is_under_v1(request.path):
        # A client of one of the /v1 APIs reads its own family's errors, and learns what is here.
        return _router_error(
            offered.no_such_endpoint(current_app, request.method, request.path),
            offered.client_family(request.path, request.headers),
        )
    message = f"{request.method} {request.path}: {error.description}"
    response, _, headers = _router_error(NotFound(message) if status == 404 else InvalidRequest(message))
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        headers["Allow"] = ", ".join(error.valid_methods)
    return response, status, headers


def _internal_error(error: Exception) -> tuple[Response, int, dict[str, str]]:
    """A fault of the router's own: logged once with its traceback, answered 500 with the
    request id that finds it in the log."""
    request_id = g.get("request_id", "")
    log.error("internal error", exc_info=error, extra={"request_id": request_id})
    return _router_error(InternalError(request_id))


def _healthz() -> Response:
    return jsonify(health.Health().to_json())


def _readyz() -> tuple[Response, int]:
    router = state.router()
    readiness = health.Readiness.of(router.readiness(), router.state_problem(), router.keyed)
    return jsonify(readiness.to_json()), 200 if readiness.usable else 503
