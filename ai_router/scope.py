"""The life of one generation request, the same at both front doors.

A scope opens when a front door has a request: it records it (observe.py), authenticates the
caller, takes one of the process's concurrency slots and counts the request in flight, or
refuses it as overloaded and counts that. The front door makes its call through the scope, and
finishes the scope once the answer is sent (a stream: its last byte); the record is then
reported with the status the client got. HTTP opens scopes from a decorator on the metered
views (http_api/scoped.py), gRPC from a server interceptor (grpc_api/interceptor.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar

from ai_router import observe
from ai_router.access.settings import KeySettings
from ai_router.answers import Account, Answer, ChatStream
from ai_router.call import Call
from ai_router.errors import Overloaded
from ai_router.logs import new_request_id
from ai_router.router import Router
from ai_router.types import ChatRequest, ChatResponse

RETRY_AFTER_SECONDS = 1.0
MAX_REQUEST_ID_LENGTH = 128

_current: ContextVar[RequestScope | None] = ContextVar("request_scope", default=None)


def request_id_of(given: str | None) -> str:
    """The id a client gave its request (its first MAX_REQUEST_ID_LENGTH characters), if it is
    one that can travel in any header or metadata: printable ASCII. Else a new one."""
    if given and given.isascii() and given.isprintable():
        return given[:MAX_REQUEST_ID_LENGTH]
    return new_request_id()


class ConcurrencyLimit:
    """At most `limit` scopes at once in this process; beyond, a request is refused at once with
    Overloaded (503 / RESOURCE_EXHAUSTED and a Retry-After), which a client or a load balancer
    can act on, instead of waiting in a queue that only grows while the process is saturated."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def acquire(self) -> Callable[[], None]:
        """Admit one request, or raise Overloaded; returns its release (idempotent)."""
        with self._lock:
            if self._active >= self._limit:
                raise Overloaded(
                    f"this router process is serving its limit of {self._limit} requests; "
                    f"retry in {RETRY_AFTER_SECONDS:g}s",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._active += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._active -= 1

        return release


class RequestScope:
    __slots__ = (
        "router", "request_id", "record", "caller", "_limit", "_release", "_leave", "_unhold"
    )

    def __init__(self, router: Router, surface: str, request_id: str, limit: ConcurrencyLimit):
        """`router` must be held by the caller meanwhile (`LiveRouter.hold`): the scope holds
        it on until the request is finished."""
        self.router = router  # the router the whole request uses, whatever a reload does
        self._unhold = router.hold()
        self.request_id = request_id
        self.record = observe.RequestRecord(
            surface, request_id, router.metrics, sink=router.record_usage
        )
        self.caller: KeySettings | None = None
        self._limit = limit
        self._release: Callable[[], None] | None = None
        self._leave: Callable[[], None] | None = observe.enter(self.record)
        _current.set(self)

    @property
    def account(self) -> Account:
        return self.record.account

    def admit(self, presented_key: Callable[[], str | None]) -> None:
        """Authenticate the caller (the key is read only when keys are configured) and take a
        concurrency slot. Raises Unauthenticated, or Overloaded (counted)."""
        router, surface = self.router, self.record.surface
        if router.keyed:
            self.caller = router.authenticate(presented_key())
        metrics = router.metrics
        try:
            release_slot = self._limit.acquire()
        except Overloaded:
            metrics.child(metrics.refused, surface).inc()
            raise
        metrics.count_in_flight(surface, 1)

        def release() -> None:
            release_slot()
            metrics.count_in_flight(surface, -1)

        self._release = release

    def asked_for(self, model: str) -> None:
        """The model as the client named it, for the record."""
        self.record.model_asked = model

    def call(self, call: Call) -> Answer:
        return self.router.call(call, self.caller, self.account)

    def complete(self, request: ChatRequest) -> ChatResponse:
        return self.router.complete(request, self.caller, self.account)

    def stream(self, request: ChatRequest) -> ChatStream:
        return self.router.stream(request, self.caller, self.account)

    def release(self) -> None:
        """Give the concurrency slot back (the answer is out, or about to be). Idempotent."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def finish(self, status: str) -> None:
        """The answer has been sent: report the request with the status the client got
        ("ok", or its error type), once."""
        self.release()
        try:
            self.record.finish(status)
        finally:
            self._unhold()  # a router that a reload replaced closes with its last request

    def leave(self) -> None:
        """Stop being the current scope of this thread or greenlet (its log lines' request id).
        Call from where it was opened. Idempotent."""
        leave, self._leave = self._leave, None
        if leave is not None:
            leave()
            _current.set(None)


def current_scope() -> RequestScope:
    """The scope of the request this thread (or greenlet) is serving."""
    scope = _current.get()
    if scope is None:
        raise LookupError("no request scope is open here")
    return scope


def asked_name(provider: str, model: str) -> str:
    """The model as the client named it: `provider/model`, `model` alone (an alias), or just
    the provider when it left the model to the provider's default."""
    if provider and model:
        return f"{provider}/{model}"
    return model or provider
