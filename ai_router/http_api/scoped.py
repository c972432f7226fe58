"""The request scope (scope.py) at the HTTP front door.

`@metered(surface)` on a view opens a scope for each of its requests before the view runs and
hands it to the view; the app calls `finish_when_sent` with the answer, which finishes the scope
once the answer has been sent (a stream: once its body is done with), and the hook `install` adds
leaves it at the end of the request. `@keyed` marks a view
that is not generation but wants a router key all the same. The OpenAPI document reads both marks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask.ctx import _AppCtxGlobals

from ai_router.access.keys import presented_key
from ai_router.access.pricing import format_usd
from ai_router.access.settings import KeySettings
from ai_router.http_api.headers import COST_HEADER
from ai_router.http_api.sse import StreamBody
from ai_router.http_api.state import request_globals, router
from ai_router.scope import ConcurrencyLimit, RequestScope

_LIMIT_KEY = "ai_router.concurrency_limit"
_SURFACE = "metered_surface"  # the attribute a metered view carries
_KEYED = "keyed"

View = Callable[..., Response]


def _presented() -> str | None:
    headers = request.headers
    return presented_key(headers.get("Authorization"), headers.get("x-api-key"))


def metered(surface: str) -> Callable[[View], View]:
    """The view's requests are generation: scoped, counted as `surface` in metrics and logs.
    The view is called with the scope first."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def scoped(**arguments: Any) -> Response:
            state = request_globals()
            limit: ConcurrencyLimit = current_app.extensions[_LIMIT_KEY]
            scope = state.scope = RequestScope(state.router, surface, state.request_id, limit)
            scope.admit(_presented)
            return view(scope, **arguments)

        setattr(scoped, _SURFACE, surface)
        setattr(scoped, _KEYED, True)
        return scoped

    return decorate


def caller() -> KeySettings | None:
    """The key a @keyed view's request came with (None: keys are off)."""
    found: KeySettings | None = request_globals().get("caller")
    return found


def keyed(view: View) -> View:
    """The view answers only callers with a router key, when keys are configured."""

    @functools.wraps(view)
    def authenticated(**arguments: Any) -> Response:
        serving = router()
        if serving.keyed:
            request_globals().caller = serving.authenticate(_presented())
        return view(**arguments)

    setattr(authenticated, _KEYED, True)
    return authenticated


def surface_of(view: Callable[..., Any]) -> str | None:
    return getattr(view, _SURFACE, None)


def is_keyed(view: Callable[..., Any]) -> bool:
    return bool(getattr(view, _KEYED, False))


def install(app: Flask, limit: ConcurrencyLimit) -> None:
    """Give @metered views their slots from `limit`; the app calls `finish_when_sent` with each
    answer."""
    app.extensions[_LIMIT_KEY] = limit

    def leave(error: BaseException | None) -> None:
        scope: RequestScope | None = request_globals().get("scope")
        if scope is not None:
            scope.leave()

    app.teardown_request(leave)


def finish_when_sent(state: _AppCtxGlobals, response: Response) -> None:
    """Have a metered request's scope (in `state`, its `g`) finished once `response` is sent."""
    scope: RequestScope | None = state.get("scope")
    if scope is None:
        return
    ok = response.status_code < 400
    status = "ok" if ok else state.get("error_type", str(response.status_code))
    if isinstance(response.response, StreamBody):
        scope.record.streamed = True
        response.response.on_close(lambda: scope.finish(status))
        return
    cost = scope.account.cost_usd
    if cost is not None:
        response.headers.add(COST_HEADER, format_usd(cost))
    scope.release()
    # Reported once the answer is written: the log line and metrics then cost the client no
    # latency, and the latency they report includes the write.
    response.call_on_close(lambda: scope.finish(status))
