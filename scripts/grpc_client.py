"""Call ai-router over gRPC from a terminal.

    .venv/bin/python scripts/grpc_client.py --provider anthropic "Say hello"
    .venv/bin/python scripts/grpc_client.py --stream --model openai/gpt-4o-mini "Count to five"
"""

from __future__ import annotations

import argparse
import os
import sys

import grpc

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("prompt")
    parser.add_argument("--target", default=f"127.0.0.1:{os.environ.get('GRPC_PORT', '50051')}")
    parser.add_argument("--provider", default="")
    parser.add_argument("--model", default="")
    parser.add_argument("--max-tokens", type=int, default=0)
    parser.add_argument("--stream", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds")
    args = parser.parse_args()
    if not args.provider and not args.model:
        args.provider = "openai"
    request = pb.AIRequest(
        provider=args.provider, model=args.model, prompt=args.prompt, max_tokens=args.max_tokens
    )
    with grpc.insecure_channel(args.target) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        try:
            if args.stream:
                for message in stub.StreamingRouteRequest(request, timeout=args.timeout):
                    print(message.content, end="", flush=True)
                    if message.finish_reason:
                        _print_summary(message)
            else:
                response = stub.RouteRequest(request, timeout=args.timeout)
                print(response.content)
                _print_summary(response)
        except grpc.RpcError as error:
            print(f"\nerror: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


def _print_summary(message: pb.AIResponse) -> None:
    usage = message.usage
    print(
        f"\n[{message.provider}/{message.model} finish_reason={message.finish_reason} "
        f"tokens in={usage.input_tokens} out={usage.output_tokens}]",
        file=sys.stderr,
    )


if __name__ == "__main__":
    sys.exit(main())
