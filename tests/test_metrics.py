"""Request metrics are written in batches (metrics.py): added up, read whole by a scrape of the
process itself, and seen by a scrape of another process within a batch's interval."""

from __future__ import annotations

import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from ai_router.batches import BATCH_SECONDS
from ai_router.config import settings_from_mapping
from ai_router.metrics import LATENCY_BUCKETS, Metrics, observe_all
from ai_router.types import Usage

PROVIDERS = {"providers": {"openai": {"default_model": "gpt-4o-mini"}}}


def served(metrics: Metrics, status: str = "ok", cost: float | None = 0.5) -> None:
    metrics.observe_request(
        "openai", "", "openai", "gpt-4o-mini", status, 0.02, None, Usage(8, 16), "", cost
    )


def test_reading_the_registry_writes_the_pending_requests_first() -> None:
    metrics = Metrics(settings_from_mapping(PROVIDERS, {}))
    labels = {"surface": "openai", "alias": "", "provider": "openai", "model": "gpt-4o-mini"}
    for _ in range(3):
        served(metrics)
    served(metrics, status="rate_limited", cost=None)
    sample = metrics.registry.get_sample_value
    assert sample("ai_router_requests_total", {**labels, "status": "ok"}) == 3
    assert sample("ai_router_requests_total", {**labels, "status": "rate_limited"}) == 1
    series = {"provider": "openai", "model": "gpt-4o-mini"}
    assert sample("ai_router_tokens_total", {**series, "direction": "input"}) == 32
    assert sample("ai_router_tokens_total", {**series, "direction": "output"}) == 64
    assert sample("ai_router_cost_usd_total", {**series, "key": ""}) == 1.5
    latency = {"surface": "openai", **series}
    assert sample("ai_router_request_duration_seconds_count", latency) == 4
    assert sample("ai_router_request_duration_seconds_bucket", {**latency, "le": "0.025"}) == 4
    assert sample("ai_router_request_duration_seconds_bucket", {**latency, "le": "0.01"}) == 0


def test_a_batch_of_latencies_reads_as_the_same_observations_made_one_by_one() -> None:
    # On a bound, between bounds, past the last (+Inf), zero, and one bucket more than once.
    latencies = [0.005, 0.0051, 0.3, 0.3, 301.0, 0.0, 2.5, 119.9]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    each = Histogram("seconds", "", ["surface"], buckets=LATENCY_BUCKETS, registry=one_by_one)
    for seconds in latencies:
        each.labels("openai").observe(seconds)
    together = Histogram("seconds", "", ["surface"], buckets=LATENCY_BUCKETS, registry=batched)
    observe_all(together.labels("openai"), latencies)

    def samples(registry: CollectorRegistry) -> list[bytes]:  # all but when each was made
        return [line for line in generate_latest(registry).splitlines() if b"_created" not in line]

    assert samples(batched) == samples(one_by_one)
    assert b'seconds_bucket{le="+Inf",surface="openai"} 8.0' in samples(batched)
    assert b'seconds_bucket{le="0.005",surface="openai"} 2.0' in samples(batched)


def test_requests_in_flight_are_the_sum_of_their_beginnings_and_ends() -> None:
    metrics = Metrics(settings_from_mapping(PROVIDERS, {}))
    for change in (1, 1, 1, -1):
        metrics.count_in_flight("grpc", change)
    assert metrics.registry.get_sample_value("ai_router_in_flight_requests", {"surface": "grpc"}) == 2
    metrics.count_in_flight("grpc", -1)
    metrics.count_in_flight("grpc", -1)
    assert metrics.registry.get_sample_value("ai_router_in_flight_requests", {"surface": "grpc"}) == 0


def counted(registry: CollectorRegistry, labels: dict[str, str]) -> float | None:
    """The requests counted, or None while the other process is still creating its file:
    prometheus_client's reader fails on a metrics file created and not yet sized."""
    try:
        return registry.get_sample_value("ai_router_requests_total", labels)
    except struct.error:
        return None


def test_another_process_sees_a_request_within_a_batch_interval(tmp_path: Path) -> None:
    """A worker that serves one request and nothing else (no scrape of its own) writes it."""
    serving = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys
            from ai_router.config import settings_from_mapping
            from ai_router.metrics import Metrics
            from ai_router.types import Usage
            metrics = Metrics(settings_from_mapping({PROVIDERS!r}, {{}}))
            metrics.observe_request("openai", "", "openai", "gpt-4o-mini", "ok", 0.02, None, Usage(8, 16), "", None)
            print("served", flush=True)
            sys.stdin.read()  # until the test is done
        """)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert serving.stdout is not None and serving.stdout.readline() == "served\n"
        served_at = time.monotonic()
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
        labels = {"surface": "openai", "alias": "", "provider": "openai", "model": "gpt-4o-mini", "status": "ok"}
        while counted(registry, labels) != 1:
            assert time.monotonic() - served_at < BATCH_SECONDS + 2, "never written"
            time.sleep(BATCH_SECONDS / 10)
    finally:
        serving.communicate("", timeout=10)


def test_a_forked_child_leaves_the_parents_batch_to_the_parent(tmp_path: Path) -> None:
    """Both write to the same directory: the request is counted once, by the parent, and the
    child's own flush does not wait on a lock that the parent's flusher held at the fork."""
    script = textwrap.dedent(f"""
        import os
        import signal
        from ai_router.batches import flush_all
        from ai_router.config import settings_from_mapping
        from ai_router.metrics import Metrics
        from ai_router.types import Usage
        metrics = Metrics(settings_from_mapping({PROVIDERS!r}, {{}}))
        metrics.observe_request("openai", "", "openai", "gpt-4o-mini", "ok", 0.02, None, Usage(8, 16), "", None)
        metrics._flushing.acquire()  # as if the parent's flusher were writing when it forked
        child = os.fork()
        if child == 0:
            signal.alarm(10)  # a child stuck on the lock ends by itself (and fails the test)
            flush_all()
            os._exit(0)
        metrics._flushing.release()
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        flush_all()
    """)
    subprocess.run(
        [sys.executable, "-c", script],
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True, timeout=30,
    )  # fmt: skip
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(tmp_path))  # type: ignore[no-untyped-call]
    labels = {"surface": "openai", "alias": "", "provider": "openai", "model": "gpt-4o-mini", "status": "ok"}
    assert registry.get_sample_value("ai_router_requests_total", labels) == 1


def test_a_scrape_reads_every_process_past_an_empty_file_a_killed_one_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process creates its metrics file before it sizes it; one killed in between leaves an
    empty file for good, which prometheus_client's own collector fails on at every scrape."""
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(f"""
            from ai_router.batches import flush_all
            from ai_router.config import settings_from_mapping
            from ai_router.metrics import Metrics
            from ai_router.types import Usage
            metrics = Metrics(settings_from_mapping({PROVIDERS!r}, {{}}))
            metrics.observe_request("openai", "", "openai", "gpt-4o-mini", "ok", 0.02, None, Usage(8, 16), "", None)
            flush_all()
        """)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True, timeout=30,
    )  # fmt: skip
    (tmp_path / "counter_4194304.db").touch()  # the killed process's
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))

    exposition = Metrics(settings_from_mapping(PROVIDERS, {})).exposition().decode()

    assert (
        'ai_router_requests_total{alias="",model="gpt-4o-mini",provider="openai",status="ok",'
        'surface="openai"} 1.0'
    ) in exposition
