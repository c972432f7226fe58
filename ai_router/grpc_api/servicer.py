"""The AIRouter servicer: protobuf in, one core call, protobuf out.

Each call runs in the request scope the interceptor opened (interceptor.py), which also turns
errors into status codes and names the call in metadata.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.grpc_api.convert import from_chunk, from_response, to_chat_request
from ai_router.scope import current_scope


class AIRouterServicer(pb_grpc.AIRouterServicer):
    def RouteRequest(self, request: pb.AIRequest, context: grpc.ServicerContext) -> pb.AIResponse:
        scope = current_scope()
        response = scope.complete(to_chat_request(request, _time_remaining(context), scope.request_id))
        return from_response(response, scope.request_id)

    def StreamingRouteRequest(
        self, request: pb.AIRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.AIResponse]:
        scope = current_scope()
        stream = scope.stream(to_chat_request(request, _time_remaining(context), scope.request_id))
        # When the call ends early (the client cancelled, or its deadline passed), cut the
        # upstream off at once: this thread may be blocked reading it.
        context.add_callback(stream.abort)
        try:
            for chunk in stream:
                if chunk.reasoning and not (chunk.delta or chunk.tool_call or chunk.is_final):
                    continue  # AIResponse has no field for reasoning
                yield from_chunk(chunk, stream.request)
        finally:
            stream.close()


def _time_remaining(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    # Without a client deadline grpc reports an effectively infinite remaining time.
    if remaining is None or remaining > 10**8:
        return None
    return float(remaining)
