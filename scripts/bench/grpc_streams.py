#!/usr/bin/env python3
"""`make bench-grpc-streams`: how many StreamingRouteRequest streams one `ai-router grpc` process
holds at once, and what each costs in memory.

    .venv/bin/python scripts/bench/grpc_streams.py [--streams 2000] [--limit L] [--out PATH]

It starts the bench's upstream (scripts/bench/upstream.py: a model named "slow..." sends its role
chunk and one token, then nothing until the client hangs up) and a real `ai-router grpc` process
in front of it, with the product's default pool and limit unless --limit sets both. After a short
warm-up it opens --streams streams in waves from this process (grpc.aio, one channel, so one
HTTP/2 connection, per CHANNEL_STREAMS streams; the load generator, not the product), waits
until each has its first message, and reads the server's VmRSS and thread count before and with
all of them open. Then it opens streams up to the limit, which must all be admitted, and
BEYOND more, which must all be refused at once with RESOURCE_EXHAUSTED; it ends every stream,
checks that the server serves again, and stops what it started. Loopback only; the server on
core 0, the upstream and this client on core 1 (`taskset`), as in run.py.

Targets (docs/PERFORMANCE.md): at least 2,000 streams held, at most 150 KiB RSS per stream, none
refused below the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

import grpc  # noqa: E402
import yaml  # noqa: E402

from ai_router._generated import ai_router_pb2 as pb  # noqa: E402
from ai_router._generated import ai_router_pb2_grpc as pb_grpc  # noqa: E402
from ai_router.config import ServerSettings  # noqa: E402
from run import CLK_TCK, LOAD_CORE, ROUTER_CORE, Fleet, free_port, proc_ticks, progress, rss_kib  # noqa: E402

CHANNEL_STREAMS = 250  # streams per client channel (one HTTP/2 connection each)
WAVE = 100  # streams opened together, each wave once the last has its first messages
FIRST_MESSAGE_TIMEOUT = 30.0
BEYOND = 10  # streams opened past the limit, each of which must be refused
TARGET_STREAMS = 2000
TARGET_KIB_PER_STREAM = 150
SLOW = pb.AIRequest(model="openai/slow-model", prompt="Say hello", max_tokens=16)
WARM = pb.AIRequest(model="openai/gpt-4o-mini", prompt="Say hello", max_tokens=16)


@dataclass
class Outcome:
    streams: int
    limit: int
    held: int = 0
    refused_below_limit: int = 0
    other_failures: list[str] = field(default_factory=list)
    seconds_to_open: float = 0.0
    rss_before_kib: int = 0
    rss_at_streams_kib: int = 0
    vm_size_at_streams_kib: int = 0  # address space, thread stacks included
    server_cpu_seconds_to_open: float = 0.0
    threads_before: int = 0
    threads_at_streams: int = 0
    thread_names_at_streams: dict[str, int] = field(default_factory=dict)
    held_at_limit: int = 0
    refused_beyond: int = 0
    beyond_codes: list[str] = field(default_factory=list)
    serves_after: bool = False

    @property
    def kib_per_stream(self) -> float:
        return (self.rss_at_streams_kib - self.rss_before_kib) / max(self.held, 1)


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(key)


class Streams:
    """Streams held open over a few channels; each counted as held, refused or failed."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.channels: list[grpc.aio.Channel] = []
        self.calls: list[Any] = []
        self.held = 0
        self.refused = 0
        self.failures: list[str] = []

    def _stub(self) -> pb_grpc.AIRouterStub:
        if not self.channels or len(self.calls) >= len(self.channels) * CHANNEL_STREAMS:
            # A channel of its own subchannel pool: a connection of its own, not a shared one.
            options = [("grpc.use_local_subchannel_pool", 1)]
            self.channels.append(grpc.aio.insecure_channel(self.address, options=options))
        return pb_grpc.AIRouterStub(self.channels[-1])

    async def _open_one(self) -> None:
        call = self._stub().StreamingRouteRequest(SLOW, timeout=600)
        self.calls.append(call)
        try:
            message = await asyncio.wait_for(call.read(), FIRST_MESSAGE_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                self.refused += 1
            else:
                self.failures.append(f"{error.code().name}: {error.details()}")
            return
        except asyncio.TimeoutError:
            self.failures.append(f"no first message within {FIRST_MESSAGE_TIMEOUT:g} s")
            return
        if message is grpc.aio.EOF:
            self.failures.append("ended before its first message")
            return
        self.held += 1

    async def open(self, count: int) -> None:
        for start in range(0, count, WAVE):
            await asyncio.gather(*(self._open_one() for _ in range(min(WAVE, count - start))))

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            await channel.close()


async def serves(address: str) -> bool:
    """Whether a stream is answered to its end."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        messages = [message async for message in stub.StreamingRouteRequest(WARM, timeout=10)]
    return bool(messages and messages[-1].finish_reason)


def thread_names(pid: int) -> dict[str, int]:
    """The process's threads by name, numbers left out ("grpc-rpc_12" counts as "grpc-rpc_")."""
    names: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            names[re.sub(r"\d+", "", (task / "comm").read_text().strip())] += 1
    return dict(names.most_common())


async def measure(address: str, pid: int, streams: int, limit: int) -> Outcome:
    outcome = Outcome(streams, limit)
    # Warm-up, a few streams at a time: the baseline is a process that has served streams.
    for _ in range(25):
        await asyncio.gather(*(serves(address) for _ in range(4)))
    outcome.rss_before_kib = rss_kib(pid)
    outcome.threads_before = proc_status(pid, "Threads")
    held = Streams(address)
    try:
        started, ticks = time.monotonic(), proc_ticks(pid)
        await held.open(streams)
        outcome.seconds_to_open = time.monotonic() - started
        outcome.server_cpu_seconds_to_open = (proc_ticks(pid) - ticks) / CLK_TCK
        outcome.held, outcome.refused_below_limit = held.held, held.refused
        outcome.other_failures = held.failures[:5]
        outcome.rss_at_streams_kib = rss_kib(pid)
        outcome.threads_at_streams = proc_status(pid, "Threads")
        outcome.vm_size_at_streams_kib = proc_status(pid, "VmSize")
        outcome.thread_names_at_streams = thread_names(pid)
        progress(f"{held.held} of {streams} held: {outcome.kib_per_stream:.1f} KiB each")
        if held.held == streams and not held.failures and streams <= limit:
            await held.open(limit - streams)
            outcome.held_at_limit = held.held
            if held.held == limit:
                beyond = Streams(address)
                await beyond.open(BEYOND)
                outcome.refused_beyond = beyond.refused
                outcome.beyond_codes = beyond.failures[:5]
                await beyond.close()
    finally:
        await held.close()
    outcome.serves_after = await serves(address)
    return outcome


def router_config(workdir: Path, grpc_port: int, limit: int | None) -> Path:
    provider = {"default_max_tokens": 16, "timeout": 600, "max_retries": 0}
    server: dict[str, Any] = {
        "host": "127.0.0.1",
        "http_port": free_port(),
        "grpc_port": grpc_port,
        "grpc_metrics_port": 0,
        "grpc_grace_seconds": 1,
        "grpc_drain_seconds": 0,
    }
    if limit is not None:
        server |= {"grpc_max_workers": limit, "grpc_max_concurrent_rpcs": limit}
    config = {
        "server": server,
        "providers": {
            "openai": {"default_model": "gpt-4o-mini", **provider},
            "anthropic": {"default_model": "claude-3-5-haiku-20241022", **provider},
        },
    }
    path = workdir / "router-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def report(outcome: Outcome) -> str:
    per = outcome.kib_per_stream
    lines = [
        f"== gRPC streams held by one `ai-router grpc` process (limit {outcome.limit}) ==",
        f"  held {outcome.held} of {outcome.streams} in {outcome.seconds_to_open:.1f} s "
        f"(server CPU {outcome.server_cpu_seconds_to_open * 1000 / max(outcome.held, 1):.2f} ms per stream opened); "
        f"refused below the limit: {outcome.refused_below_limit}; other failures: "
        f"{len(outcome.other_failures)} {outcome.other_failures[:1] or ''}",
        f"  RSS {outcome.rss_before_kib / 1024:.1f} MiB before, {outcome.rss_at_streams_kib / 1024:.1f} MiB "
        f"with {outcome.held} open: {per:.1f} KiB per stream; address space {outcome.vm_size_at_streams_kib / 1024**2:.1f} GiB",
        f"  threads {outcome.threads_before} before, {outcome.threads_at_streams} with {outcome.held} open "
        f"(by name: {outcome.thread_names_at_streams})",
        f"  at the limit: {outcome.held_at_limit} held; {BEYOND} more: {outcome.refused_beyond} refused "
        f"with RESOURCE_EXHAUSTED {outcome.beyond_codes or ''}; served again after: {outcome.serves_after}",
    ]
    met = (
        outcome.held >= TARGET_STREAMS and per <= TARGET_KIB_PER_STREAM
        and outcome.refused_below_limit == 0 and not outcome.other_failures
    )
    lines.append(
        f"  target (≥ {TARGET_STREAMS} held, ≤ {TARGET_KIB_PER_STREAM} KiB each, none refused below "
        f"the limit): {'met' if met else 'MISSED'}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=TARGET_STREAMS)
    parser.add_argument("--limit", type=int, help="grpc_max_workers and grpc_max_concurrent_rpcs (default: the product's)")
    parser.add_argument("--out", default=os.environ.get("BENCH_RESULTS", "/tmp/ai-router-bench-grpc-streams.json"))
    args = parser.parse_args()
    limit = args.limit or ServerSettings().grpc_concurrency_limit
    if args.streams > limit:
        parser.error(f"--streams {args.streams} is beyond the limit {limit}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    os.sched_setaffinity(0, {int(LOAD_CORE)})
    with tempfile.TemporaryDirectory(prefix="ai-router-bench-grpc-") as directory:
        workdir = Path(directory)
        fleet = Fleet(workdir)
        try:
            upstream_port, grpc_port = free_port(), free_port()
            python = sys.executable
            upstream = fleet.start("upstream", [python, str(HERE / "upstream.py"), "--port", str(upstream_port)], LOAD_CORE)
            env = {
                "CONFIG_PATH": str(router_config(workdir, grpc_port, args.limit)),
                "OPENAI_API_KEY": "sk-bench-openai",
                "ANTHROPIC_API_KEY": "sk-bench-anthropic",
                "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
                "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{upstream_port}",
            }
            unset = ("HOST", "HTTP_PORT", "GRPC_PORT", "GRPC_METRICS_PORT", "REPLICA_NAME", "LOG_LEVEL")
            server = fleet.start("router-grpc", [python, "-m", "ai_router.cli", "grpc"], ROUTER_CORE, env, unset=unset)
            fleet.wait_for_port(upstream, upstream_port)
            fleet.wait_for_port(server, grpc_port)
            outcome = asyncio.run(measure(f"127.0.0.1:{grpc_port}", server.popen.pid, args.streams, limit))
            fleet.check_alive()
        finally:
            fleet.stop_all()
    print(report(outcome))
    Path(args.out).write_text(json.dumps({**asdict(outcome), "kib_per_stream": outcome.kib_per_stream}, indent=2))
    print(f"  (JSON: {args.out})")
    ok = outcome.held == args.streams and outcome.refused_beyond == BEYOND and outcome.serves_after
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
