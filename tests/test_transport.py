"""The fast path's transport (providers/transport.py): one geventhttpclient pool per upstream,
of gevent's sockets under gevent, of plain blocking ones shared by every thread in threads. Both
shapes are driven here in-process against the simulator (gevent's sockets work unpatched, in the
test thread's own hub), and must behave the same:
whole answers and streams as they arrive, kept-alive connections, timeouts and cut-offs that the
router can classify, proxies from the environment."""

from __future__ import annotations

import gzip
import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from gevent._hub_local import get_hub_if_exists
from support import Simulator

from ai_router.errors import RouterError, UpstreamTimeout, UpstreamUnavailable
from ai_router.providers import failures
from ai_router.providers.transport import (
    FAILURES,
    FIRST_PARSE,
    PooledTransport,
    ThreadedTransport,
    Timeout,
    Transport,
    UpstreamResponse,
)

Make = Callable[[str, dict[str, str]], Transport]
TRANSPORTS: dict[str, Make] = {"pooled": PooledTransport, "threaded": ThreadedTransport}
HEADERS = {"authorization": "Bearer sk-transport", "content-type": "application/json"}
BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"one two three four"}]}'
STREAM_BODY = BODY[:-1] + b',"stream":true}'
TIMEOUT = Timeout(connect=5, read=10)


@pytest.fixture(params=sorted(TRANSPORTS))
def make(request: pytest.FixtureRequest) -> Make:
    return TRANSPORTS[request.param]


@pytest.fixture
def transport(make: Make, simulator: Simulator) -> Iterator[Transport]:
    transport = make(f"{simulator.url}/v1/chat/completions", HEADERS)
    yield transport
    transport.close()


def classified(exc: BaseException) -> RouterError:
    """What the router makes of a transport's failure (failures.py)."""
    assert isinstance(exc, FAILURES)
    return failures.transport_error(failures.Upstream("openai", None, timeout=60), exc)


def test_a_whole_answer_comes_back_with_its_status_type_and_the_headers_sent(
    transport: Transport, simulator: Simulator
) -> None:
    response = transport.post(BODY, {"x-request-id": "rid-1"}, TIMEOUT, stream=False)

    assert response.status_code == 200
    assert response.content_type.startswith("application/json")
    assert b'"chat.completion"' in response.content
    assert dict(response.header_items())["x-request-id"].startswith("req_sim_")
    sent = simulator.last_request()
    assert sent["headers"]["authorization"] == "Bearer sk-transport"
    assert sent["headers"]["x-request-id"] == "rid-1"
    assert sent["headers"]["content-length"] == str(len(BODY))
    assert sent["body"]["messages"][0]["content"] == "one two three four"


def test_calls_one_after_another_share_one_connection(
    transport: Transport, simulator: Simulator
) -> None:
    ports = set()
    for body, stream in ((BODY, False), (STREAM_BODY, True), (BODY, False)):
        response = transport.post(body, {}, TIMEOUT, stream)
        # Read to its end, so the connection goes back to the pool.
        answer = b"".join(response.iter_bytes()) if stream else response.content
        response.close()
        assert answer.rstrip().endswith(b"[DONE]" if stream else b"}")
        ports.add(simulator.last_request()["client_port"])

    assert len(ports) == 1


def test_a_connection_numbered_past_1024_is_kept_alive_too(
    make: Make, simulator: Simulator
) -> None:
    # select() refuses a descriptor numbered past FD_SETSIZE (1024), and a worker holding
    # thousands of client connections opens its upstream ones there. Their liveness check must
    # still work, or every call pays for a new connection (a TLS handshake, with a real provider).
    # In a fresh process, where nothing frees a low descriptor behind the test's back.
    calls = f"""
import os
from ai_router.providers.transport import {make.__name__}, Timeout
with open("/dev/null") as placeholder:
    while os.dup(placeholder.fileno()) < 1100:
        pass  # every descriptor below is taken
transport = {make.__name__}({simulator.url + "/v1/chat/completions"!r}, {HEADERS!r})
for _ in range(3):
    transport.post({BODY!r}, {{}}, Timeout(connect=5, read=10), stream=False).close()
"""
    subprocess.run([sys.executable, "-c", calls], check=True, timeout=60)

    ports = {request["client_port"] for request in simulator.requests()}
    assert len(simulator.requests()) == 3 and len(ports) == 1


def test_a_streamed_body_is_handed_on_as_it_arrives(
    transport: Transport, simulator: Simulator
) -> None:
    simulator.set(token_rate=10)  # the four tokens and the end take about half a second
    started = time.monotonic()
    response = transport.post(STREAM_BODY, {}, TIMEOUT, stream=True)
    chunks = response.iter_bytes()

    first = next(chunks)
    first_at = time.monotonic() - started
    rest = b"".join(chunks)
    ended_at = time.monotonic() - started

    assert first.startswith(b"data: ")
    assert rest.rstrip().endswith(b"data: [DONE]")
    assert ended_at - first_at > 0.25, "the first bytes waited for the end of the stream"


