"""The fast path's transport under gevent (the HTTP front door): geventhttpclient.

geventhttpclient keeps the pool of gevent sockets (checking an idle one is still open before
reusing it) and parses answers with llhttp, a C parser. This module writes the request head,
rendered once since the SDK's headers never change, and sends it with the body in one write;
and it reads the body as it arrives, where geventhttpclient's own `read(n)` waits for n bytes.
Imported only by a process gevent has patched (transport.transport_for).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import gevent
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
from geventhttpclient.response import HTTPConnectionClosed, HTTPSocketPoolResponse

from ai_router.providers.transport import (
    READ_SIZE,
    Timeout,
    ca_certs,
    proxy_authorization,
    proxy_for,
    target_of,
)

# The pool is also a semaphore on the calls in flight: sized far above any worker's open
# streams (5,000 per worker is a target), so that the router's own limits decide who waits.
POOL_SIZE = 100_000


class GeventTransport:
    """A connection pool for one upstream URL (through the environment's proxy, if it names
    one), and the head every request to it starts with."""

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        target = target_of(url)
        head_headers = {"Host": parts.netloc.rpartition("@")[2], **headers}
        # No timeouts of the pool's own: each call sets its own (see `post`).
        options: dict[str, Any] = {"size": POOL_SIZE, "connection_timeout": None}
        connect_host, connect_port = host, port
        proxy = proxy_for(url)
        if proxy:
            proxy_parts = urlsplit(proxy)
            connect_host, connect_port = proxy_parts.hostname or "", proxy_parts.port or 80
            options["use_proxy"] = True
            if proxy_parts.username is not None:
                options["proxy_user"] = unquote(proxy_parts.username)
                options["proxy_password"] = unquote(proxy_parts.password or "")
            if not tls:
                # A plain-HTTP proxy is sent the request itself, by its absolute URL, with its
                # credentials; an HTTPS upstream is reached through a CONNECT tunnel instead.
                target = url
                head_headers.update(proxy_authorization(proxy))
        self._pool: ConnectionPool
        if tls:
            self._pool = SSLConnectionPool(
                connect_host, connect_port, host, port, ssl_options={"ca_certs": ca_certs()},
                **options,
            )  # fmt: skip
        else:
            self._pool = ConnectionPool(connect_host, connect_port, host, port, **options)
        self._head = f"POST {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in head_headers.items()
        )

    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> GeventResponse:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"{self._head}{extra}Content-Length: {len(body)}\r\n\r\n"
        sock = None
        with gevent.Timeout(timeout.connect, False):  # False: on time-out, just leave the block
            sock = self._pool.get_socket()
        if sock is None:
            raise TimeoutError(f"no connection to the upstream within {timeout.connect:g}s")
        try:
            sock.settimeout(timeout.read)
            # One write: head and body apart would cost the upstream a second read.
            sock.sendall(head.encode("latin-1") + body)
        except BaseException:
            self._pool.release_socket(sock)
            raise
        response = GeventResponse(sock, self._pool)
        if not stream:
            response.read_whole()  # the connection goes back to the pool at once
        return response

    def close(self) -> None:
        self._pool.close()


class GeventResponse(HTTPSocketPoolResponse):
    """An answer, its head read on creation (the connection released if that fails). The
    parser hands each piece of the body to `_on_body`, and `iter_bytes` passes them on."""

    def __init__(self, sock: Any, pool: ConnectionPool) -> None:
        self._pieces: list[bytes] = []
        self._socket: Any = sock  # until the connection is released
        self._content: bytes | None = None
        super().__init__(sock, pool, block_size=READ_SIZE, method="POST")
        content_type = self.info().get("content-type", "application/json")
        self.content_type = content_type if isinstance(content_type, str) else content_type[0]

    def _on_body(self, buf: bytearray) -> None:
        self._pieces.append(bytes(buf))

    def release(self) -> None:
        self._socket = None
        super().release()

    def read_whole(self) -> bytes:
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    @property
    def content(self) -> bytes:
        return self.read_whole()

    def header_items(self) -> list[tuple[str, str]]:
        return list(self.info().items())

    def iter_bytes(self) -> Iterator[bytes]:
        while True:
            if self._pieces:
                pieces, self._pieces = self._pieces, []
                yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
                continue
            if self.message_complete:
                return
            sock = self._socket
            if sock is None:
                raise HTTPConnectionClosed("the answer was closed before its end")
            try:
                data = sock.recv(READ_SIZE)
                if not data:
                    raise HTTPConnectionClosed("the upstream closed the connection mid-answer")
                self.feed(data)
            except BaseException:
                self.release()
                raise

    def shut_down(self) -> None:
        sock = self._socket
        if sock is None:
            return  # finished: its connection may already be serving another call
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def close(self) -> None:
        self.release()
