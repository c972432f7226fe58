"""The router's errors. Front doors translate them to HTTP statuses and gRPC codes in one place
each (`http_api/errors.py`, `grpc_api/errors.py`); providers translate their SDK's exceptions into
them in one place each. Classification is by type and status code, never by message text.

    RouterError
    ├── InvalidRequest            the client's request is malformed or out of range (has `param`)
    │   └── UnknownParameter      a sampling option the router does not know
    ├── RequestTooLarge           the body is over the configured limit
    ├── NotFound                  no such provider or model
    ├── ProviderNotConfigured     the provider has no API key; names the variable to set
    └── UpstreamError             the provider failed; carries `provider` and upstream `status`
        ├── UpstreamRejected      the provider refused the request as invalid (400, 404, 422)
        ├── UpstreamAuthFailed    the provider rejected the router's own key (401, 403)
        ├── UpstreamRateLimited   429; carries `retry_after` seconds when the provider said
        ├── UpstreamUnavailable   5xx, 529 overloaded, connection refused or reset
        └── UpstreamTimeout       no answer within the provider's timeout

Messages say what happened and what to fix; they never contain an API key.
"""

from __future__ import annotations


class RouterError(Exception):
    """Base of every error the router reports to a client."""

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(RouterError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownParameter(InvalidRequest):
    pass


class RequestTooLarge(RouterError):
    pass


class NotFound(RouterError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ProviderNotConfigured(RouterError):
    def __init__(self, provider: str, variable: str) -> None:
        super().__init__(
            f"provider {provider!r} has no API key: set the environment variable {variable} "
            "and restart the router"
        )
        self.provider = provider
        self.variable = variable


class UpstreamError(RouterError):
    def __init__(self, message: str, provider: str, status: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status


class UpstreamRejected(UpstreamError):
    pass


class UpstreamAuthFailed(UpstreamError):
    pass


class UpstreamRateLimited(UpstreamError):
    retryable = True

    def __init__(
        self, message: str, provider: str, status: int | None = 429, retry_after: float | None = None
    ) -> None:
        super().__init__(message, provider, status)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    retryable = True


class UpstreamTimeout(UpstreamError):
    retryable = True
