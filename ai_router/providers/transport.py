"""How the bytes reach an upstream: a keep-alive pool of connections to one URL.

The bytes go over geventhttpclient: a pool of gevent sockets (an idle one checked before it is
reused) and llhttp, a C parser, for the answers. The request head is rendered once (the SDK's
headers never change) and sent with the body in one write; the body is read as it arrives.

Under gevent (the HTTP front door) the pool's sockets are gevent's, in the process's one hub. In
threads (the gRPC front door, which gevent does not patch) they are plain blocking sockets in one
pool that every thread shares (ThreadedTransport): a gevent socket there would give each thread a
hub of its own (a libev loop, two descriptors, a resolver thread) for every thread that holds a
stream, and a pool of idle connections per thread.

Proxies come from the environment (HTTPS_PROXY, NO_PROXY, ...) and certificates from
SSL_CERT_FILE or certifi, as the SDKs' httpx2 did. Nothing is retried here (the router retries,
in policy/retry.py). Measurements behind these choices: docs/PERFORMANCE.md.
"""

from __future__ import annotations

import os
import queue
import select
import socket
import ssl
import sys
import threading
import urllib.request
from base64 import b64encode
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import certifi
import gevent
from gevent.monkey import get_original
from geventhttpclient.connectionpool import ConnectionPool, SSLConnectionPool
# Re-exported: the router tells a dropped connection from an answer it cannot read.
from geventhttpclient.response import HTTPConnectionClosed as HTTPConnectionClosed
from geventhttpclient.response import HTTPSocketPoolResponse

READ_SIZE = 65536
# Of a read that holds the head and then body, only this much is parsed before the first of the
# body is handed on; the rest when the body is next read. The parser calls back once per HTTP
# chunk, so a burst of events (a buffering proxy, a fast local model; the bench's upstream sends
# a whole 64-event stream in one write) would otherwise be parsed whole before the
# first token went out.
FIRST_PARSE = 4096
# A pool is also a semaphore on the calls in flight: sized far above any worker's open streams
# (5,000 per worker is a target), so that the router's own limits decide who waits.
POOL_SIZE = 100_000


@dataclass(frozen=True, slots=True)
class Timeout:
    """Seconds to connect, and seconds any one read may wait."""

    connect: float
    read: float


class Answer(Protocol):
    """An upstream's answer being read: its head is in, its body is read whole (`content`) or
    as it arrives (`iter_bytes`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def content_type(self) -> str: ...

    @property
    def content(self) -> bytes: ...

    def header_items(self) -> list[tuple[str, str]]: ...

    def iter_bytes(self) -> Iterator[bytes]: ...

    def shut_down(self) -> None:
        """Cut the connection off from any thread: the reader wakes with an error or EOF."""

    def close(self) -> None:
        """Done with the answer, read or not. Idempotent."""


class Transport(Protocol):
    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> Answer:
        """POST `body` with the transport's own headers and `headers`; the body of the answer
        is read whole unless `stream`. Connection failures raise OSError (TimeoutError when
        out of time); an answer that is not HTTP raises http.client's HTTPException."""

    def close(self) -> None:
        """Close the pooled connections."""


# What a transport raises for a failure to reach the upstream or to read its answer; anything
# else it raises is a fault of the router's own.
FAILURES = (OSError, HTTPException)

# Makes the transport to a URL that sends the given headers on every call: `transport_for`, or a
# fake one in tests (fake_transport.py).
TransportFactory = Callable[[str, Mapping[str, str]], Transport]


def transport_for(url: str, headers: Mapping[str, str]) -> Transport:
    """The transport to `url` sending `headers` on every call, for this process."""
    if _gevent_patched():
        return PooledTransport(url, headers)
    return ThreadedTransport(url, headers)


def _gevent_patched() -> bool:
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


# poll(2) itself, even in a process whose select module gevent has patched.
_poll: Any = get_original("select", "poll")


class _LivenessByPoll:
    """geventhttpclient checks that an idle pooled connection is still open with select(),
    which refuses a descriptor numbered past FD_SETSIZE (1024): in a worker holding thousands
    of client connections every upstream connection looked dead. poll(2) has no such limit;
    asked directly, rather than through gevent's select, it does not yield to the loop."""

    def _is_socket_alive(self, sock: Any) -> bool:
        if sock is None:
            return False
        try:
            descriptor = sock.fileno()
            if descriptor < 0:
                return False
            poller = _poll()
            poller.register(descriptor, select.POLLIN)
            # An idle connection has nothing to say: readable means closed, or out of step.
            return not poller.poll(0)
        except (OSError, ValueError):
            return False


class _Pool(_LivenessByPoll, ConnectionPool):
    pass


class _TLSPool(_LivenessByPoll, SSLConnectionPool):
    pass


