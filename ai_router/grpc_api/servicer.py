"""The AIRouter servicer: protobuf in, Router call, protobuf out, errors as status codes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import NoReturn

import grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router import observe
from ai_router.access.keys import presented_key
from ai_router.access.pricing import format_usd
from ai_router.access.settings import KeySettings
from ai_router.errors import RouterError
from ai_router.grpc_api.convert import from_chunk, from_response, to_chat_request
from ai_router.grpc_api.errors import status_code_for
from ai_router.logs import new_request_id
from ai_router.router import Router

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"
REPLICA_KEY = "x-ai-router-replica"
COST_KEY = "x-ai-router-cost-usd"

Metadata = tuple[tuple[str, str], ...]


class AIRouterServicer(pb_grpc.AIRouterServicer):
    """Every call names its replica and request id in metadata: trailing metadata always
    (errors included), and initial metadata with a stream's first message. Nothing is sent
    before there is something to send, so that a proxy seeing this replica die mid-call can
    still answer the client with a clean status instead of a reset stream."""

    def __init__(self, router: Router, replica_name: str) -> None:
        # Swapped whole by a reload; a call reads it once, so it finishes on the router it
        # started with.
        self.router = router
        self._replica = replica_name

    def RouteRequest(self, request: pb.AIRequest, context: grpc.ServicerContext) -> pb.AIResponse:
        metadata = self._metadata(request, context)
        request_id = metadata[0][1]
        with observe.recording(self._record(request, request_id)) as record:
            try:
                caller = self._caller(context)
                chat_request = to_chat_request(request, _time_remaining(context), request_id)
                response = self.router.complete(chat_request, caller)
            except RouterError as error:
                record.finish(status_code_for(error).name.lower())
                _abort(context, error, metadata)
            context.set_trailing_metadata(_with_cost(metadata, record))
            # Reported once the call is over: the log line and metrics then cost the client
            # no latency, and the latency they report includes sending the answer.
            if not context.add_callback(lambda: record.finish("ok")):
                record.finish("ok")
        return from_response(response, request_id)

    def StreamingRouteRequest(
        self, request: pb.AIRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.AIResponse]:
        metadata = self._metadata(request, context)
        request_id = metadata[0][1]
        with observe.recording(self._record(request, request_id)) as record:
            record.streamed = True
            try:
                caller = self._caller(context)
                chat_request = to_chat_request(request, _time_remaining(context), request_id)
                stream = self.router.stream(chat_request, caller)
            except RouterError as error:
                record.finish(status_code_for(error).name.lower())
                _abort(context, error, metadata)
            # When the call ends early (the client cancelled, or its deadline passed), cut the
            # upstream off at once: this thread may be blocked reading it.
            context.add_callback(stream.abort)
            status = "cancelled"  # unless the loop below ends one way or the other
            try:
                for index, chunk in enumerate(stream):
                    if index == 0:
                        context.send_initial_metadata(metadata)
                    yield from_chunk(chunk, stream.request)
                status = "ok"
            except RouterError as error:
                status = status_code_for(error).name.lower()
                _abort(context, error, metadata)
            finally:
                # A cancelled RPC leaves the generator here: close the upstream response.
                stream.close()
                if status == "ok":
                    context.set_trailing_metadata(_with_cost(metadata, record))
                record.finish(status)

    def _record(self, request: pb.AIRequest, request_id: str) -> observe.RequestRecord:
        asked = observe.asked_name(request.provider, request.model)
        return observe.RequestRecord(
            "grpc", request_id, asked, self.router.metrics, sink=self.router.gate.record_usage
        )

    def _caller(self, context: grpc.ServicerContext) -> KeySettings | None:
        """The router key from `authorization: Bearer <key>` (or `x-api-key`) metadata."""
        metadata = {key: str(value) for key, value in context.invocation_metadata()}
        presented = presented_key(metadata.get("authorization"), metadata.get("x-api-key"))
        return self.router.gate.keyring.authenticate(presented)

    def _metadata(self, request: pb.AIRequest, context: grpc.ServicerContext) -> Metadata:
        """(request id, replica) metadata, also set as the call's trailing metadata."""
        metadata = ((REQUEST_ID_KEY, _request_id(request, context)), (REPLICA_KEY, self._replica))
        context.set_trailing_metadata(metadata)
        return metadata


def _with_cost(metadata: Metadata, record: observe.RequestRecord) -> Metadata:
    if record.cost_usd is None:
        return metadata
    return (*metadata, (COST_KEY, format_usd(record.cost_usd)))


def _request_id(request: pb.AIRequest, context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID_KEY and value:
            return str(value)
    return request.request_id or new_request_id()


def _time_remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    # Without a client deadline grpc reports an effectively infinite remaining time.
    if remaining is None or remaining > 10**8:
        return None
    return float(remaining)


def _abort(context: grpc.ServicerContext, error: RouterError, metadata: Metadata) -> NoReturn:
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        metadata = (*metadata, ("retry-after", f"{retry_after:g}"))
    context.set_trailing_metadata(metadata)
    code = status_code_for(error)
    log.info("request %s failed: %s %s", metadata[0][1], code.name, error.message)
    context.abort(code, error.message)
    raise AssertionError("grpc's context.abort always raises")
