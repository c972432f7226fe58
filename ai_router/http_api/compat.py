"""What the OpenAI- and Anthropic-shaped endpoints share: route a body by its `model`, then per
target either relay it (same family: only the model name changes) or translate it (another
family), under the router's retry and fallback policy.

A `Family` holds what differs between the two: the request schema, the translations, and the
stream framing. The body is parsed into the schema only if some target needs a translation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import Response, g, jsonify
from pydantic import BaseModel

from ai_router import observe
from ai_router.access.gate import estimate_from_text
from ai_router.errors import RouterError
from ai_router.http_api import passthrough, sse, streaming
from ai_router.http_api.request_body import read_json_object, require_string, validate
from ai_router.http_api.state import router
from ai_router.policy.executor import Target
from ai_router.policy.stats import Lease
from ai_router.providers.base import RelayRequest, RelayResponse
from ai_router.router import ChatStream
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, Usage
from ai_router.watchdog import Watch

Body = TypeVar("Body", bound=BaseModel)


class StreamEncoder:
    """Encodes one translated stream: bytes before the first chunk, per chunk, after the last."""

    head: bytes = b""
    done: bytes = b""

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        raise NotImplementedError(f"{type(self).__name__} does not encode chunks")


@dataclass(frozen=True)
class Family(Generic[Body]):
    name: str
    schema: type[Body]
    to_chat_request: Callable[[Body, str, str, str], ChatRequest]
    render: Callable[[ChatResponse, str, str], dict[str, Any]]
    stream_encoder: Callable[[Body, str, str], StreamEncoder]
    error_event: Callable[[RouterError], bytes]


@dataclass(frozen=True)
class _Relayed:
    target: Target
    relay: RelayResponse
    lease: Lease
    watch: Watch


def handle(family: Family[Body]) -> Response:
    data = read_json_object()
    record = observe.current()
    if record is not None:
        record.model_asked = str(data.get("model", ""))
    serving = router()  # looked up once: each lookup goes through Flask's context proxies
    plan = serving.plan(require_string(data, "model"))
    request_id: str = g.request_id
    stream = data.get("stream") is True
    parsed: list[Body] = []  # the schema-validated body, made once and only if needed

    def translated(target: Target) -> ChatRequest:
        if not parsed:
            parsed.append(validate(family.schema, data))
        return family.to_chat_request(parsed[0], target.provider.name, target.model, request_id)

    def attempt(target: Target, timeout: float, lease: Lease) -> _Relayed | ChatStream | ChatResponse:
        if target.provider.family == family.name:
            body = {**data, "model": target.model}
            watch = serving.watchdog.watch()
            relay = target.provider.relay(RelayRequest(body, timeout, request_id), watch)
            lease.keep()
            return _Relayed(target, relay, lease, watch)
        if stream:
            return serving.stream_on(translated(target), target, timeout, lease)
        return serving.complete_on(translated(target), target, timeout, lease)

    # The reservation's estimate reads the raw messages: cautious, and no schema needed.
    input_tokens = estimate_from_text(json.dumps(data.get("messages", ""))) + estimate_from_text(
        json.dumps(data.get("system", ""))
    )
    max_output = _max_output(data)
    meter = serving.gate.admit(g.get("caller"), plan, input_tokens, max_output)
    try:
        outcome = serving.execute(plan, attempt, None)
    except BaseException:
        meter.settle("", "", None)
        raise

    def settle(provider: str, model: str, usage: Usage | None) -> None:
        cost = meter.settle(provider, model, usage)
        if record is not None:
            record.cost_usd = round(cost, 10)

    if isinstance(outcome, _Relayed):
        target = outcome.target

        def relay_done() -> None:
            outcome.lease.release()
            # The provider's own counts where the answer carried them; the output of a stream
            # that ended without them (abandoned, or OpenAI without include_usage) is what was
            # relayed.
            reported = record.usage if record is not None else None
            pieces = record.relayed_pieces if record is not None else 0
            usage = Usage(
                reported.input_tokens if reported else input_tokens,
                max(reported.output_tokens if reported else 0, pieces),
            )
            if record is not None:
                record.usage = usage
            settle(target.provider.name, target.model, usage)

        return passthrough.relay_response(
            outcome.relay,
            target.provider.name,
            stream,
            family.error_event,
            on_close=relay_done,
            on_hang_up=outcome.watch.cancel,
            record=record,
        )
    if isinstance(outcome, ChatResponse):
        settle(outcome.provider, outcome.model, outcome.usage)
        return jsonify(family.render(outcome, _label(outcome.provider, outcome.model), request_id))
    chat_stream = outcome
    chat_stream.on_close(
        lambda: settle(
            chat_stream.request.provider,
            chat_stream.request.model,
            chat_stream.usage or Usage(input_tokens, chat_stream.relayed_tokens),
        )
    )
    label = _label(outcome.request.provider, outcome.request.model)
    encoder = family.stream_encoder(parsed[0], label, request_id)
    events = streaming.events(
        streaming.first_chunk(outcome),
        outcome,
        encoder.encode,
        family.error_event,
        request_id,
        head=encoder.head,
        done=encoder.done,
        record=record,
    )
    return sse.event_stream(events, outcome.abort, outcome.close)


def _max_output(data: dict[str, Any]) -> int | None:
    for field in ("max_completion_tokens", "max_tokens"):
        value = data.get(field)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _label(provider: str, model: str) -> str:
    """How a response names its model: provider/model, which the client can send back."""
    return f"{provider}/{model}"
