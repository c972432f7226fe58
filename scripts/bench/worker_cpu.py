#!/usr/bin/env python3
"""`make bench-worker`: CPU and p50 overhead per request inside the gunicorn worker, the router's
beside the bare Flask relay's and the gateway floor's, in about a minute and a half; and the
router again under other settings, to weigh a change.

    .venv/bin/python scripts/bench/worker_cpu.py [--rounds 3] [--seconds 4] [--concurrency 8]
        [--variant NAME:VAR=VALUE[,VAR=VALUE...]]... [--baseline COMMIT]

    e.g.  --variant quiet-log:LOG_LEVEL=warning   (the router with no per-request log line)
          --baseline HEAD~2                       (the router as it was two commits ago)
          --concurrency 1                         (the p50s that bench-full's targets compare)

one_request.py calls the apps in process, one request after another; this asks the real servers
(one gevent worker each, the router's worker class for all) over loopback with wrk at a fixed
concurrency, and reads each worker's CPU time from /proc. The two disagree (docs/PERFORMANCE.md,
2026-12-05, afternoon).

The gateway floor (gateway_floor.py) is the relay plus the least bookkeeping any gateway does,
so what lies between it and the relay no router can save. A p50 overhead is over the upstream's
own p50 (wrk straight at it, each round). The rounds interleave the targets, so a machine's
drift falls on all of them alike; compare the ratios, not the figures across runs. Servers on
core 0, the upstream and wrk on core 1, as in run.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    CLK_TCK, FLASK_FLOOR, LOAD_CORE, NO_PROXY, PROMPT, ROUTER_CORE, ROUTER_UNSET, UNARY_TOKENS,
    children_of, free_port, proc_ticks, table,
)  # fmt: skip
from side_by_side import add_router_arguments, fleet_in, router_env, router_runs  # noqa: E402


GATEWAY_FLOOR = "gateway floor"
DIRECT = "upstream direct"


@dataclass(frozen=True)
class Target:
    label: str
    port: int
    worker: int  # the one gunicorn worker's PID
    path: str
    body: Path


@dataclass(frozen=True)
class Measured:
    cpu_us: float  # the worker's CPU time per request
    p50_us: float  # wrk's p50 latency


def wait_until_answered(target: Target) -> None:
    """Until the worker (booted after its master bound the port) answers the target's request."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{target.port}{target.path}", data=target.body.read_bytes(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        try:
            with NO_PROXY.open(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{target.label}: not answered within 40 s")


def worker_of(master: int) -> int:
    deadline = time.monotonic() + 40
    while not (workers := children_of(master)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"no gunicorn worker under {master} within 40 s")
        time.sleep(0.05)
    return workers[0]


def measure(target: Target, seconds: int, concurrency: int, workdir: Path) -> Measured:
    """wrk at `concurrency` for `seconds`: the worker's CPU time over the requests answered, and
    the p50 latency."""
    out = workdir / "wrk-out.json"
    out.unlink(missing_ok=True)
    env = {**os.environ, "WRK_BODY": str(target.body), "WRK_OUT": str(out), "WRK_CLOSE": "0", "WRK_HEADERS": ""}
    command = [
        "taskset", "-c", LOAD_CORE, "wrk", "-t", str(concurrency), "-c", str(concurrency),
        "-d", f"{seconds}s", "--timeout", "5s", "-s", str(HERE / "report.lua"),
        f"http://127.0.0.1:{target.port}{target.path}",
    ]  # fmt: skip
    before = proc_ticks(target.worker)
    completed = subprocess.run(command, env=env, capture_output=True, timeout=seconds + 30)
    ticks = proc_ticks(target.worker) - before
    if completed.returncode != 0 or not out.exists():
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.decode(errors='replace')}")
    data = json.loads(out.read_text())
    if not data["requests"] or any(data["errors"].values()):
        raise RuntimeError(f"{target.label}: errors {data['errors']}")
    requests: int = data["requests"]
    return Measured(ticks / CLK_TCK / requests * 1e6, float(data["latency_us"]["p50"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=4, help="per target and round")
    parser.add_argument("--concurrency", type=int, default=8)
    add_router_arguments(parser)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ai-router-worker-cpu-"))
    python = sys.executable
    with fleet_in(workdir, "worker_cpu") as fleet:
        upstream_port = free_port()
        upstream_url = f"http://127.0.0.1:{upstream_port}"
        upstream = fleet.start("upstream", [python, str(HERE / "upstream.py"), "--port", str(upstream_port)], LOAD_CORE)
        fleet.wait_for_port(upstream, upstream_port)
        chat = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}],
                "max_completion_tokens": UNARY_TOKENS}  # fmt: skip
        bodies = {
            "relay": {**chat, "model": "gpt-4o-mini"},
            "chat": chat,
            "generate": {"provider": "openai", "prompt": PROMPT, "max_tokens": UNARY_TOKENS},
        }
        body_files = {}
        for name, body in bodies.items():
            body_files[name] = workdir / f"{name}.json"
            body_files[name].write_text(json.dumps(body))

        # The upstream's CPU is not the point of this target: its latency is what the others' is
        # an overhead over.
        direct = Target(DIRECT, upstream_port, upstream.popen.pid, "/v1/chat/completions", body_files["relay"])
        targets: list[Target] = [direct]
        (workdir / "floor.conf.py").write_text("")  # not the router's gunicorn.conf.py
        for label, module in ((FLASK_FLOOR, "flask_floor"), (GATEWAY_FLOOR, "gateway_floor")):
            floor_port = free_port()
            floor = fleet.start(
                module.replace("_", "-"),
                [python, "-m", "gunicorn", "-c", str(workdir / "floor.conf.py"), "-k",
                 "ai_router.http_api.server.worker.Worker", "-w", "1", "--chdir", str(HERE),
                 "-b", f"127.0.0.1:{floor_port}", f"{module}:app"],
                ROUTER_CORE, {"UPSTREAM_URL": upstream_url},
            )  # fmt: skip
            fleet.wait_for_port(floor, floor_port)
            worker = worker_of(floor.popen.pid)
            if label == FLASK_FLOOR:
                targets.append(Target(label, floor_port, worker, "/v1/chat/completions", body_files["relay"]))
            else:
                targets.append(Target(f"{label} /v1/chat/completions", floor_port, worker, "/v1/chat/completions", body_files["chat"]))
                targets.append(Target(f"{label} /generate", floor_port, worker, "/generate", body_files["generate"]))

        for run in router_runs(args, workdir):
            http_port = free_port()
            env = router_env(run, workdir, upstream_url, {"http_port": http_port})
            router = fleet.start(run.name.replace(" ", "-"), [python, "-m", "ai_router.cli", "http"], ROUTER_CORE, env,
                                 unset=ROUTER_UNSET, cwd=run.checkout)  # fmt: skip
            fleet.wait_for_port(router, http_port)
            worker = worker_of(router.popen.pid)
            targets.append(Target(f"{run.name} /v1/chat/completions", http_port, worker, "/v1/chat/completions", body_files["chat"]))
            if run.name == "router":
                targets.append(Target("router /generate", http_port, worker, "/generate", body_files["generate"]))

        for target in targets:  # warm-up: imports, pools, the first connections
            wait_until_answered(target)
            measure(target, 1, args.concurrency, workdir)
        figures: dict[str, list[Measured]] = {target.label: [] for target in targets}
        for _ in range(args.rounds):
            for target in targets:
                fleet.check_alive()
                figures[target.label].append(measure(target, args.seconds, args.concurrency, workdir))

    print(f"== Per request in the gunicorn worker (wrk c={args.concurrency}, {args.seconds} s per target, "
          f"{args.rounds} interleaved rounds) ==")  # fmt: skip
    print(table(["", "CPU, each round", "median", "the relay's ÷ this", "p50 overhead", "÷ the relay's"],
                report_rows(figures)))  # fmt: skip
    return 0


def report_rows(figures: dict[str, list[Measured]]) -> list[list[str]]:
    """A row per target: its CPU per request and the relay's CPU over it (the throughput ratio
    when the worker is saturated), its p50 overhead and that over the relay's; medians of the
    round-by-round figures, so the machine's drift between rounds falls out."""
    direct = [m.p50_us for m in figures[DIRECT]]
    relay = figures[FLASK_FLOOR]
    rows = []
    for label, measured in figures.items():
        if label == DIRECT:
            continue
        overheads = [m.p50_us - d for m, d in zip(measured, direct)]
        relay_overheads = [r.p50_us - d for r, d in zip(relay, direct)]
        rows.append([
            label, ", ".join(f"{m.cpu_us:.0f}" for m in measured),
            f"{statistics.median(m.cpu_us for m in measured):.0f} µs",
            f"×{statistics.median(r.cpu_us / m.cpu_us for r, m in zip(relay, measured)):.2f}",
            f"{statistics.median(overheads):.0f} µs",
            f"×{statistics.median(o / r for o, r in zip(overheads, relay_overheads)):.2f}",
        ])  # fmt: skip
    return rows


if __name__ == "__main__":
    sys.exit(main())
