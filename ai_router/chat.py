"""`ai-router chat "question"`: ask a running router from a terminal, over gRPC or HTTP.

The answer goes to stdout as it arrives; a summary (model, finish reason, tokens, and the cost
when the server reports one) to stderr, so `ai-router chat ... > answer.txt` keeps only the
answer. A failure prints the server's message on stderr and exits 1.

gRPC goes through `ai_router.client`. HTTP posts to /stream (or /generate with --no-stream) and
reads the server-sent events itself: `data: {"content": ...}` per delta, a closing event with the
finish reason and usage, `data: [DONE]`; or `data: {"error": {...}}` when it fails midway.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TextIO

import httpx2

from ai_router.client import Client, ClientError, Delta, RateLimited, Usage

# Bounds the whole answer over gRPC; over HTTP, each wait for the next piece of it.
DEFAULT_TIMEOUT = 300.0
CONNECT_TIMEOUT = 5.0
DEFAULT_PROVIDER = "openai"
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130  # the shell's code for Ctrl-C

# The answer as it arrives; raises ChatFailed with the server's message.
Answer = Generator[Delta, None, None]


@dataclass(frozen=True)
class Question:
    prompt: str
    model: str = ""
    provider: str = ""
    system: str = ""
    max_tokens: int = 0

    def body(self) -> dict[str, Any]:
        """The JSON body of /generate and /stream: only what was given."""
        body: dict[str, Any] = {"prompt": self.prompt}
        for key in ("model", "provider", "system", "max_tokens"):
            value = getattr(self, key)
            if value:
                body[key] = value
        return body


class ChatFailed(Exception):
    """The router refused or failed the request, or could not be reached."""

    def __init__(self, message: str, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.request_id = request_id


def run(args: argparse.Namespace) -> int:
    question = Question(
        args.prompt,
        model=args.model or "",
        # Without either, the router could not tell where to send the question.
        provider=args.provider or ("" if args.model else DEFAULT_PROVIDER),
        system=args.system or "",
        max_tokens=args.max_tokens or 0,
    )
    stream, timeout = not args.no_stream, args.timeout or DEFAULT_TIMEOUT
    if args.transport == "http":
        url = (args.url or default_http_url()).rstrip("/")
        deltas = http_answer(url, question, stream, timeout)
    else:
        deltas = grpc_answer(args.url or default_grpc_target(), question, stream, timeout)
    return show(deltas, sys.stdout, sys.stderr)


def default_grpc_target() -> str:
    return f"127.0.0.1:{os.environ.get('GRPC_PORT') or 50051}"


def default_http_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('HTTP_PORT') or 8080}"


def show(deltas: Answer, out: TextIO, err: TextIO) -> int:
    """Print each delta as it arrives, then the summary; the exit status."""
    last: Delta | None = None
    try:
        for delta in deltas:
            if delta.content:
                out.write(delta.content)
                out.flush()
            last = delta
    except ChatFailed as failure:
        _end_line(out, last)
        request = f" (request id {failure.request_id})" if failure.request_id else ""
        print(f"ai-router chat: {failure.message}{request}", file=err)
        return EXIT_FAILED
    except KeyboardInterrupt:
        _end_line(out, last)
        return EXIT_INTERRUPTED
    finally:
        # At once, not when collected: stops the server generating for nobody after Ctrl-C.
        deltas.close()
    _end_line(out, last)
    if last is not None:
        print(summary(last), file=err)
    return 0


def _end_line(out: TextIO, last: Delta | None) -> None:
    if last is not None:
        out.write("\n")
        out.flush()


def summary(last: Delta) -> str:
    """`openai/gpt-4o-mini: stop; tokens: 9 in, 12 out, 21 total[; cost: $0.000123]`"""
    parts = [last.finish_reason or "finished"]
    if last.usage is not None:
        usage = last.usage
        parts.append(
            f"tokens: {usage.input_tokens} in, {usage.output_tokens} out, "
            f"{usage.total_tokens} total"
        )
        if usage.cost is not None:
            parts.append(f"cost: ${usage.cost:.6f}")
    model = "/".join(part for part in (last.provider, last.model) if part)
    return f"{model}: {'; '.join(parts)}" if model else "; ".join(parts)


# gRPC


def grpc_answer(target: str, question: Question, stream: bool, timeout: float) -> Answer:
    options: dict[str, Any] = {
        "model": question.model,
        "provider": question.provider,
        "system": question.system,
        "max_tokens": question.max_tokens,
    }
    with Client(target, timeout=timeout) as client:
        try:
            if stream:
                yield from client.stream(question.prompt, **options)
            else:
                answer = client.complete(question.prompt, **options)
                yield Delta(
                    answer.content,
                    answer.finish_reason,
                    answer.usage,
                    answer.tool_calls,
                    answer.provider,
                    answer.model,
                    answer.request_id,
                )
        except ClientError as error:
            message = f"{error.code.name}: {error.message}"
            if isinstance(error, RateLimited) and error.retry_after is not None:
                message += _retry_after(error.retry_after)
            raise ChatFailed(message, error.request_id) from error


def _retry_after(seconds: float) -> str:
    return f"; retry after {seconds:g} s"


# HTTP


def http_answer(url: str, question: Question, stream: bool, timeout: float) -> Answer:
    path = "/stream" if stream else "/generate"
    try:
        with httpx2.Client(timeout=httpx2.Timeout(timeout, connect=CONNECT_TIMEOUT)) as http:
            with http.stream("POST", url + path, json=question.body()) as response:
                request_id = response.headers.get("x-request-id", "")
                if response.is_error:
                    response.read()
                    message = _http_error_message(response)
                    retry_after = response.headers.get("retry-after", "")
                    if retry_after.isdigit():
                        message += _retry_after(float(retry_after))
                    raise ChatFailed(message, request_id)
                if stream:
                    yield from _stream_events(response.iter_lines(), request_id)
                else:
                    yield _generated(_json(response.read().decode()), request_id)
    except httpx2.HTTPError as exc:
        raise ChatFailed(f"{url}{path}: {type(exc).__name__}: {exc}") from exc


def _stream_events(lines: Iterator[str], request_id: str) -> Iterator[Delta]:
    for data in sse_data(lines):
        if data == "[DONE]":
            return
        event = _json(data)
        if "error" in event:
            raise ChatFailed(_error_message(event, "the stream failed"), request_id)
        yield Delta(
            event.get("content") or "",
            finish_reason=event.get("finish_reason") or "",
            usage=_usage(event.get("usage")),
            request_id=request_id,
        )
    raise ChatFailed("the stream ended before the answer was complete", request_id)


def sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The data of each server-sent event: its `data:` lines joined, comments and other fields
    skipped (the event-stream format of the HTML standard, as much as the router uses)."""
    pending: list[str] = []
    for line in lines:
        if not line:
            if pending:
                yield "\n".join(pending)
            pending = []
        elif line.startswith("data:"):
            pending.append(line[5:].removeprefix(" "))
    if pending:
        yield "\n".join(pending)


