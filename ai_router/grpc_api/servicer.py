"""The AIRouter servicer: protobuf in, Router call, protobuf out, errors as status codes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import NoReturn

import grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.errors import RouterError, UpstreamRateLimited
from ai_router.grpc_api.convert import from_chunk, from_response, to_chat_request
from ai_router.grpc_api.errors import status_code_for
from ai_router.router import Router

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "x-request-id"


class AIRouterServicer(pb_grpc.AIRouterServicer):
    def __init__(self, router: Router) -> None:
        self._router = router

    def RouteRequest(self, request: pb.AIRequest, context: grpc.ServicerContext) -> pb.AIResponse:
        request_id = _request_id(request, context)
        try:
            chat_request = to_chat_request(request, _time_remaining(context), request_id)
            response = self._router.complete(chat_request)
        except RouterError as error:
            _abort(context, error, request_id)
        return from_response(response, request_id)

    def StreamingRouteRequest(
        self, request: pb.AIRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.AIResponse]:
        request_id = _request_id(request, context)
        try:
            chat_request = to_chat_request(request, _time_remaining(context), request_id)
            stream = self._router.stream(chat_request)
        except RouterError as error:
            _abort(context, error, request_id)
        try:
            for chunk in stream:
                yield from_chunk(chunk, stream.request)
        except RouterError as error:
            _abort(context, error, request_id)
        finally:
            # A cancelled RPC leaves the generator here: close the upstream response with it.
            stream.close()


def _request_id(request: pb.AIRequest, context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata():
        if key == REQUEST_ID_KEY and value:
            request_id = str(value)
            break
    else:
        request_id = request.request_id or uuid.uuid4().hex
    context.set_trailing_metadata(((REQUEST_ID_KEY, request_id),))
    return request_id


def _time_remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    # Without a client deadline grpc reports an effectively infinite remaining time.
    if remaining is None or remaining > 10**8:
        return None
    return float(remaining)


def _abort(context: grpc.ServicerContext, error: RouterError, request_id: str) -> NoReturn:
    metadata = [(REQUEST_ID_KEY, request_id)]
    if isinstance(error, UpstreamRateLimited) and error.retry_after is not None:
        metadata.append(("retry-after", f"{error.retry_after:g}"))
    context.set_trailing_metadata(tuple(metadata))
    code = status_code_for(error)
    log.info("request %s failed: %s %s", request_id, code.name, error.message)
    context.abort(code, error.message)
    raise AssertionError("grpc's context.abort always raises")
