"""The HTTP worker's handler (http_api/server/worker.py): the request-header reader gevent.pywsgi
consults, and how an answer is written."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import gevent.socket
from gevent.pywsgi import WSGIServer

from ai_router.http_api.server.worker import (
    COALESCE_BYTES,
    MAX_HEADERS,
    MAX_LINE_BYTES,
    Handler,
    RequestHeaders,
)


def read(head: bytes) -> RequestHeaders:
    return RequestHeaders.read(io.BytesIO(head + b"the body"))


def test_fields_are_found_in_any_case_and_listed_as_lines_in_order() -> None:
    headers = read(b"Host: example\r\nContent-Type: application/json\r\nX-A:  one \r\nx-a: two\r\n\r\n")

    assert headers.status == ""
    assert headers.get("content-type") == headers.typeheader == "application/json"
    assert headers.getheader("X-A") == "one"  # the first, as email.message does
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert list(headers.headers) == [
        "Host: example\r\n",
        "Content-Type: application/json\r\n",
        "X-A: one\r\n",
        "x-a: two\r\n",
    ]


def test_reading_stops_at_the_blank_line_and_leaves_the_body() -> None:
    stream = io.BytesIO(b"Host: example\n\nthe body")

    assert RequestHeaders.read(stream).items() == [("Host", "example")]
    assert stream.read() == b"the body"


def test_a_folded_line_continues_the_previous_value() -> None:
    assert read(b"X-Long: first\r\n   second\r\n\tthird\r\n\r\n").get("x-long") == "first second third"


def test_deleting_a_field_removes_every_occurrence() -> None:
    headers = read(b"Content-Length: 5\r\ncontent-length: 6\r\nHost: h\r\n\r\n")

    del headers["Content-Length"]

    assert headers.items() == [("Host", "h")]


def test_what_http_does_not_allow_is_a_status_not_fields() -> None:
    too_long = b"X-Big: " + b"a" * MAX_LINE_BYTES + b"\r\n\r\n"
    too_many = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_HEADERS + 1)) + b"\r\n"

    assert read(too_long).status == "Line too long"
    assert read(too_many).status == f"More than {MAX_HEADERS} headers"
    assert read(b"no colon here\r\n\r\n").status == "Invalid header line 'no colon here'"
    assert read(b"Space-Before : colon\r\n\r\n").status.startswith("Invalid header line")
    assert read(too_long).items() == []


def serve_once(app: Any, request: bytes) -> tuple[list[bytes], bytes]:
    """`request` answered by `app` on the worker's handler (gevent.pywsgi, in this thread's
    hub): every write the handler made, and what the client read."""
    writes: list[bytes] = []

    class Recording(Handler):
        def _sendall(self, data: bytes) -> None:
            writes.append(bytes(data))
            super()._sendall(data)

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
