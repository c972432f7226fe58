"""The request scope (scope.py) at the gRPC front door: a server interceptor around every
AIRouter call.

It opens the scope (the router key from `authorization` or `x-api-key` metadata, the record, a
concurrency slot), lets the servicer answer, and turns a RouterError into the call's status code
(grpc_api/errors.py) in this one place. Every call names its replica and request id in metadata:
in the trailers always (errors included), and with a stream's first message; a successful call's
trailers carry its cost. Nothing is sent before there is something to send, so that a proxy
seeing this replica die mid-call can still answer the client with a clean status.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from ai_router.access.keys import presented_key
from ai_router.access.pricing import format_usd
from ai_router.errors import InternalError, InvalidRequest, RouterError
from ai_router.grpc_api.errors import status_code_for
from ai_router.reload import LiveRouter
from ai_router.scope import ConcurrencyLimit, RequestScope, asked_name, request_id_of

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
REPLICA_KEY = "x-ai-router-replica"
COST_KEY = "x-ai-router-cost-usd"
SURFACE = "grpc"

Metadata = tuple[tuple[str, str], ...]
Deserialize = Callable[[bytes], Any]
Unary = Callable[[Any, grpc.ServicerContext], Any]
Streaming = Callable[[Any, grpc.ServicerContext], Iterator[Any]]


class ScopeInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    def __init__(
        self, service: str, routers: LiveRouter, limit: ConcurrencyLimit, replica: str
    ) -> None:
        self._prefix = f"/{service}/"
        self._routers = routers
        self._limit = limit
        self._replica = replica
        # One scoped handler per method of ours, built on its first call: building it is a
        # few closures and a namedtuple, paid on every call otherwise.
        self._scoped: dict[str, Any] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        method: str = details.method
        scoped = self._scoped.get(method)
        if scoped is not None:
            return scoped
        handler = continuation(details)
        if handler is None or not method.startswith(self._prefix):
            return handler  # health checks, reflection and unknown methods: not scoped, not kept
        scoped = self._scoped[method] = self._scoped_handler(handler)
        return scoped

    def _scoped_handler(self, handler: Any) -> Any:
        # The request's bytes reach the scope, which deserializes them: a malformed message is
        # then the client's INVALID_ARGUMENT, where grpc's own deserializing would answer INTERNAL.
        deserialize = handler.request_deserializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, deserialize),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, deserialize),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, behaviour: Unary, deserialize: Deserialize) -> Unary:
        def scoped(raw: bytes, context: grpc.ServicerContext) -> Any:
            request = _parsed(raw, deserialize)
            headers = _Headers(context)
            scope, metadata = self._open(request, headers, context)
            try:
                if isinstance(request, RouterError):
                    raise request
                scope.admit(lambda: presented_key(headers.authorization, headers.api_key))
                response = behaviour(request, context)
            except Exception as error:
                _fail(scope, context, error, metadata)
            finally:
                scope.leave()
            context.set_trailing_metadata(_with_cost(metadata, scope))
            # Reported once the call is over: the log line and metrics then cost the client no
            # latency, and the latency they report includes sending the answer.
            if not context.add_callback(lambda: scope.finish("ok")):
                scope.finish("ok")
            return response

        return scoped

    def _streaming(self, behaviour: Streaming, deserialize: Deserialize) -> Streaming:
        def scoped(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
            request = _parsed(raw, deserialize)
            headers = _Headers(context)
            scope, metadata = self._open(request, headers, context)
            scope.record.streamed = True
            status = "cancelled"  # unless the stream ends one way or the other
            responses: Iterator[Any] | None = None
            try:
                if isinstance(request, RouterError):
                    raise request
                scope.admit(lambda: presented_key(headers.authorization, headers.api_key))
                responses = behaviour(request, context)
                for index, response in enumerate(responses):
                    if index == 0:
                        context.send_initial_metadata(metadata)
                    yield response
                status = "ok"
            except Exception as error:
                status = ""  # _fail finishes the scope with the status it answers
                _fail(scope, context, error, metadata)
            finally:
                # A cancelled call leaves the generator here: the servicer's stream closes.
                close = getattr(responses, "close", None)
                if close is not None:
                    close()
                if status == "ok":
                    context.set_trailing_metadata(_with_cost(metadata, scope))
                scope.finish(status)
                scope.leave()

        return scoped

    def _open(
        self, request: Any, headers: _Headers, context: grpc.ServicerContext
    ) -> tuple[RequestScope, Metadata]:
        given = headers.request_id or getattr(request, "request_id", "")
        request_id = request_id_of(given)
        router, release = self._routers.hold()
        try:
            scope = RequestScope(router, SURFACE, request_id, self._limit)
        finally:
            release()  # the scope holds the router on until the call is finished
        # Every AIRouter request is an AIRequest.
        scope.asked_for(asked_name(getattr(request, "provider", ""), getattr(request, "model", "")))
        metadata = ((REQUEST_ID_KEY, request_id), (REPLICA_KEY, self._replica))
        context.set_trailing_metadata(metadata)
        return scope, metadata


def _parsed(raw: bytes, deserialize: Deserialize | None) -> Any:
    """The request message, or the InvalidRequest its bytes are (raised in the scope)."""
    if deserialize is None:
        return raw
    try:
        return deserialize(raw)
    except DecodeError as error:
        return InvalidRequest(f"the request is not a valid message of this method: {error}")


class _Headers:
    """The invocation metadata the scope reads, found in one pass: each key's first value."""

    __slots__ = ("request_id", "authorization", "api_key")

    def __init__(self, context: grpc.ServicerContext) -> None:
        self.request_id = self.authorization = self.api_key = ""
        for name, value in context.invocation_metadata():
            if not value:
                continue
            if name == REQUEST_ID_KEY and not self.request_id:
                self.request_id = str(value)
            elif name == "authorization" and not self.authorization:
                self.authorization = str(value)
            elif name == "x-api-key" and not self.api_key:
                self.api_key = str(value)


def _with_cost(metadata: Metadata, scope: RequestScope) -> Metadata:
    cost = scope.account.cost_usd
    if cost is None:
        return metadata
    return (*metadata, (COST_KEY, format_usd(cost)))


def _status_of(error: RouterError) -> str:
    name: str = status_code_for(error).name
    return name.lower()


def _fail(
    scope: RequestScope, context: grpc.ServicerContext, failure: Exception, metadata: Metadata
) -> NoReturn:
    """End the call with the status `failure` means. One that is not a RouterError is a fault
    of ours: logged once with its traceback, and answered INTERNAL with the request id."""
    if isinstance(failure, RouterError):
        error = failure
        log.info("request failed: %s", error.message, extra={"request_id": scope.request_id})
    else:
        error = InternalError(scope.request_id)
        log.error("internal error", exc_info=failure, extra={"request_id": scope.request_id})
    code = status_code_for(error)
    scope.finish(_status_of(error))
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        metadata = (*metadata, ("retry-after", f"{retry_after:g}"))
    context.set_trailing_metadata(metadata)
    context.abort(code, error.message)
    raise AssertionError("grpc's context.abort always raises")
