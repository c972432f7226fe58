"""The HTTP worker's handler (http_api/server/worker.py) and the request head it reads
(http_api/server/request_head.py): what llhttp makes of a head, the limits on it, and how an
answer is written."""

from __future__ import annotations

import io
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import gevent.socket
import pytest
from gevent.pywsgi import WSGIServer

from ai_router.http_api.server import request_head
from ai_router.http_api.server.request_head import HeadRefused, RequestHead
from ai_router.http_api.server.worker import COALESCE_BYTES, Handler, RequestHeaders, Waiting

LINE = b"POST /v1/chat/completions?x=1 HTTP/1.1\r\n"


def head_of(fields: bytes, line: bytes = LINE, max_bytes: int = 65536) -> RequestHead:
    rfile = io.BytesIO(fields + b"the body")
    head_bytes, _ = request_head.read(rfile, line, max_bytes, max_fields=100)
    head = request_head.parse(head_bytes)
    assert rfile.read() == b"the body"  # reading stops at the blank line
    return head


def refusal(fields: bytes, line: bytes = LINE, max_bytes: int = 65536) -> HTTPStatus:
    with pytest.raises(HeadRefused) as caught:
        head_of(fields, line, max_bytes)
    return caught.value.status


def test_a_head_gives_method_target_version_and_its_fields_in_order() -> None:
    head = head_of(b"Host: example\r\nContent-Type: application/json\r\nX-A:  one \r\nx-a: two\r\n"
                   b"Content-Length: 8\r\n\r\n")

    assert (head.method, head.target, head.version) == ("POST", "/v1/chat/completions?x=1", "1.1")
    assert head.fields == [
        ("Host", "example"), ("Content-Type", "application/json"), ("X-A", "one"), ("x-a", "two"),
        ("Content-Length", "8"),
    ]  # fmt: skip
    assert (head.content_length, head.chunked, head.keep_alive) == (8, False, True)
    assert head_of(b"Transfer-Encoding: chunked\r\n\r\n").chunked
    assert not head_of(b"Connection: close\r\n\r\n").keep_alive
    assert not head_of(b"Host: x\r\n\r\n", line=b"GET / HTTP/1.0\r\n").keep_alive


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        (b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Content-Length: +5\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Content-Length: 5_0\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Transfer-Encoding: gzip, chunked\r\n\r\n", HTTPStatus.NOT_IMPLEMENTED),
        (b"Transfer-Encoding: chunked, gzip\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"X-Long: first\r\n second\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"no colon here\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"Space-Before : colon\r\n\r\n", HTTPStatus.BAD_REQUEST),
        (b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n", HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE),
        (b"Host: x\r\n", HTTPStatus.BAD_REQUEST),  # the connection ended within the head
    ],
    ids=[
        "CL and TE", "two lengths", "a length twice", "a signed length", "an underscore",
        "gzip then chunked", "chunked then gzip", "a folded line", "no colon",
        "space before colon", "101 fields", "no end",
    ],
)
def test_what_rfc_9112_refuses_is_refused(fields: bytes, status: HTTPStatus) -> None:
    assert refusal(fields) == status


def test_a_head_over_its_limit_is_431_before_it_is_all_read() -> None:
    big = b"X-Big: " + b"a" * 10_000 + b"\r\n" * 2

    assert refusal(big, max_bytes=8192) == HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
    assert head_of(big, max_bytes=16384).fields == [("X-Big", "a" * 10_000)]


def test_the_fields_are_looked_up_in_any_case_and_listed_as_lines() -> None:
    headers = RequestHeaders([("Host", "example"), ("Content-Type", "text/plain"), ("X-A", "one"), ("x-a", "two")])

    assert headers.get("content-type") == headers.typeheader == "text/plain"
    assert headers.getheader("X-A") == "one"  # the first, as email.message does
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert list(headers.headers) == ["Host: example\r\n", "Content-Type: text/plain\r\n", "X-A: one\r\n", "x-a: two\r\n"]
    del headers["x-A"]
    assert headers.items() == [("Host", "example"), ("Content-Type", "text/plain")]


def test_past_the_limit_of_waiting_connections_the_oldest_new_one_is_evicted_first() -> None:
    evicted: list[str] = []

    class Connection:
        def __init__(self, name: str, served: bool = False) -> None:
            self.name = name
            self.served = served

        def evict(self) -> None:
            evicted.append(self.name)

    waiting = Waiting(3)
    idle = Connection("a proxy's idle connection", served=True)
    first, second, third = Connection("first"), Connection("second"), Connection("third")
    for connection in (idle, first, second):
        waiting.enter(connection)  # type: ignore[arg-type]
    waiting.leave(second)  # type: ignore[arg-type]  # its head arrived
    waiting.enter(third)  # type: ignore[arg-type]
    waiting.enter(Connection("fourth"))  # type: ignore[arg-type]
    waiting.enter(Connection("fifth"))  # type: ignore[arg-type]

    # New connections go before one that has served a request; among them, the oldest first.
    assert evicted == ["first", "third"] and len(waiting) == 3
    waiting.enter(Connection("sixth"))  # type: ignore[arg-type]
    waiting.enter(Connection("seventh"))  # type: ignore[arg-type]
    assert evicted == ["first", "third", "fourth", "fifth"]


def serve_once(app: Any, request: bytes) -> tuple[list[bytes], bytes]:
    """`request` answered by `app` on the worker's handler (gevent.pywsgi, in this thread's
    hub): every write the handler made to its socket, and what the client read."""
    writes: list[bytes] = []

    class RecordingSocket:
        def __init__(self, sock: Any) -> None:
            self._inner = sock

        def sendall(self, data: bytes) -> None:
            writes.append(bytes(data))
            self._inner.sendall(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    class Recording(Handler):
        def __init__(self, sock: Any, address: Any, server: Any) -> None:
            super().__init__(RecordingSocket(sock), address, server)

    server = WSGIServer(("127.0.0.1", 0), app, handler_class=Recording, log=None, error_log=None)
    server.start()
    try:
        client = gevent.socket.create_connection(("127.0.0.1", server.server_port))
        client.sendall(request)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
        client.close()
    finally:
        server.stop()
    return writes, answer


def stream_app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    return iter([b"data: first\n\n", b"data: second\n\n"])


GET = b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"


def test_a_streams_head_and_first_event_go_out_in_one_write() -> None:
    writes, answer = serve_once(stream_app, GET)

    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert writes[0].endswith(b"\r\n\r\nd\r\ndata: first\n\n\r\n")  # one chunk, framed
    assert writes[1:] == [b"e\r\ndata: second\n\n\r\n", b"0\r\n\r\n"]
    assert answer == b"".join(writes)


def test_a_small_answer_goes_out_in_one_write_and_a_large_one_apart() -> None:
    def answer_of(size: int) -> Any:
        def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [("Content-Length", str(size))])
            return [b"x" * size]

        return app

    small_writes, small = serve_once(answer_of(100), GET)
    large_writes, large = serve_once(answer_of(COALESCE_BYTES + 1), GET)

    assert len(small_writes) == 1 and small.endswith(b"\r\n\r\n" + b"x" * 100)
    assert len(large_writes) == 2 and large_writes[1] == b"x" * (COALESCE_BYTES + 1)
    assert large.endswith(b"\r\n\r\n" + large_writes[1])


def test_reading_a_head_tells_how_much_of_the_body_came_with_it() -> None:
    fields = b"Content-Length: 8\r\n\r\n"

    whole = io.BufferedReader(io.BytesIO(fields + b"the body"))  # a body that came with its head
    head_bytes, buffered = request_head.read(whole, LINE, 65536, 100)

    assert head_bytes == LINE + fields and buffered == len(b"the body")
    assert whole.read() == b"the body"
