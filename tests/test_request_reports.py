"""A finished request's report (observe.RequestRecord): made once, with the process's next
batch (batches.py), off the request; its metrics, log line and usage-log line as of when it
finished."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import pytest
from prometheus_client import CollectorRegistry

from ai_router import batches, observe
from ai_router.answers import Account
from ai_router.config import settings_from_mapping
from ai_router.metrics import Metrics
from ai_router.observe import RequestRecord, UsageSink
from ai_router.types import Usage

SETTINGS = settings_from_mapping({"providers": {"openai": {"default_model": "gpt-4o-mini"}}}, {})
Sink = list[Mapping[str, object]]
LABELS = {"surface": "openai", "alias": "", "provider": "openai", "model": "gpt-4o-mini", "status": "ok"}


def finished_requests(registry: CollectorRegistry) -> float | None:
    return registry.get_sample_value("ai_router_requests_total", LABELS)


def record_into(metrics: Metrics, sink: UsageSink, request_id: str = "r-1") -> RequestRecord:
    record = RequestRecord("openai", request_id, metrics, sink=sink)
    record.account = Account(provider="openai", model="gpt-4o-mini", usage=Usage(3, 5))
    return record


def test_a_request_finished_twice_is_reported_once_with_the_status_it_finished_with() -> None:
    metrics, sink = Metrics(SETTINGS), Sink()
    record = record_into(metrics, sink.extend)

    record.finish("ok")
    record.finish("internal")
    batches.flush_all()

    assert [(line["request_id"], line["status"], line["input_tokens"]) for line in sink] == [("r-1", "ok", 3)]
    assert finished_requests(metrics.registry) == 1


def test_reading_the_metrics_reports_the_requests_finished_before() -> None:
    """A scrape (or the gRPC process's own metrics port) sees every request finished before it,
    though no batch has been written: reading the registry writes the batches first."""
    metrics, sink = Metrics(SETTINGS), Sink()
    record_into(metrics, sink.extend).finish("ok")

    assert finished_requests(metrics.registry) == 1
    assert len(sink) == 1


def test_beyond_its_limit_of_waiting_records_the_request_that_finishes_one_reports_them_all() -> None:
    # As the process's queue of reports, but with a limit of 2 and not watched by the batch thread.
    waiting = batches.Queue(observe._report_each, limit=2)
    metrics, sink = Metrics(SETTINGS), Sink()
    first, second = record_into(metrics, sink.extend, "r-1"), record_into(metrics, sink.extend, "r-2")

    waiting.add(first)
    assert sink == []
    waiting.add(second)
    assert [line["request_id"] for line in sink] == ["r-1", "r-2"]


def test_a_report_that_fails_is_logged_and_the_others_are_still_made(caplog: pytest.LogCaptureFixture) -> None:
    waiting = batches.Queue(observe._report_each, limit=100)
    metrics, sink = Metrics(SETTINGS), Sink()

    def gone(records: Sequence[Mapping[str, object]]) -> None:
        raise OSError("the usage log's directory is gone")

    waiting.add(record_into(metrics, gone, "r-broken"))
    waiting.add(record_into(metrics, sink.extend, "r-2"))
    with caplog.at_level(logging.ERROR, logger="ai_router.observe"):
        waiting.flush()

    assert [line["request_id"] for line in sink] == ["r-2"]
    [failure] = caplog.records
    assert failure.getMessage() == "writing 1 requests to the usage log failed"
    assert failure.__dict__["request_id"] == "r-broken"


def test_the_usage_lines_of_a_batch_reach_their_sink_in_one_call() -> None:
    waiting = batches.Queue(observe._report_each, limit=100)
    metrics, calls = Metrics(SETTINGS), list[list[str]]()

    def sink(records: Sequence[Mapping[str, object]]) -> None:
        calls.append([str(record["request_id"]) for record in records])

    for request_id in ("r-1", "r-2", "r-3"):
        waiting.add(record_into(metrics, sink, request_id))
    waiting.flush()

    assert calls == [["r-1", "r-2", "r-3"]]
