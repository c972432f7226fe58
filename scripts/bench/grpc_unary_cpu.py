#!/usr/bin/env python3
"""The gRPC front door's unary call, the router's beside the bare grpcio relay's, one call at a
time: CPU per call from /proc and p50 latency, in about a minute; and the router again under
other settings or from another commit, to weigh a change in one run.

    .venv/bin/python scripts/bench/grpc_unary_cpu.py [--rounds 5] [--seconds 3]
        [--variant NAME:VAR=VALUE[,VAR=VALUE...]]... [--baseline COMMIT]

    e.g.  --variant quiet-log:LOG_LEVEL=warning   (the router with no per-request log line)
          --baseline HEAD~2                       (the router as it was two commits ago)

run.py sweeps concurrency with grpc.aio; this asks each server with grpc's sync stub at c=1,
the rounds interleaving the targets so that the machine's drift falls on all alike. Overhead is
the p50 latency less a direct call's to the upstream (http.client, the same core). Servers on
core 0, the upstream and this client on core 1, as in run.py.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parents[1]))

from run import (  # noqa: E402
    CLK_TCK, LOAD_CORE, PROMPT, ROUTER_CORE, ROUTER_UNSET, UNARY_TOKENS, free_port, proc_ticks, table,
)  # fmt: skip
from side_by_side import add_router_arguments, fleet_in, router_env, router_runs  # noqa: E402

from ai_router._generated import ai_router_pb2 as pb  # noqa: E402
from ai_router._generated import ai_router_pb2_grpc as pb_grpc  # noqa: E402

FLOOR = "bare grpcio relay"


def timed(call: Callable[[], object], seconds: float, pid: int | None) -> tuple[float, float]:
    """(CPU µs per call of process `pid`, p50 µs) over `seconds` of calls one at a time."""
    latencies: list[float] = []
    ticks = proc_ticks(pid) if pid else 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - start)
    cpu = (proc_ticks(pid) - ticks) / CLK_TCK / len(latencies) * 1e6 if pid else 0.0
    return cpu, statistics.median(latencies) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3, help="per target and round")
    add_router_arguments(parser)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ai-router-grpc-unary-"))
    python = sys.executable
    channels: list[grpc.Channel] = []
    with fleet_in(workdir, "grpc_unary_cpu") as fleet:
        upstream_port = free_port()
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        upstream = fleet.start("upstream", [python, str(HERE / "upstream.py"), "--port", str(upstream_port)], LOAD_CORE)
        fleet.wait_for_port(upstream, upstream_port)

        servers: dict[str, tuple[int, int]] = {}  # label: (port, PID)
        floor_port = free_port()
        floor = fleet.start(
            "grpc-floor",
            [python, str(HERE / "grpc_floor.py"), "--port", str(floor_port), "--upstream", f"{upstream_url}/v1", "--workers", "64"],
            ROUTER_CORE,
        )  # fmt: skip
        fleet.wait_for_port(floor, floor_port)
        servers[FLOOR] = (floor_port, floor.popen.pid)
        for run in router_runs(args, workdir):
            grpc_port = free_port()
            env = router_env(run, workdir, upstream_url, {"grpc_port": grpc_port, "grpc_max_workers": 64})
            env["GRPC_METRICS_PORT"] = str(free_port())
            router = fleet.start(run.name.replace(" ", "-"), [python, "-m", "ai_router.cli", "grpc"], ROUTER_CORE, env,
                                 unset=ROUTER_UNSET, cwd=run.checkout)  # fmt: skip
            fleet.wait_for_port(router, grpc_port)
            servers[run.name] = (grpc_port, router.popen.pid)

        os.sched_setaffinity(0, {int(LOAD_CORE)})
        request = pb.AIRequest(provider="openai", model="gpt-4o-mini", prompt=PROMPT, max_tokens=UNARY_TOKENS)
        calls: dict[str, tuple[Callable[[], object], int | None]] = {}
        for label, (port, server_pid) in servers.items():
            channels.append(grpc.insecure_channel(f"127.0.0.1:{port}"))
            calls[label] = (partial(pb_grpc.AIRouterStub(channels[-1]).RouteRequest, request, timeout=30), server_pid)
        direct = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
        body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}],
                           "max_completion_tokens": UNARY_TOKENS})  # fmt: skip

        def direct_call() -> bytes:
            direct.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            return direct.getresponse().read()

        calls["direct"] = (direct_call, None)
        for call, pid in calls.values():  # warm-up: imports, pools, the first connections
            timed(call, 1, pid)
        figures: dict[str, list[tuple[float, float]]] = {label: [] for label in calls}
        for _ in range(args.rounds):
            for label, (call, pid) in calls.items():
                fleet.check_alive()
                figures[label].append(timed(call, args.seconds, pid))
        direct.close()
        for channel in channels:
            channel.close()

    direct_p50 = [p50 for _, p50 in figures.pop("direct")]
    floor_over = [p50 - d for (_, p50), d in zip(figures[FLOOR], direct_p50)]
    rows = []
    for label, values in figures.items():
        over = [p50 - d for (_, p50), d in zip(values, direct_p50)]
        rows.append([
            label, ", ".join(f"{cpu:.0f}" for cpu, _ in values), f"{statistics.median(c for c, _ in values):.0f} µs",
            f"{statistics.median(over):.0f} µs", f"×{statistics.median(o / f for o, f in zip(over, floor_over)):.2f}",
        ])  # fmt: skip
    print(f"== gRPC unary RouteRequest, c=1 ({args.seconds:g} s per target, {args.rounds} interleaved rounds; "
          f"direct p50 {statistics.median(direct_p50):.0f} µs) ==")  # fmt: skip
    print(table(["", "CPU per call, each round", "CPU median", "overhead p50", "÷ the floor's, median"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
