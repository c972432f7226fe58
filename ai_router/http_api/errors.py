"""RouterError -> HTTP status and JSON body: the one place the HTTP front door translates errors.

The native API's error body has one stable shape:
`{"error": {"type": ..., "message": ..., "param": ... | null, "request_id": ...}}`.
Under /v1/ errors take the format of the API family instead (v1/openai_chat.py,
v1/anthropic_messages.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Literal

from ai_router import errors
from ai_router.http_api.response_model import ResponseModel

ErrorType = Literal[
    "invalid_request",
    "request_too_large",
    "request_timeout",
    "not_found",
    "unauthenticated",
    "permission_denied",
    "rate_limited",
    "overloaded",
    "cancelled",
    "provider_not_configured",
    "upstream_rejected",
    "upstream_auth_failed",
    "upstream_timeout",
    "upstream_unavailable",
    "internal_error",
    "unavailable",
]
Family = Literal["native", "openai", "anthropic"]

# Most specific first: the first class the error is an instance of decides.
_STATUS_AND_TYPE: tuple[tuple[type[errors.RouterError], int, ErrorType], ...] = (
    (errors.InvalidRequest, 400, "invalid_request"),
    (errors.RequestTooLarge, 413, "request_too_large"),
    (errors.RequestTimeout, 408, "request_timeout"),
    (errors.NotFound, 404, "not_found"),
    (errors.Unauthenticated, 401, "unauthenticated"),
    (errors.PermissionDenied, 403, "permission_denied"),
    (errors.LimitReached, 429, "rate_limited"),
    (errors.Overloaded, 503, "overloaded"),
    (errors.InternalError, 500, "internal_error"),
    (errors.Unavailable, 503, "unavailable"),
    # nginx's "client closed request": logged, never seen by the client that left.
    (errors.Cancelled, 499, "cancelled"),
    (errors.ProviderNotConfigured, 503, "provider_not_configured"),
    (errors.UpstreamRejected, 400, "upstream_rejected"),
    # The provider refused the router's key: a gateway fault, not the caller's credentials.
    (errors.UpstreamAuthFailed, 502, "upstream_auth_failed"),
    (errors.UpstreamRateLimited, 429, "rate_limited"),
    (errors.UpstreamTimeout, 504, "upstream_timeout"),
    (errors.UpstreamUnavailable, 502, "upstream_unavailable"),
)
_OVERLOADED_STATUSES = (503, 529)  # the provider asks us to come back later
_PASSED_THROUGH_REJECTIONS = (404, 409, 413, 422)
_NEVER_SEEN = (errors.Cancelled,)  # the client has gone


class NativeErrorDetail(ResponseModel):
    type: ErrorType
    message: str
    param: str | None
    request_id: str


class NativeError(ResponseModel):
    """The native API's error: the body of every failed /generate and /stream, and the event
    that ends a stream failing after its first byte."""

    error: NativeErrorDetail


def family_of(path: str) -> Family:
    """Whose error format a path answers in: Anthropic's for /v1/messages, OpenAI's elsewhere
    under /v1/, the native one everywhere else."""
    if path.startswith("/v1/messages"):
        return "anthropic"
    return "openai" if path.startswith("/v1/") else "native"


def status_and_type(error: errors.RouterError) -> tuple[int, ErrorType]:
    for error_type, status, name in _STATUS_AND_TYPE:
        if isinstance(error, error_type):
            return _refine(error, status), name
    return 500, "internal_error"


def _refine(error: errors.RouterError, status: int) -> int:
    if isinstance(error, errors.UpstreamRejected) and error.status in _PASSED_THROUGH_REJECTIONS:
        return error.status
    if isinstance(error, errors.UpstreamUnavailable) and error.status in _OVERLOADED_STATUSES:
        return 503
    return status


def documented_statuses(
    kinds: Iterable[type[errors.RouterError]],
) -> dict[int, list[ErrorType]]:
    """Every status that errors of these kinds are answered with, and the error types of each:
    the table above, with the statuses `_refine` passes through."""
    kinds = tuple(kinds)
    statuses: dict[int, list[ErrorType]] = {}
    for kind, status, name in _STATUS_AND_TYPE:
        if issubclass(kind, _NEVER_SEEN) or not issubclass(kind, kinds):
            continue
        refined: tuple[int, ...] = ()
        if kind is errors.UpstreamRejected:
            refined = _PASSED_THROUGH_REJECTIONS
        elif kind is errors.UpstreamUnavailable:
            refined = (503,)
        for code in (status, *refined):
            names = statuses.setdefault(code, [])
            if name not in names:
                names.append(name)
    return dict(sorted(statuses.items()))


def error_body(error: errors.RouterError, request_id: str) -> dict[str, Any]:
    _, error_type = status_and_type(error)
    detail = NativeErrorDetail(
        type=error_type,
        message=error.message,
        param=getattr(error, "param", None),
        request_id=request_id,
    )
    return NativeError(error=detail).to_json()


def error_headers(error: errors.RouterError) -> dict[str, str]:
    if isinstance(error, (errors.RequestTimeout, errors.RequestTooLarge)):
        # The rest of the body may still be on its way: this connection cannot go on.
        return {"Connection": "close"}
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        # Whole seconds, rounded up: "retry in 10.4s" is Retry-After 11, never sooner.
        return {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return {}
