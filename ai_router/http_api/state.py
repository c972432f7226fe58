"""Where a request finds the app's router: in the app, never in a module global.

The app holds a LiveRouter (reload.py); each request keeps the router that was current when it
started (bound in `g` by `hold_router`, the first thing the app does with a request), so it never
mixes two configs, whatever a reload does meanwhile. The request holds it until its answer is
made, and a generation request's scope (scope.py) until the answer is sent: a router that a
reload replaced is closed after its last request.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from flask.ctx import _AppCtxGlobals

from ai_router.reload import LiveRouter
from ai_router.router import Router

ROUTER_KEY = "ai_router.router"


def live_router(app: Flask) -> LiveRouter:
    found: LiveRouter = app.extensions[ROUTER_KEY]
    return found


def hold_router(app: Flask, state: _AppCtxGlobals) -> None:
    """Bind the router current now to the request whose `g` is `state`."""
    state.router, state.unhold = live_router(app).hold()


def unhold_router(state: _AppCtxGlobals) -> None:
    """The request's answer is made: it no longer needs its router (a scope holds it on)."""
    unhold = state.pop("unhold", None)
    if unhold is not None:
        unhold()


def router() -> Router:
    found: Router = g.get("router") or live_router(current_app).current
    return found


def request_globals() -> _AppCtxGlobals:
    """This request's `g` itself, for a function that uses it several times: every access
    through the `g` proxy finds the context anew."""
    found: _AppCtxGlobals = g._get_current_object()
    return found
