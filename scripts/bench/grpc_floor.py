"""The floor for the gRPC surface: the least a Python gRPC front door can do.

    python scripts/bench/grpc_floor.py --port 50099 --upstream http://127.0.0.1:8091/v1 --workers 64

nginx cannot turn a gRPC call into an OpenAI HTTP request, so the benchmark's gRPC "floor" is this:
the same grpcio server the router uses (`grpc.server` with a ThreadPoolExecutor of the same size),
serving the same `AIRouter` service, where each call does only what it must: one HTTP request to
the upstream over a kept-alive `http.client` connection (one per thread), `json.loads`, and the
AIResponse. No validation, routing, SDK, logging or metrics. The router's distance from it is what
its own work costs; the floor's distance from a direct call is what gRPC itself costs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import grpc  # noqa: E402

from ai_router._generated import ai_router_pb2 as pb  # noqa: E402
from ai_router._generated import ai_router_pb2_grpc as pb_grpc  # noqa: E402

DEFAULT_MODEL = "gpt-4o-mini"
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class FloorServicer(pb_grpc.AIRouterServicer):
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path.rstrip("/") + "/chat/completions"
        self.local = threading.local()

    def _post(self, body: dict[str, object]) -> http.client.HTTPResponse:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.connection = connection
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Authorization": "Bearer floor"}
        try:
            connection.request("POST", self.path, data, headers)
            return connection.getresponse()
        except (OSError, http.client.HTTPException):
            connection.close()
            connection.request("POST", self.path, data, headers)
            return connection.getresponse()

    @staticmethod
    def _body(request: pb.AIRequest, stream: bool) -> dict[str, object]:
        body: dict[str, object] = {
            "model": request.model.partition("/")[2] or request.model or DEFAULT_MODEL,
            "messages": [{"role": "user", "content": request.prompt}],
            "max_completion_tokens": request.max_tokens or 16,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def RouteRequest(self, request: pb.AIRequest, context: grpc.ServicerContext) -> pb.AIResponse:
        response = self._post(self._body(request, stream=False))
        answer = json.loads(response.read())
        choice = answer["choices"][0]
        usage = answer.get("usage") or {}
        return pb.AIResponse(
            content=choice["message"]["content"] or "",
            provider="openai",
            model=answer["model"],
            finish_reason=choice["finish_reason"] or "stop",
            usage=pb.Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
        )

    def StreamingRouteRequest(
        self, request: pb.AIRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.AIResponse]:
        response = self._post(self._body(request, stream=True))
        finish_reason = "stop"
        usage: dict[str, int] = {}
        model = ""
        pending = b""
        while True:
            data = response.read1(65536)  # http.client undoes the chunked framing
            if not data:
                break
            pending += data
            *events, pending = pending.split(b"\n\n")
            for event in events:
                if not event.startswith(b"data: ") or event == b"data: [DONE]":
                    continue
                chunk = json.loads(event[6:])
                model = chunk.get("model", model)
                if chunk.get("usage"):
                    usage = chunk["usage"]
                for choice in chunk.get("choices", ()):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        yield pb.AIResponse(content=text, provider="openai", model=model)
                    if choice.get("finish_reason"):
                        finish_reason = choice["finish_reason"]
        yield pb.AIResponse(
            provider="openai",
            model=model,
            finish_reason=finish_reason,
            usage=pb.Usage(
                input_tokens=usage.get("prompt_tokens", 0),
                output_tokens=usage.get("completion_tokens", 0),
                total_tokens=usage.get("total_tokens", 0),
            ),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8091/v1")
    parser.add_argument("--workers", type=int, default=64)
    args = parser.parse_args()
    # Blocked in every thread (they inherit it) and taken by the main one: a stop signal handed to
    # another thread would not wake a main thread asleep on an Event (python/cpython#85300).
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    server = grpc.server(
        ThreadPoolExecutor(max_workers=args.workers), maximum_concurrent_rpcs=args.workers
    )
    pb_grpc.add_AIRouterServicer_to_server(FloorServicer(args.upstream), server)
    server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    print(f"grpc floor listening on {args.host}:{args.port}", flush=True)
    signal.sigwait(STOP_SIGNALS)
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
