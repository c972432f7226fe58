"""The life of one generation request in a worker: admitted under the concurrency limit, observed
from its first byte in to its last byte out (streams included), then reported once."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, Response, g, request

from ai_router import observe
from ai_router.access.keys import presented_key
from ai_router.access.pricing import format_usd
from ai_router.errors import Overloaded
from ai_router.http_api.limits import ConcurrencyLimit
from ai_router.http_api.sse import StreamBody
from ai_router.http_api.state import request_globals, router

# Flask endpoint -> the surface label of metrics and logs.
SURFACES = {
    "native.generate": "generate",
    "native.stream": "stream",
    "openai_api.chat_completions": "openai",
    "anthropic_api.messages": "anthropic",
}


# Not generation, but behind a key all the same (the model list tells what the key may reach).
KEYED_ENDPOINTS = frozenset({"openai_api.list_models", "openai_api.get_model"})
COST_HEADER = "X-AI-Router-Cost-USD"


def _presented() -> str | None:
    return presented_key(request.headers.get("Authorization"), request.headers.get("x-api-key"))


def install(app: Flask, limit: ConcurrencyLimit) -> None:
    def admit() -> None:
        endpoint = request.endpoint or ""
        surface = SURFACES.get(endpoint)
        if surface is None:
            if endpoint in KEYED_ENDPOINTS:
                router().gate.keyring.authenticate(_presented())
            return
        serving, state = router(), request_globals()
        metrics, gate = serving.metrics, serving.gate
        record = observe.RequestRecord(surface, state.request_id, "", metrics, sink=gate.record_usage)
        state.record = record
        state.leave_record = observe.enter(record)
        # Only a keyed router reads the key headers (werkzeug looks each one up afresh).
        state.caller = gate.keyring.authenticate(_presented()) if gate.keyring.enabled else None
        try:
            release_slot = limit.acquire()
        except Overloaded:
            metrics.refused.labels(surface).inc()
            raise
        in_flight = metrics.child(metrics.in_flight, surface)
        in_flight.inc()

        def release() -> None:
            release_slot()
            in_flight.dec()

        state.release = _once(release)

    def finish_when_sent(response: Response) -> Response:
        # A stream is done when the server is done with its body; any other response is
        # complete in memory by now.
        state = request_globals()
        record: observe.RequestRecord | None = state.get("record")
        release: Callable[[], None] | None = state.pop("release", None)
        if record is None:
            return response
        status = "ok" if response.status_code < 400 else state.get("error_type", str(response.status_code))

        def done() -> None:
            if release is not None:
                release()
            record.finish(status)

        if isinstance(response.response, StreamBody):
            record.streamed = True
            response.response.on_close(done)
        else:
            if record.cost_usd is not None:
                response.headers[COST_HEADER] = format_usd(record.cost_usd)
            if release is not None:
                release()
            # Reported once the answer is written: the log line and metrics then cost the
            # client no latency, and the latency they report includes the write.
            response.call_on_close(lambda: record.finish(status))
        return response

    def leave(error: BaseException | None) -> None:
        leave_record = g.pop("leave_record", None)
        if leave_record is not None:
            leave_record()

    app.before_request(admit)
    app.after_request(finish_when_sent)
    app.teardown_request(leave)


def _once(function: Callable[[], None]) -> Callable[[], None]:
    called = False

    def call() -> None:
        nonlocal called
        if not called:
            called = True
            function()

    return call
