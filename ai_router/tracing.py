"""OpenTelemetry spans: one per request, one per upstream attempt inside it.

Exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK reads the standard
OTEL_* variables itself). When it is not set, the SDK is never loaded and no span is made: the
API's no-op tracer still costs time per span, on every request and attempt.
"""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Mapping
from typing import ContextManager

from opentelemetry import trace
from opentelemetry.util.types import AttributeValue

from ai_router import batches

TRACER_NAME = "ai_router"
_exporting = False


def configure_tracing(service: str) -> None:
    """Call once per process, after any fork (gunicorn workers call it when they load the app):
    the exporter's background thread does not survive a fork."""
    global _exporting
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", f"ai-router-{service}")
    # Shut down by `shutdown` at exit, not by the SDK's own exit hook: the spans of requests still
    # waiting to be reported (batches.py) must end first, or the closed processor drops them.
    provider = TracerProvider(resource=Resource.create({"service.name": name}), shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(shutdown)
    _exporting = True


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def start_span(name: str, attributes: Mapping[str, AttributeValue]) -> trace.Span:
    """A span to end later; the API's inert span when nothing is exported."""
    if not _exporting:
        return trace.INVALID_SPAN
    return tracer().start_span(name, attributes=attributes)


def current_span(name: str, attributes: Mapping[str, AttributeValue]) -> ContextManager[object]:
    """A span current while the block runs; nothing at all when nothing is exported."""
    if not _exporting:
        return contextlib.nullcontext()
    return tracer().start_as_current_span(name, attributes=attributes)


def shutdown() -> None:
    """End the spans of requests still waiting to be reported, then export every span still
    queued (on a graceful stop, and at exit; once)."""
    global _exporting
    batches.flush_all()
    if not _exporting:
        return
    _exporting = False
    provider = trace.get_tracer_provider()
    shutdown_provider = getattr(provider, "shutdown", None)
    if shutdown_provider is not None:
        shutdown_provider()