def _json(text: str) -> Mapping[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, Mapping):
        raise ChatFailed(f"not an answer the router sends: {text[:200]!r}")
    return value


def _generated(body: Mapping[str, Any], request_id: str) -> Delta:
    return Delta(
        body.get("content") or "",
        finish_reason=body.get("finish_reason") or "",
        usage=_usage(body.get("usage")),
        provider=body.get("provider") or "",
        model=body.get("model") or "",
        request_id=request_id,
    )


def _usage(usage: Any) -> Usage | None:
    if not isinstance(usage, Mapping):
        return None
    cost = usage.get("cost")
    return Usage(
        int(usage.get("input_tokens") or 0),
        int(usage.get("output_tokens") or 0),
        int(usage.get("total_tokens") or 0),
        float(cost) if isinstance(cost, (int, float)) else None,
    )


def _http_error_message(response: httpx2.Response) -> str:
    status = f"{response.status_code} {response.reason_phrase}".strip()
    try:
        body = response.json()
    except ValueError:
        return f"{status}: {response.text.strip()[:500]}"
    return f"{status}: {_error_message(body, response.text.strip()[:500])}"


def _error_message(body: Any, fallback: str) -> str:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and error.get("message"):
        kind = f"{error['type']}: " if error.get("type") else ""
        return f"{kind}{error['message']}"
    return fallback
