"""The gunicorn worker of the HTTP front door: gunicorn's gevent worker on gevent's own HTTP
server (gunicorn's `gevent_pywsgi`), with a strict request parser and limits on slow clients.

gevent.pywsgi reads a request and writes its answer in fewer steps than gunicorn's own parser
and response object (docs/PERFORMANCE.md has the measurements). Its request head is read here
instead: within a size limit (431 beyond), parsed by llhttp (request_head.py: 400 and the
connection closed for what RFC 9112 refuses). The limits on slow clients: the request line of a
new or kept-alive connection within gunicorn's `keepalive`, the rest of the head within
`server.http_head_timeout`, no gap longer than `server.http_body_idle_timeout` while the body is
read, and all of it within `server.http_body_timeout` (408); and at most `server.http_max_waiting_connections` connections waiting for a head, one
closed to make room for a new one (the oldest that never sent a whole request, before any kept
alive after one), so that connections that never finish a head cannot keep a health check out. Everything else (graceful shutdown,
worker_connections, the client socket in the environ for disconnect.py) is gunicorn's.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, ClassVar

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

from ai_router.config import ServerSettings
from ai_router.errors import RequestTimeout
from ai_router.http_api.server import request_head

log = logging.getLogger(__name__)

# The largest first piece of a body sent in the same write as the head: a stream's events and
# most answers; a bigger one goes out apart rather than be copied.
COALESCE_BYTES = 65536


class RequestHeaders:
    """A request's header fields (llhttp has read them), with what gevent.pywsgi asks of them."""

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        self.status = ""

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first field called `name` (in any case), as email.message.Message.get does."""
        wanted = name.lower()
        for field, value in self._fields:
            if field.lower() == wanted:
                return value
        return default

    getheader = get

    def __delitem__(self, name: str) -> None:
        wanted = name.lower()
        self._fields = [(field, value) for field, value in self._fields if field.lower() != wanted]

    @property
    def headers(self) -> Iterator[str]:
        """Each field as a line, which gevent.pywsgi turns into the WSGI environ's HTTP_ keys."""
        for name, value in self._fields:
            yield f"{name}: {value}\r\n"

    @property
    def typeheader(self) -> str | None:
        return self.get("content-type")

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)


