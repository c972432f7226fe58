"""One record per request, filled in as the request goes, and reported once when it ends: one
JSON log line, the Prometheus metrics, and the trace span's attributes.

The front door opens the record (surface, request id, the model asked for); the policy adds each
attempt, retry and fallback; the stream or answer adds the time to first token and the tokens;
the front door closes it with the outcome. It travels in a context variable, per thread in the
gRPC server and per greenlet under gevent, so the core needs no extra parameters to report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode

from ai_router import tracing
from ai_router.logs import request_id_var
from ai_router.metrics import Metrics
from ai_router.types import Usage

log = logging.getLogger("ai_router.request")

_current: ContextVar[RequestRecord | None] = ContextVar("request_record", default=None)


@dataclass
class RequestRecord:
    surface: str  # grpc, generate, stream, openai, anthropic
    request_id: str
    model_asked: str
    metrics: Metrics
    started: float = field(default_factory=time.monotonic)
    alias: str = ""
    provider: str = ""
    model: str = ""
    attempts: list[str] = field(default_factory=list)
    time_to_first_token: float | None = None
    usage: Usage | None = None
    streamed: bool = False
    error: str | None = None  # the error type a stream ended with, after its first byte
    key: str = ""  # the router key's name (never the key)
    # Content and tool-call pieces a relayed stream passed on (about one token each): what the
    # output is billed at when the stream ends without the provider's own count.
    relayed_pieces: int = 0
    cost_usd: float | None = None
    sink: Callable[[RequestRecord], None] | None = None  # the usage log, when configured
    span: Span = field(init=False)
    status: str = field(default="", init=False)
    latency: float = field(default=0.0, init=False)
    _finished: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.span = tracing.start_span(
            "ai_router.request",
            attributes={"ai_router.surface": self.surface, "ai_router.request_id": self.request_id},
        )

    def attempt_failed(self, target: str, outcome: str) -> None:
        self.attempts.append(f"{target}: {outcome}")

    def answered_by(self, provider: str, model: str) -> None:
        self.provider, self.model = provider, model

    def first_token(self) -> None:
        if self.time_to_first_token is None:
            self.time_to_first_token = time.monotonic() - self.started

    def finish(self, status: str) -> None:
        """Report the request, once: `status` is "ok" or the error type the client got."""
        if self._finished:
            return
        self._finished = True
        status = self.error or status
        latency = time.monotonic() - self.started
        self._end_span(status)
        self.metrics.observe_request(self, status, latency)
        self.status, self.latency = status, latency
        log.info("request", extra=self.usage_record())
        if self.sink is not None:
            self.sink(self)

    def usage_record(self) -> dict[str, object]:
        """What the request's log line and usage-log line say (never content, never a key)."""
        return {
            "request_id": self.request_id,
            "key": self.key or None,
            "surface": self.surface,
            "model_asked": self.model_asked,
            "alias": self.alias or None,
            "provider": self.provider or None,
            "model": self.model or None,
            "status": self.status,
            "latency_ms": round(self.latency * 1000, 2),
            "ttft_ms": None
            if self.time_to_first_token is None
            else round(self.time_to_first_token * 1000, 2),
            "input_tokens": self.usage.input_tokens if self.usage else None,
            "output_tokens": self.usage.output_tokens if self.usage else None,
            "cost_usd": self.cost_usd,
            "attempts": self.attempts or None,
        }


    def _end_span(self, status: str) -> None:
        if not self.span.is_recording():
            return  # nothing is exported (tracing.py)
        attributes = {
            "ai_router.model_asked": self.model_asked,
            "ai_router.alias": self.alias,
            "ai_router.provider": self.provider,
            "ai_router.model": self.model,
            "ai_router.status": status,
        }
        if self.usage is not None:
            attributes["ai_router.input_tokens"] = str(self.usage.input_tokens)
            attributes["ai_router.output_tokens"] = str(self.usage.output_tokens)
        self.span.set_attributes(attributes)
        if status != "ok":
            self.span.set_status(StatusCode.ERROR, status)
        self.span.end()


def asked_name(provider: str, model: str) -> str:
    """The model as the client named it: `provider/model`, `model` alone (an alias), or just
    the provider when it left the model to the provider's default."""
    if provider and model:
        return f"{provider}/{model}"
    return model or provider


def current() -> RequestRecord | None:
    return _current.get()


def enter(record: RequestRecord) -> Callable[[], None]:
    """Make `record` the current one: its id the logs' request id, its span the parent of the
    attempts' spans. Returns the function that undoes it."""
    token = _current.set(record)
    id_token = request_id_var.set(record.request_id)
    recording = record.span.is_recording()  # else nothing is exported (tracing.py)
    otel_token = otel_context.attach(trace.set_span_in_context(record.span)) if recording else None

    def leave() -> None:
        if otel_token is not None:
            otel_context.detach(otel_token)
        request_id_var.reset(id_token)
        _current.reset(token)

    return leave


@contextmanager
def recording(record: RequestRecord) -> Iterator[RequestRecord]:
    leave = enter(record)
    try:
        yield record
    finally:
        leave()
