"""What an upstream's failure means, as the router's errors: the one place where HTTP statuses,
transport exceptions and unreadable answers become RouterErrors. Classified by type and status
code, never by message text; a message never carries the provider's key.
"""

from __future__ import annotations

from collections.abc import Iterable
from http.client import HTTPException
from typing import Any

import orjson

from ai_router.errors import (
    ContentFiltered,
    RouterError,
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from ai_router.providers.transport import HTTPConnectionClosed, UnreachableUpstream

REDACTED = "[redacted]"
# The request itself was refused: the client's to fix (409, a conflict, is retried).
_REJECTED = (400, 404, 409, 413, 422)


class Upstream:
    """Who failed: the provider's name, and its key, which no message may carry."""

    def __init__(self, name: str, secret: str | None, timeout: float) -> None:
        self.name = name
        self._secret = secret
        self.timeout = timeout

    def redact(self, text: str) -> str:
        return text.replace(self._secret, REDACTED) if self._secret else text


def status_error(
    upstream: Upstream, status: int, headers: Iterable[tuple[str, str]], content: bytes
) -> UpstreamError:
    """An error answer (status 400 and up) of the upstream."""
    name = upstream.name
    retry_after = _retry_after(headers)
    if status in (401, 403):
        # The upstream's own text may quote part of our key: leave it out entirely.
        return UpstreamAuthFailed(
            f"provider {name!r} rejected the router's API key (HTTP {status}); "
            "the router's operator must fix the provider key",
            name,
            status,
        )
    body = _json(content)
    detail = upstream.redact(error_message(body) or f"HTTP {status}")
    filtered = _content_filtered(body)
    if status == 400 and filtered is not None:
        return ContentFiltered(
            f"provider {name!r} refused the request: its content filter blocked it"
            f"{filtered}: {detail}",
            name,
            status,
        )
    if status == 429:
        return UpstreamRateLimited(
            f"provider {name!r} is rate limiting the router (HTTP 429): {detail}",
            name,
            status,
            retry_after=retry_after,
        )
    if status in _REJECTED:
        return UpstreamRejected(
            f"provider {name!r} rejected the request: {detail}", name, status, retry_after
        )
    if status == 408:
        return UpstreamTimeout(f"provider {name!r} timed out (HTTP 408): {detail}", name, status)
    return UpstreamUnavailable(
        f"provider {name!r} failed (HTTP {status}): {detail}", name, status, retry_after
    )


def transport_error(
    upstream: Upstream, exc: OSError | HTTPException, seconds: float | None = None
) -> RouterError:
    """A failure to send, or to read the answer: a timeout (of `seconds`, what the attempt was
    given, else the provider's timeout), a dropped or refused connection, an answer that is not
    HTTP the transport can read."""
    name = upstream.name
    if isinstance(exc, TimeoutError):
        limit = upstream.timeout if seconds is None else seconds
        return UpstreamTimeout(f"provider {name!r} did not answer within {limit:g}s", name)
    if isinstance(exc, HTTPException) and not isinstance(exc, HTTPConnectionClosed):
        return unreadable(upstream, exc)
    if isinstance(exc, UnreachableUpstream):
        return UpstreamUnavailable(
            f"provider {name!r} could not be reached: {upstream.redact(str(exc))}", name
        )
    return UpstreamUnavailable(
        f"provider {name!r} could not be reached or dropped the connection ({_cause_name(exc)})",
        name,
    )


def unreadable(upstream: Upstream, exc: BaseException) -> UpstreamUnavailable:
    """An answer that is not the shape the upstream's API documents (not JSON, say)."""
    return UpstreamUnavailable(
        f"provider {upstream.name!r} sent an answer the router cannot read "
        f"({type(exc).__name__}: {upstream.redact(str(exc))})",
        upstream.name,
    )


def failed_mid_stream(upstream: Upstream, error: Any) -> UpstreamUnavailable:
    """What an error event means in a stream that had already answered 200; `error` is the
    event's error object."""
    text = error_message(error) or "an error event"
    return UpstreamUnavailable(
        f"provider {upstream.name!r} failed mid-stream: {upstream.redact(text)}", upstream.name
    )


def error_message(body: object) -> str | None:
    """The message of an API error: of `{"error": {"message": ...}}` (both families' error
    bodies) or of the error object itself (a stream's error event), when it has one."""
    error = body.get("error", body) if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) and message else None


def _json(content: bytes) -> object:
    try:
        body: object = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    return body


def _content_filtered(body: object) -> str | None:
    """For Azure OpenAI's content-filter error (`error.code` "content_filter"), the categories
    it filtered, as " (hate: medium, ...)" (or ""); None for any other error."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or error.get("code") != "content_filter":
        return None
    inner = error.get("innererror")
    results = inner.get("content_filter_result") if isinstance(inner, dict) else None
    if not isinstance(results, dict):
        return ""
    filtered = [
        f"{category}: {result.get('severity', 'filtered')}"
        for category, result in results.items()
        if isinstance(result, dict) and result.get("filtered")
    ]
    return f" ({', '.join(filtered)})" if filtered else ""


def _retry_after(headers: Iterable[tuple[str, str]]) -> float | None:
    """Seconds the upstream asked us to wait: retry-after-ms, else retry-after (in seconds)."""
    found = {name.lower(): value for name, value in headers}
    try:
        if "retry-after-ms" in found:
            return float(found["retry-after-ms"]) / 1000.0
        if "retry-after" in found:
            return float(found["retry-after"])
    except ValueError:
        return None
    return None


def _cause_name(exc: BaseException) -> str:
    cause = exc.__cause__ or exc.__context__ or exc
    return type(cause).__name__
