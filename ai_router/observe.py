"""One record per request, reported once after the request ends: one JSON log line, the
Prometheus metrics, the trace span's end and, when configured, the usage log. Reported with the
process's next batch (batches.py), many requests at a time, rather than by each request itself.

The request scope (scope.py) opens the record; the core fills in its `account` (who answered,
the attempts, the usage and the cost) as the call goes; the scope closes it with the status the
client got, once the answer has been sent. `enter` makes it current for the log lines and spans
written meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from ai_router import batches, tracing
from ai_router.answers import Account
from ai_router.logs import log_request, request_id_var
from ai_router.metrics import Metrics

log = logging.getLogger(__name__)

# Takes the usage-log lines of several finished requests at once: one write for a batch.
UsageSink = Callable[[Sequence[Mapping[str, object]]], None]


@dataclass
class RequestRecord:
    surface: str  # grpc, generate, stream, openai, anthropic, responses, embeddings, count_tokens
    request_id: str
    metrics: Metrics
    model_asked: str = ""
    account: Account = field(default_factory=Account)
    streamed: bool = False
    error: str | None = None  # the error type a stream ended with, after its first byte
    sink: UsageSink | None = None  # the usage log, when configured
    span: Span = field(init=False)
    status: str = field(default="", init=False)
    latency: float = field(default=0.0, init=False)
    ended: float = field(default=0.0, init=False)  # wall-clock time, for the span and the line
    _finished: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.span = tracing.start_span(
            "ai_router.request",
            attributes={"ai_router.surface": self.surface, "ai_router.request_id": self.request_id},
        )

    def finish(self, status: str) -> None:
        """The request is over: `status` is "ok" or the error type the client got. Reported
        once, with the process's next batch (batches.py), off the request."""
        if self._finished:
            return
        self._finished = True
        self.status = self.error or status
        self.latency = time.monotonic() - self.account.started
        self.ended = time.time()
        _reports.add(self)

    def report(self) -> dict[str, object]:
        """The span's end, the metrics and the log line of the finished request, as of when it
        finished; returns its usage-log line, for the sink."""
        account = self.account
        self._end_span(self.status)
        ttft = account.time_to_first_token if self.streamed else None
        self.metrics.observe_request(
            self.surface, account.alias, account.provider, account.model, self.status,
            self.latency, ttft, account.usage, account.key, account.cost_usd,
        )  # fmt: skip
        usage_record = self.usage_record()
        log_request(usage_record, at=self.ended)
        return usage_record

    def usage_record(self) -> dict[str, object]:
        """What the request's log line and usage-log line say (never content, never a key)."""
        account = self.account
        ttft = account.time_to_first_token
        return {
            "request_id": self.request_id,
            "key": account.key or None,
            "surface": self.surface,
            "model_asked": self.model_asked,
            "alias": account.alias or None,
            "provider": account.provider or None,
            "model": account.model or None,
            "status": self.status,
            "latency_ms": round(self.latency * 1000, 2),
            "ttft_ms": None if ttft is None else round(ttft * 1000, 2),
            "input_tokens": account.usage.input_tokens if account.usage else None,
            "output_tokens": account.usage.output_tokens if account.usage else None,
            "cost_usd": account.cost_usd,
            "attempts": account.attempts or None,
        }

    def _end_span(self, status: str) -> None:
        if not self.span.is_recording():
            return  # nothing is exported (tracing.py)
        account = self.account
        attributes = {
            "ai_router.model_asked": self.model_asked,
            "ai_router.alias": account.alias,
            "ai_router.provider": account.provider,
            "ai_router.model": account.model,
            "ai_router.status": status,
        }
        if account.usage is not None:
            attributes["ai_router.input_tokens"] = str(account.usage.input_tokens)
            attributes["ai_router.output_tokens"] = str(account.usage.output_tokens)
        self.span.set_attributes(attributes)
        if status != "ok":
            self.span.set_status(StatusCode.ERROR, status)
        self.span.end(end_time=int(self.ended * 1e9))


MAX_PENDING_REPORTS = 4096  # batches.Queue's limit


def _report_each(records: list[RequestRecord]) -> None:
    """Each record's report; then the usage-log lines, one call per sink for all of them."""
    usage: dict[UsageSink, list[dict[str, object]]] = {}
    for record in records:
        try:
            line = record.report()
        except Exception:  # one broken record: the others are still reported
            log.exception("reporting a request failed", extra={"request_id": record.request_id})
            continue
        if record.sink is not None:
            usage.setdefault(record.sink, []).append(line)
    for sink, lines in usage.items():
        try:
            sink(lines)
        except Exception:  # a usage log gone: the metrics and log lines are still written
            log.exception(
                "writing %d requests to the usage log failed", len(lines),
                extra={"request_id": lines[0]["request_id"]},
            )  # fmt: skip


_reports: batches.Queue[RequestRecord] = batches.Queue(_report_each, MAX_PENDING_REPORTS)
batches.watch(_reports, feeds_others=True)


def enter(record: RequestRecord) -> Callable[[], None]:
    """Make `record` the current one: its id the logs' request id, its span the parent of the
    attempts' spans. Returns the function that undoes it."""
    id_token = request_id_var.set(record.request_id)
    recording = record.span.is_recording()  # else nothing is exported (tracing.py)
    otel_token = otel_context.attach(trace.set_span_in_context(record.span)) if recording else None

    def leave() -> None:
        if otel_token is not None:
            otel_context.detach(otel_token)
        request_id_var.reset(id_token)

    return leave


@contextmanager
def recording(record: RequestRecord) -> Iterator[RequestRecord]:
    leave = enter(record)
    try:
        yield record
    finally:
        leave()
