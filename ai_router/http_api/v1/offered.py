"""The answer to a path under /v1 that is none of its endpoints: a 404 in the error format of the
client's API family, listing what /v1 offers (read off the app's routes, so it cannot drift)."""

from __future__ import annotations

import re

from flask import Flask
from werkzeug.datastructures import Headers

from ai_router.errors import NotFound
from ai_router.http_api.errors import Family

_VARIABLE = re.compile(r"<(?:\w+:)?(\w+)>")  # werkzeug's `<path:model_id>`
_IMPLIED_METHODS = ("HEAD", "OPTIONS")


def is_under_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


def client_family(path: str, headers: Headers) -> Family:
    """Whose errors the client of an unknown /v1 path reads: Anthropic's for a path under
    /v1/messages or a request naming an `anthropic-version` (the anthropic SDK always sends
    one), OpenAI's otherwise."""
    if path.startswith("/v1/messages") or "anthropic-version" in headers:
        return "anthropic"
    return "openai"


def no_such_endpoint(app: Flask, method: str, path: str) -> NotFound:
    return NotFound(
        f"{method} {path} is not an endpoint of this router; under /v1 it offers: "
        + ", ".join(endpoints_under_v1(app))
    )


def endpoints_under_v1(app: Flask) -> list[str]:
    """`METHOD /v1/path` of every route under /v1, by path then method."""
    offered = {
        (_VARIABLE.sub(r"{\1}", rule.rule), method)
        for rule in app.url_map.iter_rules()
        if is_under_v1(rule.rule)
        for method in rule.methods or ()
        if method not in _IMPLIED_METHODS
    }
    return [f"{method} {path}" for path, method in sorted(offered)]
