"""What the OpenAI and Anthropic providers share: a JSON API over HTTP, reached with the URL and
headers of the upstream's official SDK client (upstream.py), its answers read under a watch, and
every failure raised as one of the router's errors.

A subclass names its SDK client class, its default base URL and the path chat bodies go to (and
the paths of any other endpoints it relays), and implements `complete` and `stream` by building
its upstream's JSON body and reading its JSON answer with `post` (a whole answer) and `events`
(the data of a stream's events).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from http.client import HTTPException
from typing import Any, ClassVar, TypeVar

import orjson

from ai_router.call import Endpoint
from ai_router.config import ProviderSettings
from ai_router.errors import (
    Cancelled,
    RouterError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.providers import failures
from ai_router.providers.base import Provider, RelayRequest, RelayResponse
from ai_router.providers.transport import (
    FAILURES,
    Answer,
    Timeout,
    TransportFactory,
    transport_for,
)
from ai_router.providers.upstream import UpstreamHTTP, rendering_only_http_client, sdk_request_head
from ai_router.types import ChatRequest
from ai_router.upstream_watch import Watch
from ai_router.wire import sse

Item = TypeVar("Item")


class HTTPProvider(Provider):
    # The SDK's client class (called with api_key, base_url, max_retries), the upstream's public
    # address, and the path chat bodies go to, built or relayed.
    client_class: ClassVar[Callable[..., Any]]
    default_base_url: ClassVar[str]
    chat_path: ClassVar[str]
    # The upstream's other endpoints that a body of its family is relayed to, and their paths.
    other_paths: ClassVar[Mapping[Endpoint, str]] = {}

    def __init__(self, settings: ProviderSettings, connect: TransportFactory = transport_for) -> None:
        super().__init__(settings)
        self.failing = failures.Upstream(self.name, self.api_key, settings.timeout)
        self.connect = connect
        # One per endpoint: a transport sends to one URL, its request head rendered once.
        self._upstreams: dict[Endpoint, UpstreamHTTP] = {}
        if self.api_key is not None or not settings.key_required:
            for endpoint, (url, headers) in self._sdk_heads().items():
                self._upstreams[endpoint] = UpstreamHTTP(self.failing, url, headers, connect)

    def sdk_client(self) -> Any:
        """The SDK client whose requests ours imitate."""
        return self.client_class(
            # A server that takes no key gets none: the SDK needs a value, `sdk_headers` omits it.
            api_key=self.api_key or "unused",
            # Always explicit: the SDK would otherwise read its <TYPE>_BASE_URL variable for
            # every provider of its type, not just the one that variable belongs to.
            base_url=self.settings.base_url or self.default_base_url,
            # The router retries (policy/retry.py); SDK retries would multiply with ours.
            max_retries=0,
            default_headers=self.settings.headers or None,
            http_client=rendering_only_http_client(),
        )

    def sdk_headers(self) -> dict[str, Any]:
        """Per-request headers of the SDK's request (its SDK's `Omit` removes one): how a
        subclass leaves out the credential of a provider that takes no key."""
        return {}

    def _sdk_heads(self) -> dict[Endpoint, tuple[str, dict[str, str]]]:
        client = self.sdk_client()
        paths: dict[Endpoint, str] = {"chat": self.chat_path, **self.other_paths}
        headers = self.sdk_headers()
        try:
            return {
                endpoint: sdk_request_head(client, path, headers=headers)
                for endpoint, path in paths.items()
            }
        finally:
            client.close()

    def upstream_for(self, endpoint: Endpoint, body: Mapping[str, Any]) -> UpstreamHTTP | None:
        """Where `body` goes: the endpoint's one URL here; a provider whose URL depends on the
        body (Azure's deployments) says otherwise."""
        return self._upstreams.get(endpoint)

    def send(
        self,
        body: dict[str, Any],
        timeout: float | None,
        request_id: str,
        stream: bool = False,
        endpoint: Endpoint = "chat",
    ) -> Answer:
        """`body` sent to the endpoint's path; the answer's body read unless `stream`."""
        if self.settings.key_required:
            self.require_key()
        upstream = self.upstream_for(endpoint, body)
        if upstream is None:
            raise NotImplementedError(f"{type(self).__name__} has no {endpoint} endpoint")
        return upstream.post(orjson.dumps(body), self.timeout_for(timeout), request_id, stream)

    def post(self, body: dict[str, Any], timeout: float | None, request_id: str) -> Any:
        """The whole answer to `body`, decoded."""
        answer = self.send(body, timeout, request_id)
        try:
            return orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise self.unreadable(exc) from exc

    def events(
        self, body: dict[str, Any], request: ChatRequest, watch: Watch
    ) -> Generator[bytes, None, None]:
        """The data of each server-sent event of a streamed answer to `body`, read under
        `watch`. Raises the router's errors; closing it closes the upstream answer."""
        answer, chunks = self._open_watched(body, request.timeout, request.request_id, watch)
        read = self._read(chunks, watch)
        try:
            yield from sse.event_data(read)
        finally:
            read.close()
            answer.close()

    def relay(self, request: RelayRequest, watch: Watch) -> RelayResponse:
        body = dict(request.body)
        if not request.stream:
            # Read at once and bounded by the read timeout, as complete() is: nothing to pass on
            # as it arrives, so nothing to watch.
            answer = self.send(body, request.timeout, request.request_id, endpoint=request.endpoint)
            return RelayResponse(answer.status_code, answer.content_type, iter((answer.content,)), answer.close)
        answer, chunks = self._open_watched(
            body, request.timeout, request.request_id, watch, request.endpoint
        )
        read = self._read(chunks, watch)

        def close() -> None:
            read.close()
            answer.close()

        return RelayResponse(answer.status_code, answer.content_type, read, close)

    def _open_watched(
        self,
        body: dict[str, Any],
        timeout: float | None,
        request_id: str,
        watch: Watch,
        endpoint: Endpoint = "chat",
    ) -> tuple[Answer, Iterator[bytes]]:
        """A streamed answer to `body`, and its bytes as they arrive under `watch`: the first
        within the call's timeout, then none more than `stream_idle_timeout` apart."""
        deadline = time.monotonic() + (timeout or self.settings.timeout)
        answer = self.send(body, timeout, request_id, stream=True, endpoint=endpoint)
        return answer, self._watched(answer.iter_bytes(), answer, watch, deadline - time.monotonic())

    def _watched(
        self, items: Iterable[Item], answer: Answer, watch: Watch, first_seconds: float
    ) -> Iterator[Item]:
        """`items` read under `watch`; the clock stops while the consumer holds an item."""
        watch.attach(answer, max(0.001, first_seconds))
        try:
            for item in items:
                watch.pause()
                yield item
                watch.rearm(self.settings.idle_timeout)
        finally:
            watch.done()
        if watch.reason is not None:
            # Cut off between reads: the body just looked ended.
            raise ConnectionAbortedError(f"upstream answer cut off ({watch.reason})")

    def _read(self, chunks: Iterator[bytes], watch: Watch) -> Generator[bytes, None, None]:
        """`chunks`, their failures translated: the watch knows whether it cut them off."""
        try:
            yield from chunks
        except FAILURES as exc:
            raise self._read_error(exc, watch) from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _read_error(self, exc: OSError | HTTPException, watch: Watch) -> RouterError:
        if watch.reason == "timeout":
            return UpstreamTimeout(
                f"provider {self.name!r} sent nothing for {watch.limit:g}s", self.name
            )
        if watch.reason == "cancelled":
            return Cancelled("the client went away; the upstream call was cut off")
        return failures.transport_error(self.failing, exc)

    def timeout_for(self, seconds: float | None) -> Timeout:
        """A timeout of `seconds` (what the router's policy allows this attempt), else the
        provider's own `timeout`: for connecting, and for each read."""
        seconds = max(0.001, seconds) if seconds is not None else self.settings.timeout
        return Timeout(connect=min(seconds, self.settings.connect_timeout), read=seconds)

    def unreadable(self, exc: BaseException) -> UpstreamUnavailable:
        return failures.unreadable(self.failing, exc)

    def failed_mid_stream(self, error: Any) -> UpstreamUnavailable:
        return failures.failed_mid_stream(self.failing, error)

    def close(self) -> None:
        for upstream in self._upstreams.values():
            upstream.close()
