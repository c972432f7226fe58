"""The HTTP server facing careless and hostile clients, over raw sockets: request framing as
RFC 9112 has it (llhttp's judgement), heads bounded in size and time, bodies that stop
arriving, and connections that never finish a head, which must never keep anyone else out.

One gunicorn worker with short limits: a head within 1 s, no body gap over 1 s, heads up to
8 KiB, at most 5 connections waiting for a head.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest
from support import (
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_until,
)

HEAD_SECONDS = 1.0
BODY_IDLE_SECONDS = 1.0
BODY_SECONDS = 2.0
MAX_HEAD_BYTES = 8192
MAX_WAITING = 5
BODY = b'{"provider": "openai", "prompt": "hi"}'
HEALTH = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def server(simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("framing")
    limits = {
        "http_head_timeout": HEAD_SECONDS,
        "http_body_idle_timeout": BODY_IDLE_SECONDS,
        "http_body_timeout": BODY_SECONDS,
        "http_max_head_bytes": MAX_HEAD_BYTES,
        "http_max_waiting_connections": MAX_WAITING,
    }
    config = RouterConfig(simulator_process, directory, {"server": limits})
    port = free_port()
    env = {**config.env(), "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}
    process: Process = start_process("framing-http", ["http"], env, directory, port)
    try:
        wait_for_port(process)
        # The worker is serving, not only gunicorn listening: every test here counts seconds.
        wait_until(lambda: statuses(exchange(port, HEALTH)[0]) == [b"200"], 30, "the worker serving")
        yield port
    finally:
        process.stop()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def exchange(port: int, data: bytes, quiet: float = 1.0) -> tuple[bytes, bool]:
    """Send `data`; everything the server answers until it closes (or stays silent for
    `quiet` seconds), and whether it closed."""
    with connect(port) as connection:
        connection.sendall(data)
        return read_all(connection, quiet)


def read_all(connection: socket.socket, quiet: float = 1.0) -> tuple[bytes, bool]:
    connection.settimeout(quiet)
    answer = b""
    try:
        while True:
            data = connection.recv(65536)
            if not data:
                return answer, True
            answer += data
    except TimeoutError:
        return answer, False


def statuses(answer: bytes) -> list[bytes]:
    """The status of each response in `answer` (a JSON body ends in a bare newline)."""
    return re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", answer)


def post(head_fields: bytes, body: bytes = BODY, path: bytes = b"/generate") -> bytes:
    return b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + head_fields + b"\r\n" + body


SMUGGLED = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
CHUNKED_BODY = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (post(b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(BODY), CHUNKED_BODY + SMUGGLED), b"400"),
        (post(b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(BODY), BODY + SMUGGLED), b"400"),
        (post(b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(BODY), len(BODY)), BODY + SMUGGLED), b"400"),
        (post(b"Transfer-Encoding: gzip, chunked\r\n", CHUNKED_BODY + SMUGGLED), b"501"),
        (post(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", CHUNKED_BODY + SMUGGLED), b"400"),
        (post(b"Content-Length: +%d\r\n" % len(BODY), BODY + SMUGGLED), b"400"),
        (post(b"Content-Length: %s\r\n" % b"_".join(bytes([c]) for c in str(len(BODY)).encode()), BODY + SMUGGLED), b"400"),
        (post(b"X-Folded: one\r\n two\r\nContent-Length: %d\r\n" % len(BODY), BODY + SMUGGLED), b"400"),
        (b"GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n" + SMUGGLED, b"400"),
        (b"GET /healthz HTTP/1.1\r\nno colon\r\n\r\n" + SMUGGLED, b"400"),
    ],
    ids=[
        "CL and TE", "two lengths", "a length twice", "gzip then chunked", "chunked then gzip",
        "a signed length", "a length with underscores", "a folded line", "space before colon",
        "a line without a colon",
    ],
)
def test_framing_that_rfc_9112_refuses_is_refused_and_the_connection_closed(
    server: int, request_bytes: bytes, status: bytes
) -> None:
    answer, closed = exchange(server, request_bytes)

    # One answer, the refusal: what followed the body is never served as a request of its own.
    assert statuses(answer) == [status], answer[:300]
    assert closed


def test_a_well_formed_chunked_body_is_served_and_the_connection_kept(server: int) -> None:
    answer, closed = exchange(server, post(b"Transfer-Encoding: chunked\r\n", CHUNKED_BODY + SMUGGLED))

    assert statuses(answer) == [b"200", b"200"] and not closed


def test_a_head_over_the_limit_is_431(server: int) -> None:
    fields = b"".join(b"X-Field-%d: %s\r\n" % (n, b"v" * 100) for n in range(MAX_HEAD_BYTES // 100))
    started = time.monotonic()

    answer, closed = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")

    assert statuses(answer) == [b"431"] and closed
    assert time.monotonic() - started < 2


def test_more_than_a_hundred_header_fields_is_431(server: int) -> None:
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(101))

    answer, closed = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")

    assert statuses(answer) == [b"431"] and closed


@pytest.mark.parametrize(
    "partial",
    [b"POST /generate HTTP/1.1\r\n", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaa"],
    ids=["request line only", "half a field"],
)
def test_a_head_that_does_not_arrive_in_time_is_408_and_closed(server: int, partial: bytes) -> None:
    with connect(server) as connection:
        connection.sendall(partial)
        started = time.monotonic()
        answer, closed = read_all(connection, quiet=HEAD_SECONDS + 3)
        took = time.monotonic() - started

    print(f"\na head stalled after {partial[:30]!r}: 408 and closed {took:.2f}s after its first line")
    assert statuses(answer) == [b"408"] and closed
    assert HEAD_SECONDS * 0.9 <= took < HEAD_SECONDS + 1.5


def test_a_head_sent_a_byte_at_a_time_is_bounded_by_the_heads_time_not_each_byte(server: int) -> None:
    with connect(server) as connection:
        connection.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        answer = b""
        for _ in range(40):  # a byte every 0.1 s: each gap is short, the head is not
            try:
                connection.sendall(b"X")
            except OSError:
                break
            connection.settimeout(0.1)
            try:
                answer += connection.recv(65536)
            except TimeoutError:
                continue
            if answer:
                break
        took = time.monotonic() - started

    assert statuses(answer) == [b"408"]
    assert took < HEAD_SECONDS + 1.5


def test_a_body_that_stops_arriving_is_408_and_closed(server: int) -> None:
    with connect(server) as connection:
        connection.sendall(post(b"Content-Length: 1000\r\n", b'{"provider": '))
        started = time.monotonic()
        answer, closed = read_all(connection, quiet=BODY_IDLE_SECONDS + 3)
        took = time.monotonic() - started

    print(f"\na body that stopped: 408 and closed after {took:.2f}s")
    assert statuses(answer) == [b"408"] and closed
    assert b'"type":"request_timeout"' in answer
    assert BODY_IDLE_SECONDS * 0.9 <= took < BODY_IDLE_SECONDS + 1.5


def test_a_body_that_trickles_in_steadily_is_408_once_its_time_is_up(server: int) -> None:
    with connect(server) as connection:
        connection.sendall(post(b"Content-Length: 1000\r\n", b""))
        started = time.monotonic()
        answer = b""
        connection.settimeout(0.3)
        while time.monotonic() - started < BODY_SECONDS + 3:  # a byte every 0.3 s: never idle
            try:
                connection.sendall(b" ")
                answer += connection.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        took = time.monotonic() - started

    print(f"\na body trickling in: 408 after {took:.2f}s")
    assert statuses(answer) == [b"408"]
    assert BODY_SECONDS * 0.9 <= took < BODY_SECONDS + 1.5


def test_a_slow_upstream_after_a_quick_body_is_not_the_clients_fault(
    server: int, simulator: Simulator
) -> None:
    simulator.set(latency=BODY_SECONDS + 0.5)  # the answer comes after the body's time is up

    answer, _ = exchange(server, post(b"Content-Length: %d\r\n" % len(BODY)), quiet=BODY_SECONDS + 3)

    assert statuses(answer) == [b"200"]


def test_connections_that_never_send_a_head_cannot_keep_a_health_check_out(server: int) -> None:
    silent = [connect(server) for _ in range(4 * MAX_WAITING)]
    try:
        started = time.monotonic()
        answer, _ = exchange(server, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        took = time.monotonic() - started
        # The oldest of the silent ones were closed to make room, the newest still wait.
        closed = [read_all(connection, quiet=0.2)[1] for connection in silent]
    finally:
        for connection in silent:
            connection.close()

    print(f"\n/healthz beside {len(silent)} silent connections: {took * 1000:.0f} ms")
    assert statuses(answer) == [b"200"]
    assert took < 1.0
    assert closed[0] and not closed[-1]
    assert sum(closed) >= len(silent) - MAX_WAITING


def test_a_chunked_body_over_the_limit_is_413_not_cut_short(server: int) -> None:
    prompt = b'{"provider": "openai", "prompt": "' + b"x" * (70 * 1024) + b'"}'  # over 64 KiB
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in (prompt[:40_000], prompt[40_000:]))

    answer, closed = exchange(server, post(b"Transfer-Encoding: chunked\r\n", chunks + b"0\r\n\r\n"))

    assert statuses(answer) == [b"413"] and closed
    assert b'"type":"request_too_large"' in answer
