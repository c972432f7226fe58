"""The fast path to an upstream: the SDK's own request, without the SDK's typed layers.

The official SDKs turn every call into a typed request transform, a request build and a typed
response parse, which cost about 1 ms of CPU per call on this project's machines (see
../shared/PROVIDER_WIRE.md, "Where the two SDKs cost time"). The router sends bodies it has
already built as plain JSON, and reads answers as plain JSON, so it needs none of that. What it
keeps from the SDK is what makes a request the SDK's: the headers (auth, version, user agent) and
the URL, captured once from a request the SDK client itself builds; the SDK's httpx2 client with
its pool; and the SDK's error type for an error status, so errors are classified on one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import httpx2
import orjson

# Headers that belong to one request, not to every request: httpx2 sets host and length, and the
# SDK's read-timeout hints would state its default timeout, not the one in force.
_PER_REQUEST_HEADERS = frozenset(
    {"host", "content-length", "x-stainless-read-timeout", "x-stainless-timeout"}
)


class UpstreamHTTP:
    """POSTs JSON bodies to one upstream as its SDK client would, on that client's httpx2 pool."""

    def __init__(self, sdk: ModuleType, http: httpx2.Client, url: str, headers: dict[str, str]):
        self._sdk = sdk
        self._http = http
        self.url = url
        self._headers = headers

    @classmethod
    def of(cls, sdk: ModuleType, client: Any, http: httpx2.Client, path: str) -> UpstreamHTTP:
        """The path to `path` of the upstream `client` (an SDK client sending on `http`)."""
        request = _request_built_by(client, path)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _PER_REQUEST_HEADERS
        }
        return cls(sdk, http, str(request.url), headers)

    def post(
        self, body: bytes, timeout: httpx2.Timeout, request_id: str = "", stream: bool = False
    ) -> httpx2.Response:
        """Send `body` (JSON). The answer's body is read unless `stream`, in which case the
        caller reads and closes it. An error status raises the SDK's APIStatusError, as the
        SDK would; connection failures and timeouts raise httpx2's errors, as the SDK's own
        transport would underneath its wrappers."""
        headers = {**self._headers, "x-request-id": request_id} if request_id else self._headers
        request = self._http.build_request(
            "POST", self.url, content=body, headers=headers, timeout=timeout
        )
        response = self._http.send(request, stream=True)
        if response.status_code >= 400:
            try:
                response.read()
            finally:
                response.close()
            raise status_error(self._sdk, response)
        if not stream:
            try:
                response.read()
            finally:
                response.close()
        return response


def status_error(sdk: ModuleType, response: httpx2.Response) -> Exception:
    """The SDK's APIStatusError for an error answer, with the body and message it would give."""
    body: Any = response.text.strip()
    message = f"Error code: {response.status_code}"
    try:
        body = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        detail = body.get("error", body) if isinstance(body, dict) else None
        if isinstance(detail, dict) and isinstance(detail.get("message"), str):
            message += f" - {detail['message']}"
    error: Exception = sdk.APIStatusError(message, response=response, body=body)
    return error


def sse_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The `data` of each server-sent event in a byte stream (several data lines joined by a
    newline, as the SSE format says); events without data (comments, pings) are skipped."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        if b"\r" in pending:
            # A lone \r at the end may be half of a \r\n: it is fixed when the rest arrives.
            pending = pending.replace(b"\r\n", b"\n")
        *events, pending = pending.split(b"\n\n")
        for event in events:
            data = _data_of(event)
            if data is not None:
                yield data
    data = _data_of(pending)
    if data is not None:
        yield data


def _data_of(event: bytes) -> bytes | None:
    lines = [line[5:] for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[1:] if line.startswith(b" ") else line for line in lines)


def _request_built_by(client: Any, path: str) -> httpx2.Request:
    """The request `client` builds for a POST to `path`, captured by a transport that answers
    without sending anything: a copy of the client, so the real one's pool is untouched."""
    captured: list[httpx2.Request] = []

    def capture(request: httpx2.Request) -> httpx2.Response:
        captured.append(request)
        return httpx2.Response(200, json={})

    with httpx2.Client(transport=httpx2.MockTransport(capture)) as http:
        probe = client.copy(http_client=http, max_retries=0)
        probe.post(path, body={}, cast_to=httpx2.Response)
    return captured[0]