class Waiting:
    """The connections of this process waiting for a request's head; past the limit, one is
    closed: the oldest that has never sent a whole request, else the oldest kept alive after
    one (a proxy's idle connection, which it may be about to use)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # Insertion-ordered: the oldest first.
        self._new: dict[Handler, None] = {}
        self._kept_alive: dict[Handler, None] = {}

    def __len__(self) -> int:
        return len(self._new) + len(self._kept_alive)

    def enter(self, handler: Handler) -> None:
        while len(self) >= self.limit:
            group = self._new or self._kept_alive
            oldest = next(iter(group))
            del group[oldest]
            oldest.evict()
        (self._kept_alive if handler.served else self._new)[handler] = None

    def leave(self, handler: Handler) -> None:
        self._new.pop(handler, None)
        self._kept_alive.pop(handler, None)


class Handler(PyWSGIHandler):  # type: ignore[misc]  # gunicorn ships no types
    # gevent.pywsgi's: the client's socket (a HeldWrites while a response's head is written).
    socket: Any
    # Set by Worker from gunicorn's `keepalive` and config.yaml's server section.
    idle_seconds: float = 5.0
    head_seconds: float = 10.0
    body_idle_seconds: float = 10.0
    body_seconds: float = 60.0
    max_head_bytes: int = 65536
    max_fields: int = 100
    waiting: Waiting = Waiting(1000)
    # After SIGTERM: each answer says `Connection: close`, and no connection takes another
    # request, so that clients and proxies move to other workers while this one finishes.
    draining: ClassVar[bool] = False
    # The greenlet of each open connection: those still open near the end of the grace period
    # are ended by the worker itself, so that each stream gets its error event and log line
    # before gunicorn's master kills the process.
    connections: ClassVar[set[gevent.Greenlet]] = set()

    def handle(self) -> None:
        current = gevent.getcurrent()
        self.connections.add(current)
        try:
            super().handle()
        finally:
            self.connections.discard(current)
    # The clocks of bodies being read (libev timers), by handler: kept here, not as attributes.
    # gevent.pywsgi's own attributes fill a dict that Python shares between handlers up to 30
    # keys; two more of ours gave each connection a dict of its own, 1.5 KiB per open stream
    # (make bench-full, RSS per open stream).
    _body_clocks: ClassVar[dict[Handler, Any]] = {}

    @property
    def served(self) -> bool:
        """Whether this connection has sent a request already (its line is still here)."""
        return self.requestline is not None

    def read_requestline(self) -> str:
        """The next request's first line, or "" (the connection is closed) when none starts
        within `idle_seconds`: an idle keep-alive connection would otherwise hold one of the
        worker's `worker_connections` for ever, and keep a stopping worker waiting for it."""
        self._stop_body_clock()
        if self.draining and self.served:
            return ""
        self.waiting.enter(self)
        line: str = ""
        try:
            with gevent.Timeout(self.idle_seconds, False):  # False: on time-out, leave the block
                line = str(super().read_requestline())
        finally:
            if not line:
                self.waiting.leave(self)
        return line

    def read_request(self, raw_requestline: str) -> bool:
        """The rest of the head, within `head_seconds`, parsed by llhttp; then the body's reads
        may wait `body_idle_seconds` each."""
        try:
            with gevent.Timeout(self.head_seconds, request_head.HeadTimeout):
                head_bytes, buffered = request_head.read(
                    self.rfile, raw_requestline.encode("latin-1"), self.max_head_bytes,
                    self.max_fields,
                )  # fmt: skip
        finally:
            self.waiting.leave(self)
        head = request_head.parse(head_bytes)
        self.requestline = raw_requestline.rstrip()
        self.command, self.path = head.method, head.target
        self.request_version = f"HTTP/{head.version}"
        self.headers = RequestHeaders(head.fields)
        self.content_length = head.content_length
        self.close_connection = not head.keep_alive or self.draining
        self.socket.settimeout(self.body_idle_seconds)
        if head.chunked or (head.content_length or 0) > buffered:
            # The whole body within `body_seconds`, however steadily it trickles. A body that
            # came with its head, as most do, needs no clock.
            clock = self._body_clocks[self] = gevent.get_hub().loop.timer(self.body_seconds)
            clock.start(self._body_time_up, gevent.getcurrent())
        return True

    def _body_time_up(self, reader: gevent.Greenlet) -> None:
        """Unless the app has read the whole body by now, it is reading it still (the request's
        greenlet is in its view): the read raises RequestTimeout, 408 in the API's format."""
        self._body_clocks.pop(self, None)
        body = self.wsgi_input
        if body is None or _read_whole(body):
            return
        reader.throw(RequestTimeout(
            "the request body did not arrive in time (server.http_body_timeout)"
        ))  # fmt: skip

    def _stop_body_clock(self) -> None:
        """The request is answered (or over): its body's clock stops."""
        clock = self._body_clocks.pop(self, None)
        if clock is not None:
            clock.stop()
            clock.close()

    def evict(self) -> None:
        """Close this connection, which is waiting for a head, from another greenlet."""
        try:
            self.socket.shutdown(socket.SHUT_RDWR)
        except (OSError, AttributeError):
            pass  # already closed, or gone

    def _handle_client_error(self, ex: BaseException) -> tuple[str, bytes]:
        if isinstance(ex, request_head.HeadRefused):
            self.log_error("(from %s) %s", self.client_address, ex.reason)
            return str(ex.status.value), _refusal(ex.status)
        result: tuple[str, bytes] = super()._handle_client_error(ex)
        return result

    def log_error(self, msg: str, *args: object) -> None:
        """gevent.pywsgi's account of a request it refused (a malformed one), as one of the
        router's JSON log lines rather than a line of raw text on stderr."""
        try:
            message = msg % args if args else msg
        except (TypeError, ValueError):
            message = f"{msg!r} {args!r}"
        log.info("refused a malformed HTTP request: %s", message)

    def log_request(self) -> None:
        """No access log: the router logs each request itself (observe.py)."""

    def _write_with_headers(self, data: bytes) -> None:
        """The head and the first piece of the body in one write. gevent.pywsgi frames both, and
        sends them apart to save copying the piece: for a stream's first event, or a small
        answer, that costs a system call, and the client a second read and wake-up for its
        first token. Here its two writes are held and sent as one."""
        self.socket.settimeout(None)  # the request is read: a stream may now be quiet for long
        self._stop_body_clock()
        if self.draining and self.request_version == "HTTP/1.1":
            self.close_connection = True
            self.response_headers.append((b"Connection", b"close"))
        if len(data) > COALESCE_BYTES:
            super()._write_with_headers(data)
            return
        client, held = self.socket, HeldWrites()
        self.socket = held
        try:
            super()._write_with_headers(data)  # no switch to another greenlet in here
        finally:
            self.socket = client
        self.response_length -= len(held.data)  # counted as they were held, and again as sent
        self._sendall(held.data)


class HeldWrites:
    """Stands for the client's socket while gevent.pywsgi writes a response's head and first
    piece, and keeps what it writes, to be sent as one."""

    __slots__ = ("data",)

    def __init__(self) -> None:
        self.data = bytearray()

    def sendall(self, data: bytes) -> None:
        self.data += data


class Worker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = Handler

    def init_process(self) -> None:
        Handler.idle_seconds = self.cfg.keepalive
        super().init_process()

    def handle_exit(self, sig: int, frame: object) -> None:
        """SIGTERM: stop taking requests, finish those in hand (gunicorn's graceful stop), and
        end what is left before the master's deadline (graceful_timeout after its SIGTERM)."""
        Handler.draining = True
        grace = float(self.cfg.graceful_timeout)
        # gunicorn's run loop notices an empty pool only once a second: end them in time.
        gevent.spawn_later(max(grace / 2, grace - 2.0), _end_connections)
        super().handle_exit(sig, frame)


def _end_connections() -> None:
    """A stream still open is told the router is stopping (streaming.mid_stream_error)."""
    gevent.killall(list(Handler.connections), block=True, timeout=1.0)


def _read_whole(body: Any) -> bool:
    """Whether gevent.pywsgi's Input has given the app all of the body."""
    if body.chunked_input:
        return bool(body.chunk_length == 0)  # the last chunk, of size 0, is read
    return bool(body.position >= (body.content_length or 0))


def apply_limits(server: ServerSettings) -> None:
    """The limits of config.yaml's server section, for this worker process: gunicorn.conf.py
    calls it after each fork (the worker class itself reads no config)."""
    Handler.head_seconds = server.http_head_timeout
    Handler.body_idle_seconds = server.http_body_idle_timeout
    Handler.body_seconds = server.http_body_timeout
    Handler.max_head_bytes = server.http_max_head_bytes
    Handler.waiting = Waiting(server.http_max_waiting_connections)


def _refusal(status: HTTPStatus) -> bytes:
    """The whole answer to a request refused before it reached the app; the connection closes."""
    return (
        f"HTTP/1.1 {status.value} {status.phrase}\r\nConnection: close\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode("latin-1")
