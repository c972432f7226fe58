"""RouterError -> HTTP status and JSON body: the one place the HTTP front door translates errors.

The native API's error body has one stable shape:
`{"error": {"type": ..., "message": ..., "param": ... | null, "request_id": ...}}`.
"""

from __future__ import annotations

from typing import Any

from ai_router import errors

# Most specific first: the first class the error is an instance of decides.
_STATUS_AND_TYPE: tuple[tuple[type[errors.RouterError], int, str], ...] = (
    (errors.InvalidRequest, 400, "invalid_request"),
    (errors.RequestTooLarge, 413, "request_too_large"),
    (errors.NotFound, 404, "not_found"),
    (errors.Unauthenticated, 401, "unauthenticated"),
    (errors.PermissionDenied, 403, "permission_denied"),
    (errors.LimitReached, 429, "rate_limited"),
    (errors.Overloaded, 503, "overloaded"),
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


def status_and_type(error: errors.RouterError) -> tuple[int, str]:
    for error_type, status, name in _STATUS_AND_TYPE:
        if isinstance(error, error_type):
            return _refine(error, status), name
    return 500, "internal"


def _refine(error: errors.RouterError, status: int) -> int:
    if isinstance(error, errors.UpstreamRejected) and error.status in _PASSED_THROUGH_REJECTIONS:
        return error.status
    if isinstance(error, errors.UpstreamUnavailable) and error.status in _OVERLOADED_STATUSES:
        return 503
    return status


def error_body(error: errors.RouterError, request_id: str) -> dict[str, Any]:
    _, error_type = status_and_type(error)
    return {
        "error": {
            "type": error_type,
            "message": error.message,
            "param": getattr(error, "param", None),
            "request_id": request_id,
        }
    }


def error_headers(error: errors.RouterError) -> dict[str, str]:
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        return {"Retry-After": str(max(1, round(retry_after)))}
    return {}
