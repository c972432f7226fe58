"""What a process keeps per model name is bounded by the config, not by its clients: a provider
without `models:` accepts any name, and a client sending a new one with every request must not
grow the process (issue 21: about 0.5 KB per name, never freed).

In-process: the real Flask app on a fake upstream (providers/fake_transport.py), every surface,
answers and upstream failures alike.
"""

from __future__ import annotations

import gc
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from ai_router.access.pricing import MAX_UNPRICED_WARNINGS, PriceTable
from ai_router.config import settings_from_mapping
from ai_router.http_api.app import create_app
from ai_router.batches import flush_all
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.router import Router, build_providers
from ai_router.types import Usage

NAMES = 1000
# Kept whatever the names: the metrics batch's deque holds on to up to 16 freed blocks of 64 items
# (528 bytes each, CPython's deque), more of them when a slower machine lets more requests pile up
# between two writes: up to 8.4 bytes a name here. A name kept costs at least its string, 60 bytes.
KEPT_BYTES_PER_NAME = 24
WARM_UP = 200  # first-time costs: a metric's "other" series, dicts grown to their size
OPENAI_ANSWER = {
    "model": "x",
    "choices": [{"message": {"content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1},
}
OPENAI_STREAM = (
    ("", {"model": "x", "choices": [{"index": 0, "delta": {"content": "hi"}}]}),
    ("", {"model": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
    b"data: [DONE]\n\n",
)
CONFIG = {
    "providers": {
        # No `models:` list: any model id is passed on.
        "openai": {"default_model": "gpt-4o-mini", "max_retries": 0},
        "anthropic": {"default_model": "claude", "max_retries": 0},
    },
    "models": {"fast": {"targets": ["openai/gpt-4o-mini", "anthropic/claude"]}},
    "cooldown": {"failures": 1},
}
# What this process allocates outside the router's own modules (the test client, pydantic's
# bounded string cache, the interpreter) is not the router's keeping. Neither are the watchdog's
# entries: one per request until its deadline (upstream_watch.py), whatever the name.
# ai_router/access/pricing.py remembers the unpriced names it has warned about, up to
# MAX_UNPRICED_WARNINGS (1,000), as many as this test sends: bounded, but not by the config.
KEPT_BY_THE_ROUTER = (
    tracemalloc.Filter(True, "*/ai_router/*"),
    tracemalloc.Filter(False, "*/ai_router/upstream_watch.py"),
    tracemalloc.Filter(False, "*/ai_router/access/pricing.py"),
)


def upstream_answer(request: FakeRequest) -> FakeAnswer:
    """Every third model fails (500), so failures are kept track of too."""
    body = request.json()
    if int(body["model"].rpartition("-")[2]) % 3 == 0:
        return FakeAnswer.of_json({"error": {"message": "down", "type": "server_error"}}, 500)
    return FakeAnswer.of_events(*OPENAI_STREAM) if body.get("stream") else FakeAnswer.of_json(OPENAI_ANSWER)


@pytest.fixture
def upstream() -> FakeUpstream:
    return FakeUpstream(upstream_answer)


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[FlaskClient]:
    settings = settings_from_mapping(CONFIG, {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"})
    router = Router(settings, build_providers(settings, upstream.connect))
    logging.disable(logging.CRITICAL)  # a captured log record would be kept per request
    try:
        yield create_app(settings, router).test_client()
    finally:
        logging.disable(logging.NOTSET)
        router.close()


def sender(client: FlaskClient, upstream: FakeUpstream) -> Callable[[int, int], None]:
    """Request number `n`, for model number `model`: by turns on each surface, streams read to
    their end. The fake upstream's record of what it was sent is the test's, dropped each time."""
    messages = [{"role": "user", "content": "x"}]

    def send(n: int, model_number: int) -> None:
        model = f"openai/made-up-{model_number}"
        surface = n % 5
        body: dict[str, Any]
        if surface == 0:
            path, body = "/generate", {"model": model, "prompt": "x"}
        elif surface == 1:
            path, body = "/stream", {"model": model, "prompt": "x"}
        elif surface in (2, 3):  # relayed as it is, whole and streamed
            path, body = "/v1/chat/completions", {"model": model, "messages": messages, "stream": surface == 3}
        else:  # translated from Anthropic's format
            path, body = "/v1/messages", {"model": model, "messages": messages, "max_tokens": 5}
        with client.post(path, json=body) as response:
            response.get_data()
            assert response.status_code in (200, 502), response.get_data(as_text=True)
        upstream.requests.clear()
        upstream.answers.clear()

    return send


def kept_per_name(send: Callable[[int, int], None]) -> float:
    """The bytes the router's modules hold on to after a request for each of NAMES new model
    names, per name."""
    gc.collect()
    tracemalloc.start()
    try:
        flush_all()  # a batch (batches.py) holds its requests for at most BATCH_SECONDS
        before = tracemalloc.take_snapshot().filter_traces(KEPT_BY_THE_ROUTER)
        for n in range(NAMES):
            send(n, WARM_UP + n)
        flush_all()
        gc.collect()
        after = tracemalloc.take_snapshot().filter_traces(KEPT_BY_THE_ROUTER)
    finally:
        tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / NAMES


def series(client: FlaskClient) -> set[str]:
    """Every series but the in-flight gauge's: one per surface, made when a batch is first written
    while a request of that surface is in flight, so that a slower machine makes it later."""
    text = client.get("/metrics").get_data(as_text=True)
    return {
        line.rpartition(" ")[0] for line in text.splitlines()
        if line.startswith("ai_router_") and not line.startswith("ai_router_in_flight_requests")
    }


def test_a_new_model_name_with_every_request_grows_nothing(
    client: FlaskClient, upstream: FakeUpstream
) -> None:
    send = sender(client, upstream)
    for n in range(WARM_UP):
        send(n, n)
    shown = series(client)

    kept = kept_per_name(send)

    assert kept < KEPT_BYTES_PER_NAME, f"{kept:.0f} bytes kept per model name"
    assert series(client) == shown  # made-up names are all counted as model "other"
    assert any('model="other"' in line for line in shown)
    print(f"\n{NAMES} new model names on 5 surfaces, a third failing: {kept:.1f} bytes kept per name")


def test_an_unpriced_name_is_warned_about_once_and_the_names_kept_are_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    prices = PriceTable({})

    with caplog.at_level(logging.WARNING, logger="ai_router.access.pricing"):
        for number in [0, 0, *range(MAX_UNPRICED_WARNINGS + 500)]:
            assert prices.cost("local", "openai", f"made-up-{number}", Usage(1, 1)) == 0.0

    warnings = [record.getMessage() for record in caplog.records]
    assert warnings[0] == "no price for local/made-up-0: its requests cost 0"
    assert len(warnings) == MAX_UNPRICED_WARNINGS  # then no more names are kept
