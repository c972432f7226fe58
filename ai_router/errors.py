"""The router's errors. Front doors translate them to HTTP statuses and gRPC codes in one place
each (`http_api/errors.py`, `grpc_api/errors.py`); providers translate their SDK's exceptions into
them in one place each. Classification is by type and status code, never by message text.

    RouterError
    ├── InvalidRequest            the client's request is malformed or out of range (has `param`)
    │   └── UnknownParameter      a sampling option the router does not know
    ├── RequestTooLarge           the body is over the configured limit
    ├── RequestTimeout            the body stopped arriving before its end
    ├── NotFound                  no such provider or model
    ├── ProviderNotConfigured     the provider has no API key; names the variable to set
    ├── Unauthenticated           no router key, or an unknown one
    ├── PermissionDenied          the key may not use this model
    ├── LimitReached              a key's rpm, tpm, concurrency or budget is used up
    ├── Cancelled                 the client went away; its upstream call was cut off
    ├── Overloaded                this process is at its concurrency limit; come back shortly
    ├── InternalError             a fault of the router's own, not the request's
    ├── Unavailable               the router cannot serve this now (it is stopping); retry
    │   └── StateUnavailable      the store of limits and budgets cannot be reached or used
    └── UpstreamError             the provider failed; carries `provider`, upstream `status` and
        │                         the `retry_after` seconds it asked for
        ├── UpstreamRejected      the provider refused the request as invalid (400, 404, 422)
        │   └── ContentFiltered   its content filter blocked the prompt (Azure's `content_filter`)
        ├── UpstreamAuthFailed    the provider rejected the router's own key (401, 403)
        ├── UpstreamRateLimited   429
        ├── UpstreamUnavailable   5xx, 529 overloaded, connection refused or reset, cooling down
        └── UpstreamTimeout       no answer within the provider's timeout

`retryable` says whether the same target may be tried again; `provider_side` whether another
target of an alias may still answer. Messages say what happened and what to fix; they never
contain an API key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self


class RouterError(Exception):
    """Base of every error the router reports to a client."""

    retryable: bool = False
    # Whether another target of an alias may still answer: the provider failed, not the request.
    provider_side: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.attempts: tuple[str, ...] = ()

    def with_attempts(self, attempts: Sequence[str]) -> Self:
        """The same error, its message listing every attempt an alias made (never a key)."""
        if len(attempts) < 2:
            return self
        # Exceptions do not copy well (copy re-runs __init__ with `args` only).
        listed = type(self).__new__(type(self))
        listed.__dict__.update(self.__dict__)
        listed.attempts = tuple(attempts)
        listed.message = f"{self.message} [all attempts: {'; '.join(attempts)}]"
        listed.args = (listed.message,)
        return listed


class InvalidRequest(RouterError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownParameter(InvalidRequest):
    pass


class RequestTooLarge(RouterError):
    pass


class RequestTimeout(RouterError):
    """The client sent its request too slowly; the connection is closed after the answer."""


class NotFound(RouterError):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class ProviderNotConfigured(RouterError):
    provider_side = True

    def __init__(self, provider: str, variable: str) -> None:
        super().__init__(
            f"provider {provider!r} has no API key: set the environment variable {variable} "
            "and restart the router"
        )
        self.provider = provider
        self.variable = variable


class Unauthenticated(RouterError):
    """No router key, or one the router does not know."""


class PermissionDenied(RouterError):
    """The router key may not use this model (or endpoint)."""


class LimitReached(RouterError):
    """A key's rate limit, concurrency or budget is used up; `retry_after` says when to retry."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(RouterError):
    """The client went away (hung up, cancelled, its deadline passed); nobody is listening."""


class Overloaded(RouterError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InternalError(RouterError):
    """Something failed in the router itself; the log has it under the request's id."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"the router failed to answer: an internal error, logged under request id {request_id}"
        )


class Unavailable(RouterError):
    """A fault of the router's side that passes: retry shortly (elsewhere)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StateUnavailable(Unavailable):
    """The store of limits and budgets (SQLite or Redis) cannot be used now; the message says
    why, never with a key. Keyed requests are refused while it lasts (unless configured to be
    served uncounted)."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(f"state store unavailable: {message}", retry_after)


class UpstreamError(RouterError):
    provider_side = True

    def __init__(
        self,
        message: str,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.status = status
        # Seconds the provider asked us to wait (retry-after-ms / retry-after), if it said.
        self.retry_after = retry_after


class UpstreamRejected(UpstreamError):
    """The request itself was refused: the client's to fix, so neither retried nor failed
    over; except 409 (a conflict), which the providers ask to be retried."""

    provider_side = False

    def __init__(
        self,
        message: str,
        provider: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider, status, retry_after)
        self.retryable = status == 409


class ContentFiltered(UpstreamRejected):
    """The provider's content filter blocked the request (Azure OpenAI's 400 with code
    `content_filter`): the client's to change, never retried. OpenAI-shaped error bodies carry
    the same `code`."""

    code = "content_filter"


class UpstreamAuthFailed(UpstreamError):
    pass


class UpstreamRateLimited(UpstreamError):
    retryable = True


class UpstreamUnavailable(UpstreamError):
    retryable = True


class UpstreamTimeout(UpstreamError):
    retryable = True
