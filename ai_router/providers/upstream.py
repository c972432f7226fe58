"""POSTing JSON to an upstream as its official SDK client would, without the SDK's typed layers.

What makes a request the API's (the auth header, the API version, the user agent, the URL) is
captured once from a request the SDK client itself builds; the body is sent as JSON the router
built, and the answer read as plain JSON. The SDK's telemetry headers (x-stainless-*, about its own
runtime and retries) are left out: the SDK does not send these requests. An error status, a
failed connection or an unreadable answer comes back as one of the router's errors (failures.py).
Why not through the SDK or its httpx2: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import httpx2

from ai_router.errors import RouterError
from ai_router.providers import failures
from ai_router.providers.transport import (
    FAILURES,
    Answer,
    Timeout,
    Transport,
    TransportFactory,
)

# Headers that belong to one request, not to every request: the transport sets them.
_PER_REQUEST_HEADERS = frozenset({"host", "content-length"})
_SDK_TELEMETRY = "x-stainless-"
REQUEST_ID_HEADER = "x-request-id"

# What an error answer means: failures.status_error, or a provider's own reading of its errors.
StatusError = Callable[[failures.Upstream, int, Iterable[tuple[str, str]], bytes], RouterError]


class UpstreamHTTP:
    """POSTs JSON bodies to one URL, with the headers of the SDK client it was made from."""

    def __init__(
        self,
        upstream: failures.Upstream,
        url: str,
        headers: Mapping[str, str],
        connect: TransportFactory,
        status_error: StatusError = failures.status_error,
    ) -> None:
        self.upstream = upstream
        self._status_error = status_error
        self.url = url
        self.headers = dict(headers)
        self._transport: Transport = connect(url, self.headers)

    def post(
        self,
        body: bytes,
        timeout: Timeout,
        request_id: str = "",
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """Send `body`, with `headers` of this request alone beside the fixed ones (a signature
        over this body). The answer's body is read unless `stream` (the caller then reads and
        closes it). Raises the router's errors only."""
        extra = {REQUEST_ID_HEADER: request_id} if request_id else {}
        if headers:
            extra.update(headers)
        try:
            answer = self._transport.post(body, extra, timeout, stream)
        except FAILURES as exc:
            raise failures.transport_error(self.upstream, exc, timeout.read) from exc
        if answer.status_code < 400:
            return answer
        try:
            content = answer.content
        except FAILURES as exc:
            raise failures.transport_error(self.upstream, exc) from exc
        finally:
            answer.close()
        raise self._status_error(self.upstream, answer.status_code, answer.header_items(), content)

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.close()


class UpstreamsOnDemand:
    """Upstreams made when a request first names one (a model in Gemini's URL, a deployment in
    Azure's), at most `limit` at once: the oldest is closed to make room, so that a client naming
    ever new models cannot grow them. A request on one closed meanwhile fails as a connection
    error, which is retried."""

    def __init__(self, limit: int = 64) -> None:
        self._limit = limit
        self._upstreams: dict[Hashable, UpstreamHTTP] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], UpstreamHTTP]) -> UpstreamHTTP:
        with self._lock:
            found = self._upstreams.get(key)
            if found is None:
                if len(self._upstreams) >= self._limit:
                    self._upstreams.pop(next(iter(self._upstreams))).close()
                found = self._upstreams[key] = make()
            return found

    def __len__(self) -> int:
        return len(self._upstreams)

    def close(self) -> None:
        with self._lock:
            upstreams, self._upstreams = list(self._upstreams.values()), {}
        for upstream in upstreams:
            upstream.close()


def rendering_only_http_client() -> httpx2.Client:
    """The HTTP client to give an SDK client whose requests are only rendered (sdk_request_head),
    never sent: left to make its own, the SDK loads the CA bundle into a TLS context for nothing,
    at every worker's start."""
    return httpx2.Client(transport=httpx2.MockTransport(lambda request: httpx2.Response(200, json={})))


def sdk_request_head(
    client: Any, path: str, body: Mapping[str, Any] | None = None, headers: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    """The URL and headers `client` (an openai or anthropic SDK client) sends a POST to `path`
    with, captured by a transport that answers without sending anything. `body` is what the SDK
    reads its URL from, if it does (Azure's deployment is the body's `model`); `headers` are the
    request's own, as the SDK's per-request `extra_headers` (an `Omit` removes one)."""
    captured: list[httpx2.Request] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        captured.append(request)
        return httpx2.Response(200, json={})

    with httpx2.Client(transport=httpx2.MockTransport(capture)) as http:
        probe = client.copy(http_client=http, max_retries=0)
        options = {"headers": dict(headers)} if headers else {}
        probe.post(path, body=dict(body or {}), cast_to=httpx2.Response, options=options)
    request = captured[0]
    headers = {
        name: value
        for name, value in request.headers.items()
        if name.lower() not in _PER_REQUEST_HEADERS and not name.lower().startswith(_SDK_TELEMETRY)
    }
    return str(request.url), headers
