"""The benchmark's own clients, for what wrk cannot do: time to first token, holding thousands of
streams open, a gRPC load, and the in-process upstream call that is the gRPC "direct" baseline.

All asyncio, in the bench process (pinned to the load core). Times are `perf_counter_ns`; results
are microseconds. The HTTP client is a minimal HTTP/1.1 one on asyncio streams: just enough for
the upstream, nginx and gunicorn, so its own cost is small and the same for every target.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")  # the bench forks wrk; keep grpc out of it

import grpc  # noqa: E402

from ai_router._generated import ai_router_pb2 as pb  # noqa: E402
from ai_router._generated import ai_router_pb2_grpc as pb_grpc  # noqa: E402

P = ParamSpec("P")
T = TypeVar("T")

TOKEN_MARK = b"Tk"  # every token the bench upstream sends is "Tk "


class HttpError(Exception):
    pass


def collector_paused(load: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """`load` run with no cyclic garbage collection in this process: with the open loop's
    thousands of tasks alive, a full collection stalled the reading of answers mid-run, and the
    stall was counted as the server's latency (docs/PERFORMANCE.md, 2026-12-06). Reference
    counting still frees nearly everything; what cycles leave is collected afterwards."""

    @functools.wraps(load)
    async def paused(*args: P.args, **kwargs: P.kwargs) -> T:
        gc.collect()
        gc.disable()
        try:
            return await load(*args, **kwargs)
        finally:
            gc.enable()

    return paused


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank; 0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), int(-(-p * len(sorted_values) // 100))))
    return sorted_values[rank - 1]


def summarize(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "max": ordered[-1] if ordered else 0.0,
        "mean": sum(ordered) / len(ordered) if ordered else 0.0,
    }


@dataclass
class HttpResult:
    status: int
    ttft_us: float  # first body bytes holding a token; the whole answer for a non-stream
    total_us: float
    keep_alive: bool


class HttpConnection:
    """One kept-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port, limit=1 << 20)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def send(self, path: str, body: bytes, close: bool = False) -> None:
        if self.writer is None:
            await self.open()
        assert self.writer is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer bench\r\n"
            f"Content-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        )
        self.writer.write(head.encode() + body)

    async def read_head(self) -> tuple[int, dict[bytes, bytes]]:
        assert self.reader is not None
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower()] = value.strip().lower()
        return status, headers

    async def read_chunk(self) -> bytes | None:
        """The next piece of a chunked body; None at its end."""
        assert self.reader is not None
        size_line = await self.reader.readuntil(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            await self.reader.readuntil(b"\r\n")
            return None
        data = await self.reader.readexactly(size + 2)
        return data[:-2]

    async def request(self, path: str, body: bytes, close: bool = False) -> HttpResult:
        start = time.perf_counter_ns()
        await self.send(path, body, close)
        status, headers = await self.read_head()
        assert self.reader is not None
        ttft = 0.0
        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                chunk = await self.read_chunk()
                if chunk is None:
                    break
                if not ttft and TOKEN_MARK in chunk:
                    ttft = (time.perf_counter_ns() - start) / 1000
        else:
            length = int(headers.get(b"content-length", b"0"))
            await self.reader.readexactly(length)
        total = (time.perf_counter_ns() - start) / 1000
        keep_alive = headers.get(b"connection") != b"close" and not close
        if not keep_alive:
            self.close()
        return HttpResult(status, ttft or total, total, keep_alive)


@collector_paused
async def http_sequential(
    host: str, port: int, path: str, body: bytes, seconds: float, max_requests: int, close: bool
) -> dict[str, Any]:
    """One request at a time (concurrency 1) for `seconds` or `max_requests`: TTFT and total.
    A fresh connection is opened *before* the clock starts when `close` is set."""
    ttfts: list[float] = []
    totals: list[float] = []
    errors: Counter[str] = Counter()
    connection = HttpConnection(host, port)
    started = time.monotonic()
    deadline = started + seconds
    while time.monotonic() < deadline and len(totals) + sum(errors.values()) < max_requests:
        try:
            if connection.writer is None:
                await connection.open()
            result = await asyncio.wait_for(connection.request(path, body, close), 10)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            connection.close()
            continue
        if result.status != 200:
            errors[f"status {result.status}"] += 1
            continue
        ttfts.append(result.ttft_us)
        totals.append(result.total_us)
    connection.close()
    elapsed = time.monotonic() - started
    return {
        "requests": len(totals),
        "rate": len(totals) / elapsed if elapsed > 0 else 0.0,
        "latency_us": summarize(totals),
        "ttft_us": summarize(ttfts),
        "errors": dict(errors),
    }


async def keepalive_probe(host: str, port: int, path: str, body: bytes, count: int) -> str | None:
    """Send `count` stream requests one after another on one kept-alive connection; None if all
    succeed, else what went wrong on which request."""
    connection = HttpConnection(host, port)
    try:
        for index in range(1, count + 1):
            try:
                result = await asyncio.wait_for(connection.request(path, body), 3)
            except asyncio.TimeoutError:
                return f"request {index} on one kept-alive connection got no complete answer in 3 s"
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                return f"request {index} on one kept-alive connection failed: {type(exc).__name__} {exc}"
            if result.status != 200:
                return f"request {index} on one kept-alive connection answered HTTP {result.status}"
            if not result.keep_alive:
                return f"the server closed the connection after request {index}"
        return None
    finally:
        connection.close()


@collector_paused
async def http_load(
    host: str, port: int, path: str, body: bytes, concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` kept-alive connections, each sending the next request when the last is
    answered, for `seconds`: the in-process "direct" call for the gRPC tables."""
    totals: list[float] = []
    ttfts: list[float] = []
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        connection = HttpConnection(host, port)
        while time.monotonic() < deadline:
            try:
                result = await asyncio.wait_for(connection.request(path, body), 10)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                errors[type(exc).__name__] += 1
                connection.close()
                continue
            if result.status != 200:
                errors[f"status {result.status}"] += 1
                continue
            totals.append(result.total_us)
            ttfts.append(result.ttft_us)
        connection.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    return {
        "requests": len(totals),
        "rate": len(totals) / elapsed,
        "latency_us": summarize(totals),
        "ttft_us": summarize(ttfts),
        "errors": dict(errors),
    }


@collector_paused
async def http_open_loop(
    host: str, port: int, path: str, body: bytes, rate: float, seconds: float, max_connections: int = 1024
) -> dict[str, Any]:
    """Open loop at a fixed arrival rate: request i is due at start + i / rate and is sent then,
    whether or not earlier ones have been answered (on an idle kept-alive connection, else a new
    one, up to `max_connections`, beyond which it waits for one). Latency runs from the time it
    was due, not from when it went out, so every wait counts (in the server's queue, for a
    connection, or behind this loop being late): no coordinated omission, unlike a closed loop
    (wrk, http_load), which slows its sending when the server slows. `send_lag_us` is how late
    requests were started, before any wait for a connection: the generator's own error, in the direct
    run too."""
    loop = asyncio.get_running_loop()
    idle: asyncio.Queue[HttpConnection] = asyncio.Queue()
    opened = 0
    totals: list[float] = []
    lags: list[float] = []
    errors: Counter[str] = Counter()
    warm = min(max_connections, max(4, int(rate / 100)))  # opened before the clock starts
    for _ in range(warm):
        connection = HttpConnection(host, port)
        await connection.open()
        idle.put_nowait(connection)
        opened += 1

    async def one(due_ns: int) -> None:
        nonlocal opened
        lags.append((time.perf_counter_ns() - due_ns) / 1000)
        if idle.empty() and opened < max_connections:
            opened += 1
            connection = HttpConnection(host, port)
        else:
            connection = await idle.get()  # a wait the latency counts, the send lag does not
        try:
            async with asyncio.timeout(10):  # no task of its own, unlike wait_for: cheaper per request
                result = await connection.request(path, body)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            connection.close()
            idle.put_nowait(connection)  # reopened on its next use
            return
        end = time.perf_counter_ns()
        idle.put_nowait(connection)
        if result.status != 200:
            errors[f"status {result.status}"] += 1
            return
        totals.append((end - due_ns) / 1000)

    count = max(1, int(rate * seconds))
    interval_ns = 1e9 / rate
    tasks: list[asyncio.Task[None]] = []
    start_ns = time.perf_counter_ns()
    for index in range(count):
        due_ns = start_ns + int(index * interval_ns)
        delay = (due_ns - time.perf_counter_ns()) / 1e9
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(one(due_ns)))
    await asyncio.gather(*tasks)
    elapsed = (time.perf_counter_ns() - start_ns) / 1e9
    while not idle.empty():
        idle.get_nowait().close()
    ordered = sorted(totals)
    return {
        "requests": len(totals),
        "offered_rate": rate,
        "rate": len(totals) / elapsed,
        "latency_us": {**summarize(totals), "p999": percentile(ordered, 99.9)},
        "send_lag_us": summarize(lags),
        "connections": opened,
        "errors": dict(errors),
    }


@collector_paused
async def grpc_load(
    target: str, request: Any, stream: bool, concurrency: int, seconds: float
) -> dict[str, Any]:
    """`concurrency` calls in flight on one channel (one HTTP/2 connection), each issuing the
    next when the last is done, for `seconds`."""
    totals: list[float] = []
    ttfts: list[float] = []
    messages = 0
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.AIRouterStub(channel)

        async def worker() -> None:
            nonlocal messages
            while time.monotonic() < deadline:
                start = time.perf_counter_ns()
                first = 0
                try:
                    if stream:
                        async for message in stub.StreamingRouteRequest(request, timeout=10):
                            messages += 1
                            if not first and message.content:
                                first = time.perf_counter_ns()
                    else:
                        await stub.RouteRequest(request, timeout=10)
                except grpc.aio.AioRpcError as exc:
                    errors[exc.code().name] += 1
                    continue
                end = time.perf_counter_ns()
                totals.append((end - start) / 1000)
                ttfts.append(((first or end) - start) / 1000)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return {
        "requests": len(totals),
        "rate": len(totals) / elapsed,
        "latency_us": summarize(totals),
        "ttft_us": summarize(ttfts),
        "messages": messages,
        "errors": dict(errors),
    }


@dataclass
class CapacityResult:
    target: int
    opened: int = 0
    failure: str | None = None
    seconds: float = 0.0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    rss_streams: int = 0  # streams open when rss_after_kib was read
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rss_per_stream_kib(self) -> float:
        if not self.rss_streams:
            return 0.0
        return (self.rss_after_kib - self.rss_before_kib) / self.rss_streams


async def open_http_streams(
    host: str,
    port: int,
    path: str,
    body: bytes,
    target: int,
    wave: int,
    first_token_timeout: float,
    rss_kib: Callable[[], int],
) -> CapacityResult:
    """Open streams in waves of `wave`, each counted once its first token has arrived, until
    `target` are open or one fails; then read the RSS and close them all."""
    result = CapacityResult(target, rss_before_kib=rss_kib())
    connections: list[HttpConnection] = []
    started = time.monotonic()

    async def open_one(number: int) -> str | None:
        connection = HttpConnection(host, port)
        connections.append(connection)
        try:
            await asyncio.wait_for(_first_token(connection, path, body), first_token_timeout)
        except asyncio.TimeoutError:
            return f"stream {number}: no first token within {first_token_timeout:g} s"
        except HttpError as exc:
            return f"stream {number}: {exc}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            return f"stream {number}: {type(exc).__name__}: {exc}"
        return None

    try:
        await _waves(result, target, wave, open_one, rss_kib)
        result.seconds = time.monotonic() - started
    finally:
        for connection in connections:
            connection.close()
        await asyncio.sleep(0.2)
    return result


async def _waves(
    result: CapacityResult,
    target: int,
    wave: int,
    open_one: Callable[[int], Awaitable[str | None]],
    rss_kib: Callable[[], int],
) -> None:
    """Open streams `wave` at a time until `target` are open or one fails. The RSS is read after
    every wave that opened all of its streams, so that it belongs to a known number of streams
    (`rss_streams`), not to a failed wave's half-made ones."""
    while result.opened < target and result.failure is None:
        size = min(wave, target - result.opened)
        first = result.opened + 1
        outcomes = await asyncio.gather(*(open_one(first + i) for i in range(size)))
        failures = [outcome for outcome in outcomes if outcome is not None]
        result.opened += size - len(failures)
        if failures:
            result.failure = failures[0] + (
                f" (and {len(failures) - 1} more of that wave)" if len(failures) > 1 else ""
            )
            return
        await asyncio.sleep(0.05)  # the last stream's bookkeeping, after its first token
        result.rss_after_kib = rss_kib()
        result.rss_streams = result.opened


async def _first_token(connection: HttpConnection, path: str, body: bytes) -> None:
    await connection.open()
    await connection.send(path, body)
    status, headers = await connection.read_head()
    if status != 200:
        raise HttpError(f"HTTP {status}")
    if headers.get(b"transfer-encoding") != b"chunked":
        raise HttpError("the answer is not a stream")
    while True:
        chunk = await connection.read_chunk()
        if chunk is None:
            raise HttpError("the stream ended before it was counted")
        if TOKEN_MARK in chunk:
            return


async def open_grpc_streams(
    target: str,
    request: Any,
    count: int,
    wave: int,
    first_token_timeout: float,
    rss_kib: Callable[[], int],
) -> CapacityResult:
    """The gRPC counterpart of open_http_streams: streaming calls on one channel."""
    result = CapacityResult(count, rss_before_kib=rss_kib())
    calls: list[Any] = []
    started = time.monotonic()
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.AIRouterStub(channel)

        async def open_one(number: int) -> str | None:
            call = stub.StreamingRouteRequest(request, timeout=600)
            calls.append(call)
            try:
                message = await asyncio.wait_for(call.read(), first_token_timeout)
            except asyncio.TimeoutError:
                return f"stream {number}: no first message within {first_token_timeout:g} s"
            except grpc.aio.AioRpcError as exc:
                return f"stream {number}: {exc.code().name}: {exc.details()}"
            if message is grpc.aio.EOF:
                return f"stream {number}: ended before its first message"
            return None

        try:
            await _waves(result, count, wave, open_one, rss_kib)
            result.seconds = time.monotonic() - started
        finally:
            for call in calls:
                call.cancel()
            await asyncio.sleep(0.2)
    return result


def grpc_request(model: str, max_tokens: int, prompt: str = "Say hello") -> Any:
    return pb.AIRequest(model=model, prompt=prompt, max_tokens=max_tokens)
