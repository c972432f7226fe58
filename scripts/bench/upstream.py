"""A static OpenAI-format upstream for the benchmark: it answers at once.

    python scripts/bench/upstream.py --port 8091

`POST .../chat/completions` answers a fixed `chat.completion` (or, with `"stream": true`, a
`text/event-stream` of chat.completion.chunk events, all written at once) with as many tokens as
the request's `max_completion_tokens` / `max_tokens` (default 16). Every token is the text "Tk ",
so a client finds the first token by looking for b"Tk". Answers are built once per shape and
cached, so the upstream costs a few tens of microseconds per request.

A model whose name starts with "slow" gets a stream that sends its role chunk and one token at
once, then stays open, sending nothing more, until the client hangs up: the slow upstream of the
capacity test.

One asyncio event loop, HTTP/1.1 keep-alive, bodies by Content-Length or chunked. Not a general
HTTP server: just enough for the openai SDK, nginx, wrk and the bench's own clients.

Why not `ai-router simulate`: measured on the project's 2-core machine, one core each for the
server and the load, the simulator answered a unary request in 129 µs at p50 (6,700/s) at
concurrency 1 and 8,700/s (p50 3.5 ms) at 32; this upstream answers in about 20-40 µs and serves
20,000-50,000/s, so the direct baseline is the upstream's network round trip and little else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import sys

TOKEN = "Tk "
DEFAULT_TOKENS = 16
MAX_TOKENS = 4096
CREATED = 1700000000


def _http(status: str, content_type: str, body: bytes | None, chunked: bool = False) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nx-request-id: req_bench\r\n"
    if chunked:
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
    assert body is not None
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def completion(model: str, tokens: int) -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": TOKEN * tokens},
                "finish_reason": "length" if tokens else "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens},
    }
    return _http("200 OK", "application/json", json.dumps(body, separators=(",", ":")).encode())


def _chunk_event(model: str, delta: dict[str, object], finish: str | None = None) -> bytes:
    return _event(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
    )


def stream_head(model: str) -> bytes:
    """Headers, the role chunk and the first token: all a slow stream ever sends."""
    return (
        _http("200 OK", "text/event-stream", None, chunked=True)
        + _chunk(_chunk_event(model, {"role": "assistant", "content": ""}))
        + _chunk(_chunk_event(model, {"content": TOKEN}))
    )


def stream(model: str, tokens: int, include_usage: bool) -> bytes:
    parts = [_http("200 OK", "text/event-stream", None, chunked=True)]
    parts.append(_chunk(_chunk_event(model, {"role": "assistant", "content": ""})))
    for _ in range(tokens):
        parts.append(_chunk(_chunk_event(model, {"content": TOKEN})))
    parts.append(_chunk(_chunk_event(model, {}, "length" if tokens else "stop")))
    if include_usage:
        usage = {"prompt_tokens": 8, "completion_tokens": tokens, "total_tokens": 8 + tokens}
        parts.append(
            _chunk(
                _event(
                    {
                        "id": "chatcmpl-bench",
                        "object": "chat.completion.chunk",
                        "created": CREATED,
                        "model": model,
                        "choices": [],
                        "usage": usage,
                    }
                )
            )
        )
    parts.append(_chunk(b"data: [DONE]\n\n"))
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


def _error(status: str, message: str) -> bytes:
    body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return _http(status, "application/json", json.dumps(body).encode())


_cache: dict[tuple[str, int, bool, bool], bytes] = {}


def answer(body: bytes) -> tuple[bytes, bool]:
    """The bytes to send and whether to hold the connection open afterwards (a slow stream)."""
    try:
        request = json.loads(body)
        model = str(request["model"])
        tokens = request.get("max_completion_tokens") or request.get("max_tokens") or DEFAULT_TOKENS
        tokens = max(0, min(int(tokens), MAX_TOKENS))
        is_stream = bool(request.get("stream"))
        usage = bool(is_stream and (request.get("stream_options") or {}).get("include_usage"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return _error("400 Bad Request", "the body must be a chat completion request"), False
    if is_stream and model.startswith("slow"):
        return stream_head(model), True
    key = (model, tokens, is_stream, usage)
    cached = _cache.get(key)
    if cached is None:
        cached = stream(model, tokens, usage) if is_stream else completion(model, tokens)
        if len(_cache) < 1024:
            _cache[key] = cached
    return cached, False


_NOT_FOUND = _error("404 Not Found", "POST /v1/chat/completions only")
_HEALTH = _http("200 OK", "application/json", b'{"status":"ok"}')


class Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.held = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.held:
            return  # a slow stream: nothing more is read or answered
        self.buffer += data
        while self.transport is not None and not self.held:
            request = self._take_request()
            if request is None:
                return
            head, body = request
            self._respond(head, body)

    def _take_request(self) -> tuple[bytes, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(self.buffer[:end])
        lower = head.lower()
        start = end + 4
        position = lower.find(b"\r\ncontent-length:")
        if position >= 0:
            line_end = lower.find(b"\r\n", position + 2)
            length = int(lower[position + 17 : line_end if line_end >= 0 else None])
            if len(self.buffer) < start + length:
                return None
            body = bytes(self.buffer[start : start + length])
            del self.buffer[: start + length]
            return head, body
        if b"\r\ntransfer-encoding: chunked" in lower:
            return self._take_chunked(head, start)
        del self.buffer[:start]
        return head, b""

    def _take_chunked(self, head: bytes, start: int) -> tuple[bytes, bytes] | None:
        body = bytearray()
        position = start
        while True:
            line_end = self.buffer.find(b"\r\n", position)
            if line_end < 0:
                return None
            size = int(bytes(self.buffer[position:line_end]).split(b";")[0], 16)
            if size == 0:
                trailer_end = self.buffer.find(b"\r\n\r\n", line_end)
                if trailer_end < 0:
                    return None
                del self.buffer[: trailer_end + 4]
                return head, bytes(body)
            chunk_start = line_end + 2
            if len(self.buffer) < chunk_start + size + 2:
                return None
            body += self.buffer[chunk_start : chunk_start + size]
            position = chunk_start + size + 2

    def _respond(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        request_line = head.split(b"\r\n", 1)[0]
        method, _, rest = request_line.partition(b" ")
        path = rest.partition(b" ")[0]
        hold = False
        if method == b"POST" and path.endswith(b"/chat/completions"):
            data, hold = answer(body)
        elif method == b"GET" and path == b"/healthz":
            data = _HEALTH
        else:
            data = _NOT_FOUND
        if not hold and b"\r\nconnection: close" in head.lower():
            # One request per connection, as the client asked: say so, then close.
            self.transport.write(data.replace(b"\r\n", b"\r\nConnection: close\r\n", 1))
            self.transport.close()
            self.transport = None
            return
        self.transport.write(data)
        self.held = hold

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def main(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(Connection, host, port, backlog=4096, reuse_address=True)
    print(f"upstream listening on {host}:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.host, arguments.port))
    sys.exit(0)
