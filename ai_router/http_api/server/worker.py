"""The gunicorn worker of the HTTP front door: gunicorn's gevent worker on gevent's own HTTP
server (gunicorn's `gevent_pywsgi`), plus the idle keep-alive timeout that server lacks.

gevent.pywsgi reads a request and writes its answer in fewer steps than gunicorn's own parser
and response object (docs/PERFORMANCE.md has the measurements). Everything else (graceful
shutdown, worker_connections, the client socket in the environ for disconnect.py) is gunicorn's
gevent worker's. Request headers are read by `RequestHeaders`, not by http.client.parse_headers
(which gevent.pywsgi uses, through email.parser).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import BinaryIO

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler

log = logging.getLogger(__name__)

# http.client's limits, which gevent.pywsgi applied through it.
MAX_LINE_BYTES = 65536
MAX_HEADERS = 100
# The largest first piece of a body sent in the same write as the head: a stream's events and
# most answers; a bigger one goes out apart rather than be copied.
COALESCE_BYTES = 65536


class RequestHeaders:
    """A request's header fields, read from the connection, with what gevent.pywsgi asks of
    them. A problem (a line too long, too many fields, a line that is not `name: value`) is
    in `status` instead, and gevent.pywsgi answers 400 and closes the connection."""

    def __init__(self, fields: list[tuple[str, str]], status: str = "") -> None:
        self._fields = fields
        self.status = status

    @classmethod
    def read(cls, rfile: BinaryIO) -> RequestHeaders:
        fields: list[tuple[str, str]] = []
        while True:
            line = rfile.readline(MAX_LINE_BYTES + 1)
            if len(line) > MAX_LINE_BYTES:
                return cls([], "Line too long")
            if line in (b"\r\n", b"\n", b""):
                return cls(fields)
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t") and fields:
                # An obsolete folded line (RFC 9112 5.2): it continues the previous value.
                name, value = fields[-1]
                fields[-1] = (name, f"{value} {text.strip()}")
                continue
            name, colon, value = text.partition(":")
            if not colon or not name or name != name.strip():
                # RFC 9112 5.1: no whitespace between a field's name and its colon.
                return cls([], f"Invalid header line {text[:64]!r}")
            if len(fields) == MAX_HEADERS:
                return cls([], f"More than {MAX_HEADERS} headers")
            fields.append((name, value.strip()))

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


class Handler(PyWSGIHandler):  # type: ignore[misc]  # gunicorn ships no types
    # gunicorn's `keepalive` setting, which gevent.pywsgi does not apply itself (set by Worker).
    idle_seconds: float = 5.0

    def read_requestline(self) -> str:
        """The next request's first line, or "" (the connection is closed) when none starts
        within `idle_seconds`: an idle keep-alive connection would otherwise hold one of the
        worker's `worker_connections` for ever, and keep a stopping worker waiting for it."""
        with gevent.Timeout(self.idle_seconds, False):  # False: on time-out, leave the block
            line: str = super().read_requestline()
            return line
        return ""

    def MessageClass(self, rfile: BinaryIO, *args: object) -> RequestHeaders:  # noqa: N802
        return RequestHeaders.read(rfile)

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
        """The head and the first piece of the body in one write. gevent.pywsgi writes them
        apart, to save copying the piece: for a stream's first event, or a small answer, that
        costs a system call, and the client a second read and wake-up for its first token."""
        if len(data) > COALESCE_BYTES:
            super()._write_with_headers(data)
            return
        self.headers_sent = True
        self.finalize_headers()
        # self.status and self.response_headers are latin-1 bytes by now (start_response).
        towrite = bytearray(b"HTTP/1.1 " + self.status + b"\r\n")
        for name, value in self.response_headers:
            towrite += name + b": " + value + b"\r\n"
        towrite += b"\r\n"
        if data and self.response_use_chunked:
            towrite += b"%x\r\n%b\r\n" % (len(data), data)
        else:
            towrite += data
        self._sendall(towrite)


class Worker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = Handler

    def init_process(self) -> None:
        Handler.idle_seconds = self.cfg.keepalive
        super().init_process()
