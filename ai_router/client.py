"""A small synchronous Python client for ai-router's gRPC API.

    from ai_router.client import Client

    with Client("127.0.0.1:50051") as client:
        print(client.complete("Say hello", provider="openai").content)
        for delta in client.stream("Count to five", model="anthropic/claude-3-5-haiku-20241022"):
            print(delta.content, end="", flush=True)

A client holds one channel, which every call reuses (channels are thread-safe and costly to
open); `close()` it, or use a `with` block. Every call has a deadline: its own `timeout`, else
the client's. Every call names itself with an `x-request-id` (the client's metadata may give one;
otherwise one is generated), so even a call that never reached the server can be traced.

A failed call raises a `ClientError` chosen by its gRPC status code, carrying the server's
message and the request id:

    ClientError              any other status (INTERNAL, UNKNOWN, ...); `code` says which
    ├── InvalidArgument      INVALID_ARGUMENT: a bad request, or one the provider refused
    ├── NotFound             NOT_FOUND: no such provider or model
    ├── Unauthenticated      UNAUTHENTICATED: no or a wrong router key
    ├── PermissionDenied     PERMISSION_DENIED: the key may not do this
    ├── RateLimited          RESOURCE_EXHAUSTED; `retry_after` seconds when the server said
    ├── Unavailable          UNAVAILABLE: the provider failed, or the router cannot be reached
    ├── DeadlineExceeded     DEADLINE_EXCEEDED: no answer within the deadline
    ├── FailedPrecondition   FAILED_PRECONDITION: the provider has no key, or refused it
    └── Cancelled            CANCELLED
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

REQUEST_ID_KEY = "x-request-id"
RETRY_AFTER_KEY = "retry-after"
DEFAULT_TIMEOUT = 60.0

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Message:
    """One turn of a conversation: role is system, developer, user or assistant."""

    role: str
    content: str


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    # What the call cost, when the server reports it; today it never does.
    cost: float | None = None


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    # JSON text; in a stream, pieces to be concatenated per `index`.
    arguments: str
    index: int = 0


@dataclass(frozen=True)
class Completion:
    content: str
    finish_reason: str
    usage: Usage
    provider: str
    model: str
    request_id: str
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed answer. The last one has no content, and carries the
    `finish_reason` and the `usage`."""

    content: str
    finish_reason: str = ""
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    provider: str = ""
    model: str = ""
    request_id: str = ""


class ClientError(Exception):
    """A call that failed: `code` is its gRPC status, `message` the server's explanation."""

    def __init__(self, code: grpc.StatusCode, message: str, request_id: str) -> None:
        super().__init__(f"{code.name}: {message}" if message else code.name)
        self.code = code
        self.message = message
        self.request_id = request_id


class InvalidArgument(ClientError):
    pass


class NotFound(ClientError):
    pass


class Unauthenticated(ClientError):
    pass


class PermissionDenied(ClientError):
    pass


class RateLimited(ClientError):
    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        request_id: str,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, request_id)
        # Seconds the server asked the caller to wait; None when it did not say.
        self.retry_after = retry_after


class Unavailable(ClientError):
    pass


class DeadlineExceeded(ClientError):
    pass


class FailedPrecondition(ClientError):
    pass


class Cancelled(ClientError):
    pass


_ERRORS: Mapping[grpc.StatusCode, type[ClientError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: RateLimited,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.CANCELLED: Cancelled,
}


class Client:
    """ai-router's gRPC API over one plaintext channel to `target` (`host:port`).

    `api_key` is sent as `authorization: Bearer <key>` metadata on every call, `metadata` too;
    `timeout` is the deadline in seconds of a call that does not give its own."""

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        metadata: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._channel = grpc.insecure_channel(target)
        self._stub = pb_grpc.AIRouterStub(self._channel)
        self._timeout = timeout
        self._metadata: Metadata = tuple(metadata)
        if api_key:
            self._metadata += (("authorization", f"Bearer {api_key}"),)

    def complete(
        self,
        prompt: str | None = None,
        *,
        model: str = "",
        provider: str = "",
        messages: Iterable[Message | Mapping[str, str]] = (),
        system: str = "",
        max_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] = (),
        timeout: float | None = None,
    ) -> Completion:
        """One complete answer. Empty `model`/`provider`/`max_tokens`: the server's defaults."""
        request = _request(
            prompt, model, provider, messages, system, max_tokens, temperature, top_p, stop
        )
        metadata = self._call_metadata()
        try:
            response = self._stub.RouteRequest(
                request, timeout=self._deadline(timeout), metadata=metadata
            )
        except grpc.RpcError as exc:
            raise _client_error(exc, metadata) from exc
        return _completion(response)

    def stream(
        self,
        prompt: str | None = None,
        *,
        model: str = "",
        provider: str = "",
        messages: Iterable[Message | Mapping[str, str]] = (),
        system: str = "",
        max_tokens: int = 0,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | Sequence[str] = (),
        timeout: float | None = None,
    ) -> Generator[Delta, None, None]:
        """The answer as it is generated. The call starts when iteration does; `timeout`
        bounds the whole stream. Stopping early (break, close) cancels the call."""
        request = _request(
            prompt, model, provider, messages, system, max_tokens, temperature, top_p, stop
        )
        metadata = self._call_metadata()
        call = self._stub.StreamingRouteRequest(
            request, timeout=self._deadline(timeout), metadata=metadata
        )
        try:
            for message in call:
                yield _delta(message)
        except grpc.RpcError as exc:
            raise _client_error(exc, metadata) from exc
        finally:
            # Nothing when the call is over; else the server stops generating at once.
            call.cancel()

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _deadline(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else timeout

    def _call_metadata(self) -> Metadata:
        if any(key == REQUEST_ID_KEY for key, _ in self._metadata):
            return self._metadata
        return ((REQUEST_ID_KEY, uuid.uuid4().hex), *self._metadata)


def _request(
    prompt: str | None,
    model: str,
    provider: str,
    messages: Iterable[Message | Mapping[str, str]],
    system: str,
    max_tokens: int,
    temperature: float | None,
    top_p: float | None,
    stop: str | Sequence[str],
) -> pb.AIRequest:
    request = pb.AIRequest(
        provider=provider,
        model=model,
        prompt=prompt or "",
        max_tokens=max_tokens,
        messages=[_message(m) for m in messages],
        system=system,
        stop=[stop] if isinstance(stop, str) else list(stop),
    )
    # Optional fields: unset means the provider's default, which 0.0 is not.
    if temperature is not None:
        request.temperature = temperature
    if top_p is not None:
        request.top_p = top_p
    return request


def _message(message: Message | Mapping[str, str]) -> pb.Message:
    if isinstance(message, Message):
        return pb.Message(role=message.role, content=message.content)
    return pb.Message(role=message["role"], content=message["content"])


def _usage(usage: pb.Usage) -> Usage:
    return Usage(usage.input_tokens, usage.output_tokens, usage.total_tokens)


def _tool_calls(message: pb.AIResponse) -> tuple[ToolCall, ...]:
    return tuple(ToolCall(c.id, c.name, c.arguments, c.index) for c in message.tool_calls)


def _completion(response: pb.AIResponse) -> Completion:
    return Completion(
        content=response.content,
        finish_reason=response.finish_reason,
        usage=_usage(response.usage),
        provider=response.provider,
        model=response.model,
        request_id=response.request_id,
        tool_calls=_tool_calls(response),
    )


def _delta(message: pb.AIResponse) -> Delta:
    return Delta(
        content=message.content,
        finish_reason=message.finish_reason,
        usage=_usage(message.usage) if message.HasField("usage") else None,
        tool_calls=_tool_calls(message),
        provider=message.provider,
        model=message.model,
        request_id=message.request_id,
    )


def _client_error(exc: Any, sent: Metadata) -> ClientError:
    """The typed error for a failed call (`exc` is a grpc.RpcError that is also a grpc.Call).
    The request id is the server's, else the one sent: a call that never reached the server
    (a deadline, a refused connection) is still named."""
    code: grpc.StatusCode = exc.code()
    message = str(exc.details() or "")
    trailing = dict(exc.trailing_metadata() or ())
    request_id = str(trailing.get(REQUEST_ID_KEY) or dict(sent).get(REQUEST_ID_KEY, ""))
    error_type = _ERRORS.get(code, ClientError)
    if error_type is RateLimited:
        return RateLimited(code, message, request_id, _seconds(trailing.get(RETRY_AFTER_KEY)))
    return error_type(code, message, request_id)


def _seconds(value: object) -> float | None:
    try:
        return float(str(value)) if value is not None else None
    except ValueError:
        return None