_blocking_socket: Any = get_original("socket", "socket")
_blocking_getaddrinfo: Any = get_original("socket", "getaddrinfo")


class _NeverWaits:
    """The pool's semaphore for threads: its size (POOL_SIZE) is past any number of threads, so
    a thread never waits on it, and the standard library's (a Condition) cost 1 µs a call."""

    def acquire(self) -> bool:
        return True

    def release(self) -> None:
        pass


class _IdleSockets:
    """The pool's idle connections for threads, last in first out: a deque's append and pop
    are atomic, where queue.LifoQueue takes two Conditions a call. Another thread taking the
    last one between `empty` and `get` is the Empty the pool handles (it connects anew)."""

    def __init__(self) -> None:
        self._sockets: deque[Any] = deque()

    def empty(self) -> bool:
        return not self._sockets

    def get(self, block: bool = False) -> Any:
        try:
            return self._sockets.pop()
        except IndexError:
            raise queue.Empty from None

    def put(self, sock: Any) -> None:
        self._sockets.append(sock)


class _ThreadedPool(_LivenessByPoll, ConnectionPool):
    """geventhttpclient's pool, made for threads: thread-safe (structures of the standard
    library's for gevent's), with plain blocking sockets, names resolved in the calling thread,
    and TLS by the standard library's ssl. The connect timeout is the calling thread's own, set
    before each get_socket (calls on several threads may have different ones)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._calls = threading.local()
        super().__init__(*args, **kwargs)
        self._semaphore = _NeverWaits()
        self._socket_queue = _IdleSockets()

    @property
    def connection_timeout(self) -> float:
        seconds: float = getattr(self._calls, "connect", self.DEFAULT_CONNECTION_TIMEOUT)
        return seconds

    @connection_timeout.setter
    def connection_timeout(self, seconds: float) -> None:
        self._calls.connect = seconds

    def _resolve(self) -> Any:
        family = socket.AF_INET if self.disable_ipv6 else 0
        host, port = self._connection_host, self._connection_port
        return _blocking_getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.SOL_TCP)

    def _create_tcp_socket(self, family: int, socktype: int, protocol: int) -> Any:
        return _blocking_socket(family, socktype, protocol)


class _ThreadedTLSPool(_ThreadedPool, SSLConnectionPool):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, ssl_context_factory=ssl.create_default_context, **kwargs)


class PooledTransport:
    """A connection pool for one upstream URL (through the environment's proxy, if it names
    one), and the head every request to it starts with; under gevent, its sockets are gevent's,
    in the process's one hub."""

    _pools: tuple[type[ConnectionPool], type[SSLConnectionPool]] = (_Pool, _TLSPool)

    def __init__(self, url: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host = parts.hostname or ""
        port = parts.port or (443 if tls else 80)
        target = _target_of(url)
        # The SDK's client would ask for gzip, deflate or br and decode the answer; this
        # transport passes bytes on as they come (streams above all), so it asks for them plain.
        head_headers = {
            "Host": parts.netloc.rpartition("@")[2],
            **{name: value for name, value in headers.items() if name.lower() != "accept-encoding"},
            "Accept-Encoding": "identity",
        }
        # No timeouts of the pool's own: each call sets its own (see `post`).
        options: dict[str, Any] = {"size": POOL_SIZE, "connection_timeout": None}
        connect_host, connect_port = host, port
        proxy = _proxy_for(url)
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
                head_headers.update(_proxy_authorization(proxy))
        plain_pool, tls_pool = self._pools
        self._pool: ConnectionPool
        if tls:
            self._pool = tls_pool(
                connect_host, connect_port, host, port, ssl_options={"ca_certs": _ca_certs()},
                **options,
            )  # fmt: skip
        else:
            self._pool = plain_pool(connect_host, connect_port, host, port, **options)
        self._head = f"POST {target} HTTP/1.1\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in head_headers.items()
        )

    def post(
        self, body: bytes, headers: Mapping[str, str], timeout: Timeout, stream: bool
    ) -> UpstreamResponse:
        extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"{self._head}{extra}Content-Length: {len(body)}\r\n\r\n"
        try:
            sock = self._connection(timeout.connect)
        except RuntimeError as exc:  # how geventhttpclient's pool says it, see UnreachableUpstream
            raise UnreachableUpstream(str(exc)) from exc
        if sock is None:
            raise TimeoutError(f"no connection to the upstream within {timeout.connect:g}s")
        try:
            sock.settimeout(timeout.read)
            # One write: head and body apart would cost the upstream a second read.
            sock.sendall(head.encode("latin-1") + body)
        except BaseException:
            self._pool.release_socket(sock)
            raise
        response = UpstreamResponse(sock, self._pool)
        if not stream:
            response.read_whole()  # the connection goes back to the pool at once
        return response

    def _connection(self, connect_timeout: float) -> Any:
        """A pooled connection, or a new one; None if that took longer than `connect_timeout`."""
        with gevent.Timeout(connect_timeout, False):  # False: on time-out, leave the block
            return self._pool.get_socket()
        return None

    def close(self) -> None:
        """Close the pooled connections."""
        self._pool.close()


