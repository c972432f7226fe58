"""Where a request finds the app's router: in the app, never in a module global."""

from __future__ import annotations

from flask import current_app

from ai_router.router import Router

ROUTER_KEY = "ai_router.router"


def router() -> Router:
    found: Router = current_app.extensions[ROUTER_KEY]
    return found
