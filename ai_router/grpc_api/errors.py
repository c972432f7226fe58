"""RouterError -> gRPC status code: the one place the gRPC front door translates errors."""

from __future__ import annotations

import grpc

from ai_router import errors

# Most specific first: the first class the error is an instance of decides.
_STATUS_CODES: tuple[tuple[type[errors.RouterError], grpc.StatusCode], ...] = (
    (errors.InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RequestTooLarge, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RequestTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.LimitReached, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Overloaded, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.InternalError, grpc.StatusCode.INTERNAL),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.Cancelled, grpc.StatusCode.CANCELLED),
    (errors.ProviderNotConfigured, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.UpstreamRejected, grpc.StatusCode.INVALID_ARGUMENT),
    # The provider refused the router's key: the operator's problem, not the caller's credentials.
    (errors.UpstreamAuthFailed, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.UpstreamRateLimited, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.UpstreamTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (errors.UpstreamUnavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_code_for(error: errors.RouterError) -> grpc.StatusCode:
    for error_type, code in _STATUS_CODES:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL
