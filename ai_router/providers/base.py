"""The Provider contract, and the translation of SDK exceptions into the router's errors.

A provider speaks one upstream's wire format through its official SDK: one client per process,
reused, blocking calls. It receives a request the router has already resolved (provider, model and
max_tokens set) and knows nothing of front doors.
"""

from __future__ import annotations

import http.client
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Generic, TypeVar

import httpx2
import orjson

from ai_router.config import ProviderSettings
from ai_router.errors import (
    Cancelled,
    ProviderNotConfigured,
    RouterError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.providers.transport import (
    HTTPConnectionClosed,
    Timeout,
    UnreachableUpstream,
    UpstreamResponse,
)
from ai_router.providers.upstream import UpstreamHTTP, error_message, sse_data
from ai_router.types import ChatChunk, ChatRequest, ChatResponse
from ai_router.watchdog import Watch

Item = TypeVar("Item")
Client = TypeVar("Client")

REDACTED = "[redacted]"



@dataclass(frozen=True, slots=True)
class RelayRequest:
    """A client request in the upstream's own wire format, to pass through unparsed."""

    body: Mapping[str, Any]  # the client's JSON body, its model already the upstream's name
    timeout: float | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class RelayResponse:
    """The upstream's answer, body not yet read: `chunks` yields its bytes as they arrive and
    closes the upstream response when exhausted or closed."""

    status: int
    content_type: str
    chunks: Iterator[bytes]
    response: UpstreamResponse

    @classmethod
    def of(
        cls,
        response: UpstreamResponse,
        chunks: Iterator[bytes],
        provider: Provider[Any],
        watch: Watch,
    ) -> RelayResponse:
        """`response` being read as `chunks` (Provider.open_watched), failures translated."""

        def relayed() -> Iterator[bytes]:
            try:
                yield from chunks
            except Exception as exc:
                raise provider.stream_error(exc, watch) from exc
            finally:
                response.close()

        return cls(response.status_code, response.content_type, relayed(), response)

    @classmethod
    def whole(cls, response: UpstreamResponse) -> RelayResponse:
        """An answer already read whole."""
        return cls(
            response.status_code, response.content_type, iter((response.content,)), response
        )

    def close(self) -> None:
        """Done with the upstream, whether or not its body was read. Idempotent."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()
        self.response.close()


class Provider(ABC, Generic[Client]):
    """One configured upstream, through its official SDK's client (`Client`): one per process,
    reused, built when the provider has a key. Subclasses implement `complete` and `stream`
    (building the upstream's body and reading its answer as plain JSON, sent by `upstream()`);
    `relay` passes a body of the upstream's own family through to `chat_path`."""

    # The API family the upstream speaks ("openai", "anthropic"); same-family clients are relayed.
    family: str = ""
    # The SDK module (its client class, its exception classes), the client class, the
    # upstream's public address, and where chat bodies go (built or relayed).
    sdk: ModuleType
    client_class: Callable[..., Client]
    default_base_url: str = ""
    chat_path: str = ""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self._client: Client | None = None
        self._upstream: UpstreamHTTP | None = None
        if self.api_key is not None:
            self._client = self.make_client(self.api_key, settings)
            if self._client is not None and self.chat_path:
                self._upstream = UpstreamHTTP.of(self.sdk, self._client, self.chat_path)

    def make_client(self, api_key: str, settings: ProviderSettings) -> Client:
        return self.client_class(
            api_key=api_key,
            # Always explicit: the SDK would otherwise read its <TYPE>_BASE_URL variable for
            # every provider of its type, not just the one that variable belongs to.
            base_url=settings.base_url or self.default_base_url,
            # The router retries (policy/retry.py); SDK retries would multiply with ours.
            max_retries=0,
        )

    def upstream(self) -> UpstreamHTTP:
        """Where chat bodies go, with the SDK client's headers and URL (see upstream.py)."""
        self.require_key()
        assert self._upstream is not None  # built whenever a key is set
        return self._upstream

    def send(
        self, body: dict[str, Any], timeout: float | None, request_id: str, stream: bool = False
    ) -> UpstreamResponse:
        """`body` sent to `chat_path`; the answer's body read unless `stream` (the caller then
        reads and closes it). An SDK error or a transport failure is translated here."""
        try:
            return self.upstream().post(
                orjson.dumps(body), self.timeout_for(timeout), request_id, stream
            )
        except Exception as exc:
            raise translate_sdk_error(exc, self.sdk, self) from exc

    def post(self, body: dict[str, Any], timeout: float | None, request_id: str) -> Any:
        """The whole answer to `body`, decoded."""
        response = self.send(body, timeout, request_id)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as exc:
            raise self.unreadable(exc) from exc

    @property
    def api_key(self) -> str | None:
        return self.settings.api_key.get_secret_value() if self.settings.api_key else None

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot serve requests, or None when it can."""
        if self.api_key is None:
            return f"{self.settings.api_key_env} is not set"
        return None

    def require_key(self) -> str:
        key = self.api_key
        if key is None:
            raise ProviderNotConfigured(self.name, self.settings.api_key_env)
        return key

    def timeout_for(self, seconds: float | None) -> Timeout:
        """A timeout of `seconds` (what the router's policy allows this attempt), else the
        provider's own `timeout`: for connecting, and for each read."""
        seconds = max(0.001, seconds) if seconds is not None else self.settings.timeout
        return Timeout(connect=min(seconds, self.settings.connect_timeout), read=seconds)

    @abstractmethod
    def complete(self, request: ChatRequest) -> ChatResponse: ...

    @abstractmethod
    def stream(self, request: ChatRequest, watch: Watch) -> Generator[ChatChunk, None, None]:
        """Yield deltas as they arrive, then exactly one final chunk with the finish reason and
        usage, reading the upstream under `watch` (see `watched`). Closing the generator early
        closes the upstream response."""

    def relay(self, request: RelayRequest, watch: Watch) -> RelayResponse:
        """Send a body already in this upstream's wire format, and hand back its raw answer
        (auth, base URL and error types still the SDK's)."""
        if not self.chat_path:
            raise NotImplementedError(f"{type(self).__name__} does not relay requests")
        body = dict(request.body)
        if body.get("stream") is not True:
            # A whole answer, read at once and bounded by the read timeout, as complete() is:
            # nothing to pass on as it arrives, so nothing to watch.
            return RelayResponse.whole(self.send(body, request.timeout, request.request_id))
        response, chunks = self.open_watched(body, request.timeout, request.request_id, watch)
        return RelayResponse.of(response, chunks, self, watch)

    def open_watched(
        self, body: dict[str, Any], timeout: float | None, request_id: str, watch: Watch
    ) -> tuple[UpstreamResponse, Generator[bytes, None, None]]:
        """A streamed answer to `body`, and its bytes as they arrive, read under `watch`: the
        first within the call's timeout, then none more than `stream_idle_timeout` apart."""
        deadline = time.monotonic() + (timeout or self.settings.timeout)
        response = self.send(body, timeout, request_id, stream=True)
        chunks = self.watched(response.iter_bytes(), response, watch, deadline - time.monotonic())
        return response, chunks

    def events(
        self, body: dict[str, Any], request: ChatRequest, watch: Watch
    ) -> Generator[bytes, None, None]:
        """The data of each server-sent event of a streamed answer to `body`, read under
        `watch`; the upstream response is closed when they end or are closed. A failure
        reaches the caller untranslated: pass it to `stream_error`."""
        response, chunks = self.open_watched(body, request.timeout, request.request_id, watch)
        try:
            yield from sse_data(chunks)
        finally:
            chunks.close()
            response.close()

    def watched(
        self, items: Iterable[Item], response: Any, watch: Watch, first_seconds: float
    ) -> Generator[Item, None, None]:
        """`items` read from `response` under `watch`: the first within `first_seconds`, then
        none more than `stream_idle_timeout` apart. The clock stops while the consumer holds
        an item."""
        watch.attach(response, max(0.001, first_seconds))
        for item in items:
            watch.pause()
            yield item
            watch.rearm(self.settings.idle_timeout)
        watch.done()
        if watch.reason is not None:
            # Cut off between reads: the body just looked ended (see stream_error for why).
            raise ConnectionAbortedError(f"upstream response cut off ({watch.reason})")

    def unreadable(self, exc: Exception) -> UpstreamUnavailable:
        """An answer that is not the shape the upstream's API documents."""
        return UpstreamUnavailable(
            f"provider {self.name!r} sent an answer the router cannot read "
            f"({type(exc).__name__}: {redact(str(exc), self.api_key)})",
            self.name,
        )

    def failed_mid_stream(self, error: Any) -> UpstreamUnavailable:
        """What an error event in a stream that had already answered 200 means; `error` is the
        event's error object."""
        text = error_message(error) or "an error event"
        return UpstreamUnavailable(
            f"provider {self.name!r} failed mid-stream: {redact(text, self.api_key)}", self.name
        )

    def stream_error(self, exc: Exception, watch: Watch) -> RouterError:
        """What a failure while reading a watched stream means: the watch knows whether it cut
        the stream off itself."""
        if watch.reason == "timeout":
            return UpstreamTimeout(
                f"provider {self.name!r} sent nothing for {watch.limit:g}s", self.name
            )
        if watch.reason == "cancelled":
            return Cancelled("the client went away; the upstream call was cut off")
        return translate_sdk_error(exc, self.sdk, self)

    def close(self) -> None:
        """Release the upstream connections (the fast path's, and the SDK client's)."""
        if self._upstream is not None:
            self._upstream.close()
        if self._client is not None:
            close: Any = getattr(self._client, "close")
            close()


AnyProvider = Provider[Any]  # a provider, whatever its SDK client


def translate_sdk_error(exc: Exception, sdk: ModuleType, provider: Provider[Any]) -> RouterError:
    """Map an exception raised by an official SDK (openai or anthropic, which share a shape), by
    httpx2 underneath it, or by the fast path's transport (transport.py) to a RouterError.
    Classified by type and status, never by text."""
    name = provider.name
    if isinstance(exc, RouterError):
        return exc
    if isinstance(exc, (sdk.APITimeoutError, httpx2.TimeoutException, TimeoutError)):
        return UpstreamTimeout(
            f"provider {name!r} did not answer within {provider.settings.timeout:g}s", name
        )
    if isinstance(exc, http.client.HTTPException) and not isinstance(exc, HTTPConnectionClosed):
        # The transport's (geventhttpclient's parser, or UnreadableAnswer): not HTTP it can read.
        return provider.unreadable(exc)
    if isinstance(exc, orjson.JSONDecodeError):
        # A stream event (or a body) whose data is not the JSON the upstream's API documents.
        return provider.unreadable(exc)
    if isinstance(exc, UnreachableUpstream):
        return UpstreamUnavailable(
            f"provider {name!r} could not be reached: {redact(str(exc), provider.api_key)}", name
        )
    transport_errors = (httpx2.TransportError, HTTPConnectionClosed, OSError)
    if isinstance(exc, (sdk.APIConnectionError, *transport_errors)):
        return UpstreamUnavailable(
            f"provider {name!r} could not be reached or dropped the connection "
            f"({_cause_name(exc)})",
            name,
        )
    if isinstance(exc, sdk.APIStatusError) and exc.status_code >= 400:
        return _from_status(exc.status_code, _upstream_message(exc, provider), exc, name)
    if isinstance(exc, sdk.APIError):
        # An error event in the middle of a stream that had already answered 200.
        return UpstreamUnavailable(
            f"provider {name!r} failed mid-stream: {_upstream_message(exc, provider)}", name
        )
    return UpstreamUnavailable(f"provider {name!r} failed: {type(exc).__name__}", name)


def _from_status(status: int, detail: str, exc: Any, name: str) -> UpstreamError:
    if status in (401, 403):
        # The upstream's own text may quote part of our key: leave it out entirely.
        return UpstreamAuthFailed(
            f"provider {name!r} rejected the router's API key (HTTP {status}); "
            "the router's operator must fix the provider key",
            name,
            status,
        )
    if status == 429:
        return UpstreamRateLimited(
            f"provider {name!r} is rate limiting the router (HTTP 429): {detail}",
            name,
            status,
            retry_after=_retry_after(exc),
        )
    retry_after = _retry_after(exc)
    if status in (400, 404, 409, 413, 422):
        return UpstreamRejected(
            f"provider {name!r} rejected the request: {detail}", name, status, retry_after
        )
    if status == 408:
        return UpstreamTimeout(f"provider {name!r} timed out (HTTP 408): {detail}", name, status)
    return UpstreamUnavailable(
        f"provider {name!r} failed (HTTP {status}): {detail}", name, status, retry_after
    )


def _upstream_message(exc: Any, provider: Provider[Any]) -> str:
    text = error_message(getattr(exc, "body", None)) or type(exc).__name__
    return redact(text, provider.api_key)


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, REDACTED) if secret else text


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000.0
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    return type(cause).__name__
