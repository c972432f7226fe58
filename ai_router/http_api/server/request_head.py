"""A request's head: its bytes read off the connection within a size limit, their meaning taken
from llhttp (Node's HTTP parser, through httptools), which refuses what RFC 9112 refuses.

What llhttp refuses is answered 400 and the connection closed: a malformed request line or field,
obsolete line folding, a Content-Length that is not digits, two Content-Lengths, Content-Length
together with Transfer-Encoding, a Transfer-Encoding whose last coding is not chunked. Beyond it,
the only transfer coding served is chunked alone (501 for any other, which the server cannot
decode): the body's end is then where llhttp and gevent.pywsgi, which reads the body, both put it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import BinaryIO

import httptools

CHUNKED = "chunked"


class HeadRefused(Exception):
    """A head the server will not serve: answered with `status`, and the connection closed."""

    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HeadTimeout(HeadRefused):
    """The head did not arrive in time."""

    def __init__(self) -> None:
        super().__init__(HTTPStatus.REQUEST_TIMEOUT, "the request's head came too slowly")


@dataclass
class RequestHead:
    method: str = ""
    target: str = ""
    version: str = ""  # "1.1"
    fields: list[tuple[str, str]] = field(default_factory=list)
    keep_alive: bool = True
    content_length: int | None = None
    chunked: bool = False


def read(
    rfile: BinaryIO, request_line: bytes, max_bytes: int, max_fields: int
) -> tuple[bytes, int]:
    """The head: `request_line` (already read) and the field lines after it, up to and with
    the blank line that ends it; and how many bytes behind it are known to be in `rfile`'s
    buffer already (0: none, or not known). Raises HeadRefused: 431 past `max_bytes` or
    `max_fields` lines (llhttp refuses folded ones: a line is a field), 400 at the end of the
    input."""
    # Most heads came in the read that brought their first line: take them whole from the
    # buffer when it holds their end, rather than a line at a time.
    buffered = rfile.peek(max_bytes) if isinstance(rfile, io.BufferedReader) else b""
    if buffered.startswith(b"\r\n"):
        return request_line + rfile.read(2), len(buffered) - 2  # no fields
    end = buffered.find(b"\r\n\r\n", 0, max_bytes - len(request_line))
    if end > 0 and buffered.count(b"\n", 0, end) < max_fields:
        return request_line + rfile.read(end + 4), len(buffered) - end - 4
    lines = [request_line]
    size = len(request_line)
    while True:
        line = rfile.readline(max_bytes - size + 1)
        size += len(line)
        if size > max_bytes:
            raise HeadRefused(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the request's head is over {max_bytes} bytes",
            )
        if not line.endswith(b"\n"):
            raise HeadRefused(HTTPStatus.BAD_REQUEST, "the connection ended within the head")
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return b"".join(lines), 0
        if len(lines) > max_fields + 1:
            raise HeadRefused(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"the request has more than {max_fields} header fields",
            )


class _Collector:
    """httptools' callbacks, collecting the head."""

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.complete = False
        self.parser: httptools.HttpRequestParser | None = None

    def on_url(self, url: bytes) -> None:
        self.head.target += url.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp has taken the leading white space off, not the trailing.
        self.head.fields.append((name.decode("latin-1"), value.decode("latin-1").rstrip(" \t")))

    def on_headers_complete(self) -> None:
        # Read now: once a message without a body is complete, llhttp starts on the next.
        assert self.parser is not None
        head, parser = self.head, self.parser
        head.method = parser.get_method().decode("ascii")
        head.version = parser.get_http_version()
        head.keep_alive = parser.should_keep_alive()
        self.complete = True


def parse(head_bytes: bytes) -> RequestHead:
    """The head's method, target, version, fields and framing. Raises HeadRefused."""
    head = RequestHead()
    collector = _Collector(head)
    parser = collector.parser = httptools.HttpRequestParser(collector)
    try:
        parser.feed_data(head_bytes)
    except httptools.HttpParserUpgrade:
        pass  # an upgrade (to WebSocket, say) the router does not offer: served as HTTP/1.1
    except httptools.HttpParserError as error:
        raise HeadRefused(HTTPStatus.BAD_REQUEST, f"malformed request: {error}") from None
    if not collector.complete:
        raise HeadRefused(HTTPStatus.BAD_REQUEST, "malformed request: the head did not end")
    _frame(head)
    return head


def _frame(head: RequestHead) -> None:
    """Where the body ends, from fields llhttp has already judged: chunked, a length, or none."""
    codings: list[str] = []
    lengths: list[str] = []
    for name, value in head.fields:  # the lengths first: .lower() only where it may match
        if len(name) == 17 and name.lower() == "transfer-encoding":
            codings.append(value)
        elif len(name) == 14 and name.lower() == "content-length":
            lengths.append(value)
    if codings:
        if len(codings) > 1 or codings[0].lower() != CHUNKED:
            raise HeadRefused(
                HTTPStatus.NOT_IMPLEMENTED,
                f"transfer coding {', '.join(codings)!r} is not served; send the body chunked "
                "alone, or with a Content-Length",
            )
        head.chunked = True
    elif lengths:
        head.content_length = int(lengths[0])  # digits, and only one: llhttp has checked
