"""The path to an upstream (providers/upstream.py, failures.py) and the watchdog's one entry per
stream: requests go out as the SDK would send them, error answers become the router's errors,
SSE is split as the format says, and a stream re-armed on every chunk is still cut off when it
stalls."""

from __future__ import annotations

import time

import httpx2
import openai
import pytest
from support import Simulator

from ai_router.errors import UpstreamAuthFailed, UpstreamRateLimited, UpstreamRejected
from ai_router.providers import failures
from ai_router.providers.upstream import sdk_request_head
from ai_router.upstream_watch import Watchdog
from ai_router.wire.sse import event_data


# --- what goes out -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "user_agent", "sdk_header"),
    [("openai", "OpenAI/Python", "authorization"), ("anthropic", "Anthropic/Python", "anthropic-version")],
)
def test_the_upstream_gets_the_api_headers_the_sdk_itself_would_send(
    client: httpx2.Client, simulator: Simulator, provider: str, user_agent: str, sdk_header: str
) -> None:
    for path, body in (
        ("/generate", {"provider": provider, "prompt": "hi"}),
        ("/stream", {"provider": provider, "prompt": "hi"}),
    ):
        response = client.post(path, json=body, headers={"x-request-id": f"fast-path-{path[1:]}"})
        assert response.status_code == 200, response.text

        headers = simulator.last_request()["headers"]
        assert headers["user-agent"].startswith(user_agent)
        assert sdk_header in headers
        assert headers["content-type"] == "application/json"
        assert headers["x-request-id"] == f"fast-path-{path[1:]}"
        # The SDK's client asks for compressed answers and decodes them; the fast path relays
        # bytes as they come, so it asks for them plain.
        assert headers["accept-encoding"] == "identity"
        # The SDK's telemetry about its own runtime: the SDK does not send these requests.
        assert not [name for name in headers if name.startswith("x-stainless-")]


def test_headers_and_url_are_captured_from_the_sdk_client_without_sending_anything() -> None:
    sdk_client = openai.OpenAI(api_key="sk-captured", base_url="http://127.0.0.1:9/v1")

    url, headers = sdk_request_head(sdk_client, "/chat/completions")

    assert url == "http://127.0.0.1:9/v1/chat/completions"
    assert headers["authorization"] == "Bearer sk-captured"
    assert "host" not in headers and "content-length" not in headers


UPSTREAM = failures.Upstream("anthropic", "sk-ant-secret", timeout=30)


def test_an_error_status_becomes_the_routers_error_with_the_upstreams_message_and_wait() -> None:
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}'

    error = failures.status_error(UPSTREAM, 429, [("retry-after", "3")], body)

    assert isinstance(error, UpstreamRateLimited)
    assert (error.status, error.retry_after) == (429, 3.0)
    assert error.message == "provider 'anthropic' is rate limiting the router (HTTP 429): slow down"


def test_a_rejected_key_never_quotes_the_upstreams_text_and_a_rejection_redacts_the_key() -> None:
    quoting = b'{"error":{"message":"key sk-ant-secret is invalid"}}'

    refused = failures.status_error(UPSTREAM, 401, [], quoting)
    rejected = failures.status_error(UPSTREAM, 400, [("retry-after-ms", "1500")], quoting)

    assert isinstance(refused, UpstreamAuthFailed) and "secret" not in refused.message
    assert isinstance(rejected, UpstreamRejected) and not rejected.retryable
    assert "sk-ant-secret" not in rejected.message and "[redacted]" in rejected.message
    assert rejected.retry_after == 1.5


# --- reading SSE -------------------------------------------------------------------------------


def test_sse_data_yields_each_events_data_across_arbitrary_read_boundaries() -> None:
    wire = b'data: {"a":1}\n\n: a comment\n\nevent: ping\ndata: {"b":2}\n\ndata: [DONE]\n\n'
    for cut in range(1, len(wire)):
        assert list(event_data([wire[:cut], wire[cut:]])) == [b'{"a":1}', b'{"b":2}', b"[DONE]"]


def test_sse_data_accepts_crlf_line_ends_even_split_between_reads() -> None:
    wire = b"data: one\r\n\r\ndata: two\r\n\r\n"
    for cut in range(1, len(wire)):
        assert list(event_data([wire[:cut], wire[cut:]])) == [b"one", b"two"]


def test_sse_data_joins_multi_line_data_and_keeps_a_last_unterminated_event() -> None:
    assert list(event_data([b"data: first\ndata:second\n\ndata: tail"])) == [
        b"first\nsecond",
        b"tail",
    ]


# --- the watchdog ------------------------------------------------------------------------------


class Response:
    def __init__(self) -> None:
        self.cut_at: float | None = None

    def shut_down(self) -> None:
        self.cut_at = time.monotonic()


def test_a_stream_rearmed_on_every_chunk_keeps_one_heap_entry() -> None:
    watchdog = Watchdog()
    watch = watchdog.watch()
    watch.attach(Response(), 30.0)

    for _ in range(1000):
        watch.pause()
        watch.rearm(30.0)

    assert len(watchdog._heap) == 1


def test_a_rearmed_stream_is_cut_off_at_its_last_deadline_not_its_first() -> None:
    watchdog = Watchdog()
    watch = watchdog.watch()
    response = Response()
    started = time.monotonic()
    watch.attach(response, 0.2)
    while time.monotonic() - started < 0.5:  # chunks keep coming for 0.5 s
        watch.pause()
        watch.rearm(0.2)
        time.sleep(0.02)
    last_chunk = time.monotonic()

    deadline = time.monotonic() + 3
    while response.cut_at is None and time.monotonic() < deadline:
        time.sleep(0.01)

    assert response.cut_at is not None, "a stalled stream was never cut off"
    assert watch.reason == "timeout"
    assert 0.15 <= response.cut_at - last_chunk < 1.0


# --- keep-alive --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", {"provider": "openai", "prompt": "hi"}),
        ("/stream", {"provider": "openai", "prompt": "hi"}),
        ("/stream", {"provider": "anthropic", "prompt": "hi"}),
        (
            "/v1/chat/completions",
            {"model": "openai/gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        ),
    ],
)
def test_calls_one_after_another_reuse_one_upstream_connection(
    client: httpx2.Client, simulator: Simulator, path: str, body: dict[str, object]
) -> None:
    ports = []
    for _ in range(3):
        response = client.post(path, json=body)
        assert response.status_code == 200, response.text
        assert b"error" not in response.content
        ports.append(simulator.last_request()["client_port"])

    # A stream read to its end (OpenAI's [DONE] included) gives its connection back; a new
    # connection per call would be a TLS handshake per call against a real provider.
    assert len(set(ports)) == 1, ports
