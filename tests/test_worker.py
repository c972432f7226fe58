"""The HTTP worker's request-header reader (http_api/worker.py), which gevent.pywsgi consults."""

from __future__ import annotations

import io

from ai_router.http_api.worker import MAX_HEADERS, MAX_LINE_BYTES, RequestHeaders


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
