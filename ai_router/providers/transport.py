"""How the fast path's bytes reach an upstream: a keep-alive pool of connections to one URL.

Two implementations, one per kind of process, chosen by `transport_for`:

- Under gevent (the HTTP front door), geventhttpclient (gevent_transport.py): a pool of gevent
  sockets and llhttp, a C parser. The request head is rendered once (the SDK's headers never
  change) and goes out with the body in one write. One call to a local upstream cost 270 us of
  CPU on urllib3 and 115 us on geventhttpclient (in-process, 3,000 calls); the router's
  /v1/chat/completions at concurrency 4 (one gevent worker, wrk, the two alternated three times)
  did 521/794/613 req/s on urllib3 and 698/866/772 on geventhttpclient.
- In threads (the gRPC front door, not monkey-patched), urllib3: geventhttpclient's sockets
  belong to one gevent hub, so they cannot be shared between threads.

Both take proxies from the environment (HTTPS_PROXY, NO_PROXY, ...) and certificates from
SSL_CERT_FILE or certifi, as the SDKs' httpx2 did; neither retries (the router does, in
policy/retry.py).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.request
from base64 import b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import certifi
import urllib3

# Idle connections urllib3 keeps per upstream. Beyond it a connection is closed after its call,
# which urllib3 logs as a warning (silenced in logs.py): the router bounds its concurrency itself.
KEEPALIVE_CONNECTIONS = 1000
READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds to connect, and seconds any one read may wait."""

    connect: float
    read: float


class UpstreamResponse(Protocol):
    """An answer being read: status, headers, the body as it arrives."""

    content_type: str

    @property
    def status_code(self) -> int: ...

    @property
    def content(self) -> bytes:
        """The whole body (read to its end, if it was not)."""

    def header_items(self) -> list[tuple[str, str]]:
        """Every header, as (name, value) pairs."""

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's bytes as they arrive."""

    def shut_down(self) -> None:
        """Cut the connection off from another thread (or greenlet): the reader wakes with an
        error or EOF at once."""

    def close(self) -> None:
        """Done with the answer: a body read to its end has already given its connection back
        to the pool; one left unread takes its connection down with it. Idempotent."""


class Transport(Protocol):
    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> UpstreamResponse:
        """POST `body` with the transport's own headers and `headers`; the body of the answer
        is read whole unless `stream`. Connection failures raise OSError (TimeoutError when
        out of time) or urllib3's errors; a malformed answer raises http.client's
        HTTPException."""

    def close(self) -> None:
        """Close the pooled connections."""


def transport_for(url: str, headers: Mapping[str, str]) -> Transport:
    """The transport to `url` sending `headers` on every call, for this process."""
    if _gevent_patched():
        # Imported only here: a process without gevent (the gRPC front door) never loads it.
        from ai_router.providers.gevent_transport import GeventTransport

        return GeventTransport(url, headers)
    return Urllib3Transport(url, headers)


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, if any."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return proxy
    return None


def proxy_authorization(proxy: str) -> dict[str, str]:
    """The Proxy-Authorization header for the credentials in `proxy`'s URL, if it has any."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return {"Proxy-Authorization": "Basic " + b64encode(credentials.encode()).decode("ascii")}


def ca_certs() -> str:
    return os.environ.get("SSL_CERT_FILE") or certifi.where()


def target_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


# --- urllib3, in threads ------------------------------------------------------------------------


class Urllib3Response:
    def __init__(self, raw: urllib3.BaseHTTPResponse) -> None:
        self._raw = raw
        self.status_code = raw.status
        self.content_type = raw.headers.get("content-type", "application/json")

    @property
    def content(self) -> bytes:
        return self._raw.data

    def header_items(self) -> list[tuple[str, str]]:
        return list(self._raw.headers.items())

    def iter_bytes(self) -> Iterator[bytes]:
        """One HTTP chunk at a time when chunked (as SSE streams are), else whatever each socket
        read brings."""
        raw: Any = self._raw
        if raw.chunked and raw.supports_chunked_reads():
            yield from raw.read_chunked(decode_content=True)
            return
        while data := raw.read1(READ_SIZE):
            yield data

    def shut_down(self) -> None:
        connection: Any = getattr(self._raw, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is None:
            self.close()
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def close(self) -> None:
        self._raw.close()


class Urllib3Transport:
    """urllib3's pool for the upstream, or, when the environment names a proxy for it, a proxy
    manager."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        self._headers = dict(headers)
        proxy = proxy_for(url)
        if proxy:
            manager = urllib3.ProxyManager(
                proxy,
                maxsize=KEEPALIVE_CONNECTIONS,
                ca_certs=ca_certs(),
                proxy_headers=proxy_authorization(proxy),
            )
            self._urlopen: Any = manager.urlopen
            self._target = url
            self._close = manager.clear
        else:
            managers = urllib3.PoolManager(maxsize=KEEPALIVE_CONNECTIONS, ca_certs=ca_certs())
            pool = managers.connection_from_url(url)
            self._urlopen, self._target, self._close = pool.urlopen, target_of(url), pool.close

    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> UpstreamResponse:
        raw = self._urlopen(
            "POST",
            self._target,
            body=body,
            headers={**self._headers, **headers} if headers else self._headers,
            timeout=urllib3.Timeout(connect=timeout.connect, read=timeout.read),
            retries=False,
            redirect=False,
            preload_content=not stream,
            decode_content=True,
        )
        return Urllib3Response(raw)

    def close(self) -> None:
        self._close()
