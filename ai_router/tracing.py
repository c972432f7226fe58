"""OpenTelemetry spans: one per request, one per upstream attempt inside it.

Exported over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK reads the standard
OTEL_* variables itself). When it is not set, the SDK is never loaded and the API's tracer is a
no-op: a span costs a function call.
"""

from __future__ import annotations

import os

from opentelemetry import trace

TRACER_NAME = "ai_router"


def configure_tracing(service: str) -> None:
    """Call once per process, after any fork (gunicorn workers call it when they load the app):
    the exporter's background thread does not survive a fork."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME", f"ai-router-{service}")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def shutdown() -> None:
    """Flush spans still queued (on a graceful stop)."""
    provider = trace.get_tracer_provider()
    shutdown_provider = getattr(provider, "shutdown", None)
    if shutdown_provider is not None:
        shutdown_provider()