def test_a_stream_shut_down_from_another_thread_wakes_its_reader_at_once(
    transport: Transport, simulator: Simulator
) -> None:
    simulator.set(ttft=30)
    response = transport.post(STREAM_BODY, {}, TIMEOUT, stream=True)
    threading.Timer(0.2, response.shut_down).start()
    started = time.monotonic()

    with pytest.raises(Exception) as caught:
        for _ in response.iter_bytes():
            pass
    response.close()

    assert time.monotonic() - started < 5
    assert isinstance(classified(caught.value), UpstreamUnavailable)


def test_an_upstream_slower_than_the_read_timeout_is_a_timeout(
    transport: Transport, simulator: Simulator
) -> None:
    simulator.set(latency=3)

    with pytest.raises(Exception) as caught:
        transport.post(BODY, {}, Timeout(connect=5, read=0.3), stream=False)

    assert isinstance(classified(caught.value), UpstreamTimeout)


def test_a_refused_connection_is_unavailable(make: Make) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    transport = make(f"http://127.0.0.1:{port}/v1/chat/completions", HEADERS)

    with pytest.raises(Exception) as caught:
        transport.post(BODY, {}, TIMEOUT, stream=False)

    assert isinstance(classified(caught.value), UpstreamUnavailable)


class _Echo(http.server.BaseHTTPRequestHandler):
    """Answers a POST with the client's port, as JSON, on a kept-alive connection."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        body = b'{"client_port":%d}' % self.client_address[1]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_upstream(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """An HTTPS server on loopback with a certificate of its own (openssl's), and that
    certificate's file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cert
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_upstream_is_reached_with_the_certificates_of_ssl_cert_file(
    make: Make, tls_upstream: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, cert = tls_upstream
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    transport = make(f"https://localhost:{port}/v1/chat/completions", HEADERS)
    try:
        answers = [transport.post(BODY, {}, TIMEOUT, stream=False) for _ in range(2)]
    finally:
        transport.close()

    assert [answer.status_code for answer in answers] == [200, 200]
    ports = {orjson.loads(answer.content)["client_port"] for answer in answers}
    assert len(ports) == 1  # one TLS connection, kept alive


def test_an_https_upstream_whose_certificate_is_not_trusted_is_unavailable(
    make: Make, tls_upstream: tuple[int, Path]
) -> None:
    port, _ = tls_upstream
    transport = make(f"https://localhost:{port}/v1/chat/completions", HEADERS)

    with pytest.raises(Exception) as caught:
        transport.post(BODY, {}, TIMEOUT, stream=False)

    assert isinstance(caught.value, ssl.SSLCertVerificationError)
    assert isinstance(classified(caught.value), UpstreamUnavailable)


def answer_once(answer: bytes) -> tuple[int, list[bytes]]:
    """A server on a free port that reads one request head and sends `answer`; the port, and
    the list the head will be in."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    heads: list[bytes] = []

    def serve() -> None:
        with listener:
            connection, _ = listener.accept()
            with connection:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += connection.recv(65536)
                heads.append(head)
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener.getsockname()[1], heads


def json_answer(body: bytes, *headers: bytes) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"".join(headers)
    return head + b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def test_a_burst_that_came_with_the_head_hands_on_its_start_first_then_the_rest(
    make: Make,
) -> None:
    events = [b'data: {"n":%d,"pad":"%s"}\n\n' % (n, b"x" * 100) for n in range(100)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(event), event) for event in events)
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    port, _ = answer_once(head + chunks + b"0\r\n\r\n")  # one write: one read, most likely
    transport = make(f"http://127.0.0.1:{port}/v1/chat/completions", HEADERS)
    try:
        response = transport.post(STREAM_BODY, {}, TIMEOUT, stream=True)
        pieces = list(response.iter_bytes())
    finally:
        transport.close()

    assert isinstance(response, UpstreamResponse)
    # The start of the burst first, parsed alone (FIRST_PARSE bytes, head included), then the
    # rest: every byte of the body, in order.
    assert len(pieces) >= 2
    assert len(pieces[0]) < FIRST_PARSE < len(b"".join(events))
    assert b"".join(pieces) == b"".join(events)
    assert response.message_complete


def test_an_interim_answer_read_with_the_final_one_and_its_burst_is_parsed_through(
    make: Make,
) -> None:
    # An interim head that ends exactly where the first parse stops, the final one after it.
    hints = b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\nX-Pad: "
    early_hints = hints + b"p" * (FIRST_PARSE - len(hints) - 4) + b"\r\n\r\n"
    assert len(early_hints) == FIRST_PARSE
    body = b"data: " + b"y" * (2 * FIRST_PARSE) + b"\n\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
    final += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    port, _ = answer_once(early_hints + final)  # then it closes: a read past it finds nothing
    transport = make(f"http://127.0.0.1:{port}/v1/chat/completions", HEADERS)
    try:
        response = transport.post(STREAM_BODY, {}, TIMEOUT, stream=True)
        assert response.status_code == 200
        assert b"".join(response.iter_bytes()) == body
    finally:
        transport.close()


def test_a_plain_http_upstream_goes_through_the_environments_proxy_with_its_credentials(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, heads = answer_once(json_answer(b'{"proxied":true}'))
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = make("http://upstream.example:8080/v1/chat/completions", HEADERS)
    try:
        response = transport.post(BODY, {}, TIMEOUT, stream=False)
    finally:
        transport.close()

    assert response.content == b'{"proxied":true}'
    request_line, *header_lines = heads[0].decode("latin-1").split("\r\n")
    assert request_line == "POST http://upstream.example:8080/v1/chat/completions HTTP/1.1"
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in header_lines if line)}
    assert headers["proxy-authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
    assert headers["authorization"] == "Bearer sk-transport"


def test_a_proxy_that_refuses_the_tunnel_is_unavailable_with_its_answer(
    make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, heads = answer_once(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = make("https://upstream.example/v1/chat/completions", HEADERS)

    with pytest.raises(Exception) as caught:
        transport.post(BODY, {}, TIMEOUT, stream=False)
    transport.close()

    assert heads[0].startswith(b"CONNECT upstream.example:443 HTTP/1.1\r\n")
    error = classified(caught.value)
    assert isinstance(error, UpstreamUnavailable)
    assert error.message.startswith(
        "provider 'openai' could not be reached: Proxy CONNECT failed: "
        "HTTP/1.1 407 Proxy Authentication Required"
    )


def test_answers_are_asked_for_uncompressed_and_a_compressed_one_is_refused_clearly(
    make: Make,
) -> None:
    gzipped = gzip.compress(b'{"id":"x"}')
    port, heads = answer_once(json_answer(gzipped, b"Content-Encoding: gzip\r\n"))
    # What the SDK's client would send: it decodes; the transport passes bytes on as they come.
    sdk_headers = {**HEADERS, "accept-encoding": "gzip, deflate, br"}
    transport = make(f"http://127.0.0.1:{port}/v1/chat/completions", sdk_headers)

    with pytest.raises(Exception) as caught:
        transport.post(BODY, {}, TIMEOUT, stream=False)
    transport.close()

    assert b"\r\nAccept-Encoding: identity\r\n" in heads[0]
    assert b"gzip" not in heads[0]
    error = classified(caught.value)
    assert isinstance(error, UpstreamUnavailable)
    assert "cannot read" in error.message and "'gzip'" in error.message


def test_in_threads_one_pool_serves_them_all_and_no_thread_gets_a_gevent_hub(
    simulator: Simulator,
) -> None:
    transport = ThreadedTransport(f"{simulator.url}/v1/chat/completions", HEADERS)
    all_open = threading.Barrier(3)
    statuses: list[int] = []
    hubs: list[object] = []

    def call(name: str, together: bool) -> None:
        response = transport.post(STREAM_BODY, {"x-request-id": name}, TIMEOUT, True)
        if together:
            all_open.wait(timeout=10)  # three streams open at once: three connections
        b"".join(response.iter_bytes())
        response.close()
        statuses.append(response.status_code)
        hubs.append(get_hub_if_exists())

    def run(names: list[str], together: bool) -> None:
        threads = [threading.Thread(target=call, args=(name, together)) for name in names]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # The first token a second after the head: a body that came whole with its head would
    # release its connection at once (geventhttpclient does), and two streams could share one.
    simulator.set(ttft=1.0)
    run(["first-0", "first-1", "first-2"], together=True)
    simulator.set(ttft=0.0)
    for turn in range(3):  # then threads new each time, one after another
        run([f"then-{turn}"], together=False)
    transport.close()

    assert statuses == [200] * 6
    assert hubs == [None] * 6
    ports = {request["headers"]["x-request-id"]: request["client_port"] for request in simulator.requests()}
    first = {ports[f"first-{n}"] for n in range(3)}
    assert len(first) == 3
    # The threads that came after reused a connection the first ones left in the shared pool.
    assert {ports[f"then-{n}"] for n in range(3)} <= first
