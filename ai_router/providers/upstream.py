"""The fast path to an upstream: the SDK's own request, without the SDK's typed layers.

The official SDKs turn every call into a typed request transform, a request build and a typed
response parse, which cost about 1 ms of CPU per call on this project's machines (see
../shared/PROVIDER_WIRE.md, "Where the two SDKs cost time"). The router sends bodies it has
already built as plain JSON, and reads answers as plain JSON, so it needs none of that. What it
keeps from the SDK is what makes a request the API's: the headers (auth, API version, user agent)
and the URL, captured once from a request the SDK client itself builds, and the SDK's error type
for an error status, so errors are classified on one path (base.translate_sdk_error). The SDK's
telemetry headers (x-stainless-*, describing the SDK's runtime and retries) are left out: the SDK
does not send these requests, and each header costs the fast path about 5 us.

The bytes do not go over the SDKs' httpx2 either (transport.py says what carries them).
Measured in one gunicorn gevent worker relaying to a local upstream (wrk, 4 s): httpx2 697 req/s
at one connection and 533 at 32, urllib3 1,027 and 1,587. httpx2's pool walks every connection,
polling each idle one's socket, twice per request, so its cost grows with the concurrency.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import httpx2
import orjson

from ai_router.providers.transport import Timeout, UpstreamResponse, transport_for

# Headers that belong to one request, not to every request: the transport sets them.
_PER_REQUEST_HEADERS = frozenset({"host", "content-length"})
_SDK_TELEMETRY = "x-stainless-"


class UpstreamHTTP:
    """POSTs JSON bodies to one upstream as its SDK client would."""

    def __init__(self, sdk: ModuleType, url: str, headers: dict[str, str]) -> None:
        self._sdk = sdk
        self.url = url
        self._headers = headers
        self._transport = transport_for(url, headers)

    @classmethod
    def of(cls, sdk: ModuleType, client: Any, path: str) -> UpstreamHTTP:
        """The path to `path` of the upstream of `client`, an SDK client."""
        request = _request_built_by(client, path)
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in _PER_REQUEST_HEADERS
            and not name.lower().startswith(_SDK_TELEMETRY)
        }
        return cls(sdk, str(request.url), headers)

    def close(self) -> None:
        """Close the pooled connections (a reload replaces the router and its providers)."""
        self._transport.close()

    def post(
        self, body: bytes, timeout: Timeout, request_id: str = "", stream: bool = False
    ) -> UpstreamResponse:
        """Send `body` (JSON). The answer's body is read unless `stream`, in which case the
        caller reads and closes it. An error status raises the SDK's APIStatusError, as the
        SDK would; connection failures and timeouts raise the transport's errors."""
        extra = {"x-request-id": request_id} if request_id else {}
        response = self._transport.post(body, extra, timeout, stream)
        if response.status_code >= 400:
            try:
                content = response.content
            finally:
                response.close()
            raise status_error(self._sdk, response, content, self.url)
        return response


def status_error(
    sdk: ModuleType, response: UpstreamResponse, content: bytes, url: str
) -> Exception:
    """The SDK's APIStatusError for an error answer, with the body and message it would give
    (and, like the SDK's, an httpx2.Response to read the status and headers from)."""
    as_httpx = httpx2.Response(
        response.status_code,
        headers=response.header_items(),
        content=content,
        request=httpx2.Request("POST", url),
    )
    body: Any = as_httpx.text.strip()
    message = f"Error code: {response.status_code}"
    try:
        body = orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    detail = error_message(body)
    if detail:
        message += f" - {detail}"
    error: Exception = sdk.APIStatusError(message, response=as_httpx, body=body)
    return error


def error_message(body: object) -> str | None:
    """The message of an API error: of `{"error": {"message": ...}}` (both families' error
    bodies) or of the error object itself (a stream's error event), when it has one."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else None


def sse_data(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The `data` of each server-sent event in a byte stream (several data lines joined by a
    newline, as the SSE format says); events without data (comments, pings) are skipped."""
    pending = b""
    for chunk in chunks:
        events, pending = split_events(pending + chunk)
        for event in events:
            data = _data_of(event)
            if data is not None:
                yield data
    data = _data_of(pending)
    if data is not None:
        yield data


def split_events(pending: bytes) -> tuple[list[bytes], bytes]:
    """The complete server-sent events at the start of `pending`, without the blank lines that
    end them, and the incomplete rest. Line ends come out as \n. bytes.split, not a regular
    expression: on a 64-event read, 15 us against 140 (the relay's time to first token)."""
    if b"\r" in pending:
        # A lone \r at the end may be half of a \r\n: it is fixed when the rest arrives.
        pending = pending.replace(b"\r\n", b"\n")
    *events, rest = pending.split(b"\n\n")
    return events, rest


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
