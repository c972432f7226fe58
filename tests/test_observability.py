"""Metrics, request ids, per-request log lines and traces, through real router processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx2
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families
from support import (
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.batches import BATCH_SECONDS

ALIASES = {"smart": {"targets": [{"model": "openai/gpt-4o", "max_retries": 0}, "anthropic/claude-3-opus"]}}


class Collector(ThreadingHTTPServer):
    """A stand-in OTLP/HTTP collector: keeps the spans it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CollectorHandler)
        self.spans: list[Any] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CollectorHandler(BaseHTTPRequestHandler):
    server: Collector

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.server.spans.extend(scope_spans.spans)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def collector() -> Iterator[Collector]:
    server = Collector()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def observed(
    simulator_process: Simulator, collector: Collector, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """Two gunicorn workers and a gRPC server, exporting traces to the collector."""
    directory = tmp_path_factory.mktemp("observed")
    config = RouterConfig(simulator_process, directory, {"models": ALIASES})
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    env = {
        **config.env(),
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "GRPC_METRICS_PORT": str(metrics_port),
        "WEB_CONCURRENCY": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    processes: list[Process] = [
        start_process("observed-http", ["http"], env, directory, http_port),
        start_process("observed-grpc", ["grpc"], env, directory, grpc_port),
    ]
    try:
        for process in processes:
            wait_for_port(process)
        yield {
            "http": f"http://127.0.0.1:{http_port}",
            "grpc": f"127.0.0.1:{grpc_port}",
            "grpc_metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            "http_log": processes[0].log_path,
        }
    finally:
        for process in processes:
            process.stop()


def samples(url: str, name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    text = httpx2.get(url, timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def moved_by(url: str, name: str, before: float, expected: float, **labels: str) -> float:
    """How far `name` moved from `before`, once it reached `expected`: each worker writes its
    requests' metrics within BATCH_SECONDS, and a scrape is answered by one of them."""
    wait_until(
        lambda: samples(url, name, **labels) - before >= expected, BATCH_SECONDS + 5, f"{name} at +{expected:g}"
    )
    return samples(url, name, **labels) - before


def log_entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_http_counters_move_by_exactly_the_requests_sent_across_workers(
    observed: dict[str, Any], simulator: Simulator
) -> None:
    metrics = f"{observed['http']}/metrics"
    labels = {"surface": "generate", "provider": "openai", "model": "gpt-4o-mini", "status": "ok"}
    before = samples(metrics, "ai_router_requests_total", **labels)
    simulator.set(latency=0.1)  # keep requests overlapping, so that both workers take some

    def send(_: int) -> str:
        # A connection of its own each, so the kernel may hand it to either worker.
        response = httpx2.post(
            f"{observed['http']}/generate", json={"provider": "openai", "prompt": "x"}, timeout=10
        )
        assert response.status_code == 200
        return response.headers["X-Request-ID"]

    def workers_of(request_ids: set[str]) -> set[int]:
        return {
            entry["pid"]
            for entry in log_entries(observed["http_log"])
            if entry.get("request_id") in request_ids
        }

    # Which worker accepts a connection is the kernel's choice: send bursts until both have
    # served some (a bounded number), then count every request sent.
    def logged(request_ids: set[str]) -> bool:
        """Whether every request's log line is written: that happens once its response is."""
        return {e.get("request_id") for e in log_entries(observed["http_log"])} >= request_ids

    request_ids: set[str] = set()
    with ThreadPoolExecutor(16) as pool:
        for _ in range(10):
            request_ids |= set(pool.map(send, range(24)))
            wait_until(lambda: logged(request_ids), 5, "a log line for every request sent")
            if len(workers_of(request_ids)) == 2:
                break

    assert len(workers_of(request_ids)) == 2, "every request was served by one worker"
    sent = moved_by(metrics, "ai_router_requests_total", before, len(request_ids), **labels)
    assert sent == len(request_ids)
    print(f"\n{len(request_ids)} requests over 2 workers: the counter moved by {sent:g}")


def test_histograms_and_token_counters_observe_streams(
    observed: dict[str, Any], simulator: Simulator
) -> None:
    metrics = f"{observed['http']}/metrics"
    ttft = ("ai_router_time_to_first_token_seconds_count", {"surface": "stream"})
    tokens = ("ai_router_tokens_total", {"provider": "anthropic", "direction": "output"})
    before = [samples(metrics, name, **labels) for name, labels in (ttft, tokens)]

    for _ in range(3):
        with httpx2.stream(
            "POST", f"{observed['http']}/stream", json={"provider": "anthropic", "prompt": "a b"}
        ) as response:
            list(response.iter_lines())

    words = len("Simulated reply from claude-3-5-haiku-20241022: a b".split())
    assert moved_by(metrics, ttft[0], before[0], 3, **ttft[1]) == 3
    assert moved_by(metrics, tokens[0], before[1], 3 * words, **tokens[1]) == 3 * words


def test_fallbacks_and_their_reasons_are_counted(
    observed: dict[str, Any], simulator: Simulator
) -> None:
    metrics = f"{observed['http']}/metrics"
    labels = {"alias": "smart", "provider": "openai", "model": "gpt-4o", "reason": "unavailable"}
    before = samples(metrics, "ai_router_fallbacks_total", **labels)
    simulator.fail_next({"status": 500, "family": "openai"})

    response = httpx2.post(f"{observed['http']}/generate", json={"model": "smart", "prompt": "x"})

    assert response.status_code == 200
    assert moved_by(metrics, "ai_router_fallbacks_total", before, 1, **labels) == 1


def test_the_grpc_process_serves_its_own_metrics(
    observed: dict[str, Any], simulator: Simulator
) -> None:
    labels = {"surface": "grpc", "provider": "openai", "status": "ok"}
    before = samples(observed["grpc_metrics"], "ai_router_requests_total", **labels)
    with grpc.insecure_channel(observed["grpc"]) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        stub.RouteRequest(pb.AIRequest(provider="openai", prompt="x"), timeout=10)
        list(stub.StreamingRouteRequest(pb.AIRequest(provider="openai", prompt="y"), timeout=10))

    assert moved_by(observed["grpc_metrics"], "ai_router_requests_total", before, 2, **labels) == 2


def test_one_log_line_per_request_with_its_id_and_no_content(
    observed: dict[str, Any], simulator: Simulator
) -> None:
    response = httpx2.post(
        f"{observed['http']}/generate",
        json={"model": "smart", "prompt": "a secret prompt"},
        headers={"X-Request-ID": "trace-me-1"},
    )

    def lines() -> list[dict[str, Any]]:
        return [e for e in log_entries(observed["http_log"]) if e.get("request_id") == "trace-me-1"]

    # The request's line is written once the response has been sent.
    wait_until(lambda: any(e["message"] == "request" for e in lines()), 5, "the request's log line")
    request_lines = [e for e in lines() if e["message"] == "request"]

    assert response.headers["X-Request-ID"] == "trace-me-1"
    assert simulator.last_request()["headers"]["x-request-id"] == "trace-me-1"
    assert len(request_lines) == 1
    line = request_lines[0]
    assert {k: line[k] for k in ("surface", "alias", "provider", "model", "status")} == {
        "surface": "generate",
        "alias": "smart",
        "provider": "openai",
        "model": "gpt-4o",
        "status": "ok",
    }
    assert line["latency_ms"] > 0 and line["output_tokens"] > 0
    assert "a secret prompt" not in json.dumps(lines())  # prompts are never logged
    print(f"\none request's log line: {json.dumps(line)}")


def test_spans_cover_the_request_and_each_attempt(
    observed: dict[str, Any], simulator: Simulator, collector: Collector
) -> None:
    simulator.fail_next({"status": 500, "family": "openai"})

    httpx2.post(
        f"{observed['http']}/generate",
        json={"model": "smart", "prompt": "x"},
        headers={"X-Request-ID": "traced-1"},
    )

    def spans_of_request() -> list[Any]:
        request = [
            s
            for s in collector.spans
            if s.name == "ai_router.request"
            and any(a.key == "ai_router.request_id" and a.value.string_value == "traced-1" for a in s.attributes)
        ]
        if not request:
            return []
        return [request[0]] + [s for s in collector.spans if s.parent_span_id == request[0].span_id]

    wait_until(lambda: len(spans_of_request()) >= 3, 10, "the request's span and its two attempts' spans")
    request, *attempts = spans_of_request()

    targets = [
        next(a.value.string_value for a in span.attributes if a.key == "ai_router.target")
        for span in attempts
    ]
    assert sorted(targets) == ["anthropic/claude-3-opus", "openai/gpt-4o"]
    assert all(span.name == "ai_router.attempt" for span in attempts)


def test_the_span_of_a_request_reported_at_exit_is_still_exported(collector: Collector) -> None:
    """A request that finished just before its process exits is reported by the exit's batch
    (batches.py): its span ends then, before the exporter shuts down, not after it."""
    script = textwrap.dedent("""
        from ai_router.config import settings_from_mapping
        from ai_router.metrics import Metrics
        from ai_router.observe import RequestRecord
        from ai_router.tracing import configure_tracing
        configure_tracing("test")
        metrics = Metrics(settings_from_mapping({"providers": {"openai": {"default_model": "m"}}}, {}))
        RequestRecord("openai", "reported-at-exit", metrics).finish("ok")
    """)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)

    assert any(
        span.name == "ai_router.request"
        and any(a.key == "ai_router.request_id" and a.value.string_value == "reported-at-exit" for a in span.attributes)
        for span in collector.spans
    )