class ThreadedTransport(PooledTransport):
    """For threads: one pool of plain blocking sockets shared by every thread of the process, so
    a thread holds nothing of the transport's between calls and the idle connections kept are
    at most as many as the calls there were at once, whatever the number of threads. A blocked
    read is cut off from another thread by `shut_down`, as under gevent."""

    _pools = (_ThreadedPool, _ThreadedTLSPool)

    def _connection(self, connect_timeout: float) -> Any:
        # A connect (and TLS handshake) that takes too long raises TimeoutError (socket.timeout).
        self._pool.connection_timeout = connect_timeout
        return self._pool.get_socket()


class UnreachableUpstream(ConnectionError):
    """No connection, for a reason the pool gives in words: a proxy that refused the CONNECT
    tunnel (its status line), a name that resolved to no address, a pool closed at shutdown."""


class UnreadableAnswer(HTTPException):
    """An answer the transport cannot pass on: one in a content coding it did not ask for."""


class UpstreamResponse(HTTPSocketPoolResponse):
    """An answer being read: its head read on creation (the connection released if that
    fails), then its body as it arrives. The parser hands each piece of the body to `_on_body`;
    `iter_bytes` passes them on, where geventhttpclient's own `read(n)` waits for n bytes."""

    def __init__(self, sock: Any, pool: ConnectionPool) -> None:
        self._pieces: list[bytes] = []
        self._unparsed = b""  # read with the head, parsed when the body is next read
        self._socket: Any = sock  # until the connection is released
        self._content: bytes | None = None
        super().__init__(sock, pool, block_size=READ_SIZE, method="POST")
        content_type = self.info().get("content-type", "application/json")
        self.content_type = content_type if isinstance(content_type, str) else content_type[0]
        coding = self.info().get("content-encoding", "identity")
        if not isinstance(coding, str) or coding.lower() != "identity":
            self.release()
            raise UnreadableAnswer(f"the answer came in the content coding {coding!r}, unasked")

    def feed(self, data: str | bytes) -> None:
        """Parse `data`; of a read that ends the head, only FIRST_PARSE bytes for now."""
        if isinstance(data, str) or self.headers_complete or len(data) <= FIRST_PARSE:
            super().feed(data)
            return
        super().feed(data[:FIRST_PARSE])
        if self.headers_complete and self.get_code() >= 200:
            self._unparsed = data[FIRST_PARSE:]
        else:
            # A head longer than that, or only an interim 1xx answer's so far: parse on, since
            # the head's reader (geventhttpclient's) would otherwise read the socket past it.
            super().feed(data[FIRST_PARSE:])

    def _on_body(self, buf: bytearray) -> None:
        self._pieces.append(bytes(buf))

    def release(self) -> None:
        self._socket = None
        super().release()

    def read_whole(self) -> bytes:
        """The whole body (read to its end, if it was not)."""
        if self._content is None:
            self._content = b"".join(self.iter_bytes())
        return self._content

    @property
    def content(self) -> bytes:
        return self.read_whole()

    def header_items(self) -> list[tuple[str, str]]:
        """Every header, as (name, value) pairs."""
        return list(self.info().items())

    def iter_bytes(self) -> Iterator[bytes]:
        """The body's bytes as they arrive."""
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
                if self._unparsed:
                    data, self._unparsed = self._unparsed, b""
                else:
                    data = sock.recv(READ_SIZE)
                    if not data:
                        raise HTTPConnectionClosed("the upstream closed the connection mid-answer")
                self.feed(data)
            except BaseException:
                self.release()
                raise

    def shut_down(self) -> None:
        """Cut the connection off from another thread (or greenlet): the reader wakes with an
        error or EOF at once."""
        sock = self._socket
        if sock is None:
            return  # finished: its connection may already be serving another call
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def close(self) -> None:
        """Done with the answer: a body read to its end has already given its connection back
        to the pool; one left unread takes its connection down with it. Idempotent."""
        self.release()


def _proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url`, if any."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return proxy
    return None


def _proxy_authorization(proxy: str) -> dict[str, str]:
    """The Proxy-Authorization header for the credentials in `proxy`'s URL, if it has any."""
    parts = urlsplit(proxy)
    if parts.username is None:
        return {}
    credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return {"Proxy-Authorization": "Basic " + b64encode(credentials.encode()).decode("ascii")}


def _ca_certs() -> str:
    return os.environ.get("SSL_CERT_FILE") or certifi.where()


def _target_of(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
