"""Requests from web pages: refused unless the page's origin is allowed (`server.allowed_origins`),
and answered with the CORS headers a browser needs when it is.

A browser sends `Origin` with every cross-origin request, and a "simple" POST (a form, or
`text/plain`) needs no preflight: without this, any page a developer visits could make the router
on their machine spend provider credit. Clients that are not browsers (curl, the SDKs) send no
`Origin` and are not concerned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from werkzeug.datastructures import Headers

from ai_router.errors import PermissionDenied
from ai_router.http_api.headers import COST_HEADER, REQUEST_ID_HEADER

ANY = "*"
_ORIGIN_ENVIRON = "HTTP_ORIGIN"
_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, x-api-key, anthropic-version, anthropic-beta, "
        f"{REQUEST_ID_HEADER}"
    ),
    "Access-Control-Expose-Headers": f"{REQUEST_ID_HEADER}, {COST_HEADER}, Retry-After",
    "Access-Control-Max-Age": "600",
    "Vary": "Origin",
}


class Origins:
    """The pages allowed to call (`server.allowed_origins`); the app asks on each request."""

    def __init__(self, allowed: Iterable[str]) -> None:
        allowed_origins = frozenset(allowed)
        self._admits: Callable[[str], bool] = (
            (lambda origin: True) if ANY in allowed_origins else allowed_origins.__contains__
        )

    def refuse_other_pages(self, environ: Mapping[str, Any]) -> None:
        origin = environ.get(_ORIGIN_ENVIRON)
        if origin is not None and not self._admits(origin):
            raise PermissionDenied(
                f"requests from web pages at {origin!r} are refused; to allow them, add the "
                "origin to server.allowed_origins"
            )

    def allow_the_page(self, environ: Mapping[str, Any], headers: Headers) -> None:
        origin = environ.get(_ORIGIN_ENVIRON)
        if origin is not None and self._admits(origin):
            headers.update(_CORS_HEADERS)
            headers["Access-Control-Allow-Origin"] = origin
