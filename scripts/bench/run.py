#!/usr/bin/env python3
"""`make bench` (quick, about a minute) and `make bench-full`: what the router adds.

One run on one machine: a static upstream that answers at once (scripts/bench/upstream.py), nginx
as a pure proxy in front of it (the floor for HTTP), a bare grpcio relay (the floor for gRPC), and
the router itself (one gunicorn gevent worker, WEB_CONCURRENCY=1; one gRPC process with
server.grpc_max_workers threads). Every surface is measured against a direct call to the upstream
and against the floor, side by side, in the same run; then streams are held open against a slow
upstream, on router processes started fresh for it, to measure capacity and memory per stream.

    .venv/bin/python scripts/bench/run.py [--full] [--out PATH]

Placement on the 2-core machine: the router, nginx proxy and gRPC floor run on core 0 (one at a
time is loaded); the upstream and the load generators (wrk, and this process's asyncio and
grpc.aio clients) on core 1. Results are printed as tables and written as JSON (--out, else
$BENCH_RESULTS, else /tmp/ai-router-bench-results.json). Every process started here is stopped by
its PID at the end, on Ctrl-C and on errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

import loadgen  # noqa: E402

ROUTER_CORE = "0"
LOAD_CORE = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROMPT = "Say hello"
UNARY_TOKENS = 16
STREAM_TOKENS = 64
# Per relayed chunk: the slope between 1-chunk and SLOPE_TOKENS-chunk streams, one at a time.
# Long streams, so that the per-chunk cost dwarfs the run-to-run noise of the per-stream cost.
SLOPE_TOKENS = 256
KNEE_P99_OVERHEAD_US = 10_000
FLASK_FLOOR = "bare Flask relay"
NOISY_CORES = 0.25  # other processes' CPU, or hypervisor steal, during a run above which its figures are marked *
FIRST_TOKEN_TIMEOUT = 5.0  # capacity: a stream not answered by then counts as a failure
DEFAULT_RESULTS = "/tmp/ai-router-bench-results.json"
SDK_POOL = 1000  # the openai and anthropic SDKs' default httpx2 Limits(max_connections=1000)
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Mode:
    name: str
    seconds: int  # each wrk run at concurrency > 1
    c1_seconds: int  # each wrk run at concurrency 1 (p99 needs samples)
    steps: tuple[int, ...]  # the knee sweep; 1 and 32 are the table's columns
    client_seconds: float  # each run of the bench's own clients (TTFT, gRPC)
    client_c1_seconds: float
    ttft_max: int  # requests per TTFT run at most
    capacity: int  # streams to open per surface
    capacity_surfaces: tuple[str, ...]


QUICK = Mode(
    name="quick",
    seconds=1,
    c1_seconds=1,
    steps=(1, 8, 32),
    client_seconds=0.7,
    client_c1_seconds=1.0,
    ttft_max=400,
    capacity=5000,
    capacity_surfaces=("/stream",),
)
FULL = Mode(
    name="full",
    seconds=5,
    c1_seconds=10,
    steps=(1, 2, 4, 8, 16, 32, 64, 128),
    client_seconds=5.0,
    client_c1_seconds=8.0,
    ttft_max=5000,
    capacity=5000,
    capacity_surfaces=("/stream", "/v1/chat/completions"),
)


# --------------------------------------------------------------------------------------------
# Processes


def _die_with_parent() -> None:
    """In a child before exec: SIGTERM when the bench dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# The caller's own overrides of the router's address or settings must not leak into its processes.
ROUTER_UNSET = ("HOST", "HTTP_PORT", "GRPC_PORT", "GUNICORN_CONF", "REPLICA_NAME", "LOG_LEVEL")


def router_environment(config: Path, upstream_url: str) -> dict[str, str]:
    """A bench router's environment: its config, one gunicorn worker, both families' keys and
    the static upstream as both families' base URL."""
    return {
        "CONFIG_PATH": str(config),
        "WEB_CONCURRENCY": "1",
        "OPENAI_API_KEY": "sk-bench-openai",
        "ANTHROPIC_API_KEY": "sk-bench-anthropic",
        "OPENAI_BASE_URL": f"{upstream_url}/v1",
        "ANTHROPIC_BASE_URL": upstream_url,
    }


# A port is picked here and bound later by the server started with it. Picked by bind(0), it came
# from the kernel's ephemeral range, where every outgoing connection takes its local port and a
# later pick may return it again: a gRPC process's metrics port was once taken before it bound.
# So the bench hands out, in turn, ports just below the range the test suite's slices take.
def _bench_ports() -> range:
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return range(ephemeral_low - 6000, ephemeral_low - 4000)


_unpicked_ports = iter(_bench_ports())


def free_port() -> int:
    for port in _unpicked_ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"the bench's ports {_bench_ports()} are all handed out")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int = signal.SIGTERM


class Fleet:
    """The processes this run started; stopped by PID, last started first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []

    def start(
        self,
        name: str,
        argv: list[str],
        core: str,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        unset: tuple[str, ...] = (),
        cwd: Path = REPO,
    ) -> Child:
        log = self.workdir / f"{name}.log"
        environment = {k: v for k, v in os.environ.items() if k not in unset}
        environment.update(env or {})
        with log.open("wb") as out:
            popen = subprocess.Popen(
                ["taskset", "-c", core, *argv],  # taskset execs argv: the PID is the server's
                cwd=cwd,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the bench, which stops them in order
                preexec_fn=_die_with_parent,
            )
        child = Child(name, popen, log, stop_signal)
        self.children.append(child)
        return child

    def wait_for_port(self, child: Child, port: int, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise RuntimeError(
                    f"{child.name} exited with {child.popen.returncode} before listening on "
                    f"{port}:\n{tail(child.log)}"
                )
            if port_open(port):
                return
            time.sleep(0.05)
        raise RuntimeError(f"{child.name} did not listen on {port} within {timeout:g} s:\n{tail(child.log)}")

    def check_alive(self) -> None:
        for child in self.children:
            if child.popen.poll() is not None:
                raise RuntimeError(
                    f"{child.name} (pid {child.popen.pid}) exited with {child.popen.returncode} "
                    f"during the run:\n{tail(child.log)}"
                )

    def stop(self, children: list[Child]) -> None:
        """Signal `children` in this order, wait for them (killed after 15 s), forget them."""
        for child in children:
            if child.popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.send_signal(child.stop_signal)
        deadline = time.monotonic() + 15
        for child in children:
            try:
                child.popen.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.popen.kill()
                child.popen.wait()
            self.children.remove(child)

    def stop_all(self) -> None:
        self.stop(list(reversed(self.children)))


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# CPU and memory, from /proc


def proc_ticks(pid: int) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def machine_ticks() -> tuple[int, int, dict[str, int]]:
    """From one reading of /proc/stat, all CPUs': busy, user + nice + system, time that some
    process was charged for (irq and softirq time, much of it our own loopback traffic, is
    charged to none and left out); and steal, time the hypervisor ran something else while this
    virtual machine had work to run, which no process here shows, yet every figure of a run it
    falls on is slower. Last, each CPU's steal by its number ("0", "1"): a run's servers and its
    load are pinned, so what was taken from which of them can be told apart."""
    lines = Path("/proc/stat").read_text().splitlines()
    fields = [int(v) for v in lines[0].split()[1:]]
    per_cpu: dict[str, int] = {}
    for line in lines[1:]:
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        per_cpu[name.removeprefix("cpu")] = int(values[7]) if len(values) > 7 else 0
    return fields[0] + fields[1] + fields[2], fields[7] if len(fields) > 7 else 0, per_cpu


class Group:
    """A named set of processes whose CPU is counted together (a server and its workers)."""

    def __init__(self, name: str, root: int, with_children: bool = True) -> None:
        self.name, self.root, self.with_children = name, root, with_children

    def pids(self) -> list[int]:
        return [self.root, *(children_of(self.root) if self.with_children else [])]

    def ticks(self) -> int:
        return sum(proc_ticks(pid) for pid in self.pids())


class Meter:
    """CPU seconds of every group, of the bench's own load generation (this process and the
    wrk it ran), and of everything else on the machine, between start() and stop()."""

    def __init__(self, groups: list[Group]) -> None:
        self.groups = groups

    def start(self) -> None:
        self._wall = time.monotonic()
        self._ticks = {group.name: group.ticks() for group in self.groups}
        self._own = self._own_seconds()
        self._busy, self._steal, self._steal_per_cpu = machine_ticks()

    @staticmethod
    def _own_seconds() -> float:
        times = os.times()
        return times.user + times.system + times.children_user + times.children_system

    def stop(self) -> dict[str, float]:
        wall = time.monotonic() - self._wall
        cpu = {group.name: (group.ticks() - self._ticks[group.name]) / CLK_TCK for group in self.groups}
        loader = self._own_seconds() - self._own
        busy_ticks, steal_ticks, steal_per_cpu = machine_ticks()
        busy = (busy_ticks - self._busy) / CLK_TCK
        others = max(0.0, busy - loader - sum(cpu.values()))
        steal = (steal_ticks - self._steal) / CLK_TCK
        stolen = {n: (ticks - self._steal_per_cpu.get(n, ticks)) / CLK_TCK for n, ticks in steal_per_cpu.items()}
        return {"wall_s": wall, "loader_cpu_s": loader, "others_cpu_s": others, "steal_s": steal,
                **{f"cpu_s.{k}": v for k, v in cpu.items()}, **{f"steal_s.cpu{n}": v for n, v in stolen.items()}}


# --------------------------------------------------------------------------------------------
# Load


@dataclass
class Run:
    """One measurement: a target, a concurrency, and what came of it."""

    surface: str
    target: str  # direct | nginx | floor | router
    concurrency: int
    tokens: int
    requests: int
    rate: float
    p50_us: float
    p99_us: float
    mean_us: float
    errors: int
    error_detail: dict[str, int]
    cpu_per_request_us: float | None
    loader_busy: float  # load generation's CPU / wall, of its one core
    others_cores: float  # other processes' CPU / wall, in cores
    ttft_p50_us: float | None = None
    ttft_p99_us: float | None = None
    note: str = ""
    steal_cores: float = 0.0  # hypervisor steal / wall, in cores


@dataclass
class Shares:
    """What a run cost its target's processes (per request), and what else took CPU meanwhile."""

    per_request_us: float | None
    loader: float  # load generation's CPU / wall, of its one core
    others: float  # other processes' CPU / wall, in cores
    steal: float  # hypervisor steal / wall, in cores, all CPUs
    stolen_ms_server_core: float  # hypervisor steal on the servers' core, in ms
    stolen_ms_load_core: float  # and on the core of the upstream and the load


def disturbed(run: Any) -> bool:
    """Whether other processes or the hypervisor took more than NOISY_CORES during `run` (a Run,
    or any record of one with the same two fields)."""
    return bool(run.others_cores > NOISY_CORES or run.steal_cores > NOISY_CORES)


class Bench:
    def __init__(self, mode: Mode, workdir: Path, fleet: Fleet) -> None:
        self.mode = mode
        self.workdir = workdir
        self.fleet = fleet
        self.runs: list[Run] = []
        self.notes: list[str] = []
        self.groups: dict[str, Group] = {}
        self.bodies: dict[str, Path] = {}
        self.ports: dict[str, int] = {}
        self.stream_close = False
        self.results: dict[str, Any] = {"mode": mode.name}
        self.wrk_binary = shutil.which("wrk") or "wrk"
        self.others_total = 0.0
        self.steal_total = 0.0
        self.steal_worst = 0.0  # the most of any one run, in cores
        self.measured_wall = 0.0
        self.capacity_http: dict[str, tuple[Child, int]] = {}
        self.capacity_grpc: tuple[Child, int] | None = None

    # ---- setup

    def start_servers(self) -> None:
        ports = self.ports
        for name in ("upstream", "nginx", "http", "grpc", "floor", "flask"):
            ports[name] = free_port()
        upstream_url = f"http://127.0.0.1:{ports['upstream']}"
        python = sys.executable

        upstream = self.fleet.start(
            "upstream", [python, str(HERE / "upstream.py"), "--port", str(ports["upstream"])], LOAD_CORE
        )
        nginx_conf = self._write_nginx_conf()
        nginx_binary = shutil.which("nginx") or "/usr/sbin/nginx"
        nginx = self.fleet.start(
            "nginx",
            [nginx_binary, "-p", str(self.workdir / "nginx"), "-c", str(nginx_conf), "-e", str(self.workdir / "nginx" / "error.log")],
            ROUTER_CORE,
        )
        config = self._write_router_config(ports["http"], ports["grpc"], "router-config.yaml")
        router_env = router_environment(config, upstream_url)
        cli = [python, "-m", "ai_router.cli"]
        unset = ROUTER_UNSET
        http = self.fleet.start("router-http", [*cli, "http"], ROUTER_CORE, router_env, unset=unset)
        # Each gRPC process serves Prometheus metrics on its own free port (the default, 9464,
        # would clash with the second process, or with anything else on the machine).
        grpc_server = self.fleet.start(
            "router-grpc", [*cli, "grpc"], ROUTER_CORE, {**router_env, "GRPC_METRICS_PORT": str(free_port())}, unset=unset
        )
        # Fresh routers for the capacity test, one per HTTP surface and one gRPC process, started
        # now (they idle until then) so that their memory is not the heap that the load tests
        # grew and freed: streams would reuse it, and RSS per stream would read low.
        capacity_children = []
        for index, surface in enumerate(self.mode.capacity_surfaces):
            http_port, grpc_port = free_port(), free_port()
            env = {**router_env, "CONFIG_PATH": str(self._write_router_config(http_port, grpc_port, f"capacity-{index}.yaml"))}
            child = self.fleet.start(f"capacity-http-{index}", [*cli, "http"], ROUTER_CORE, env, unset=unset)
            capacity_children.append((child, http_port))
            self.capacity_http[surface] = (child, http_port)
        grpc_port = free_port()
        env = {
            **router_env,
            "CONFIG_PATH": str(self._write_router_config(free_port(), grpc_port, "capacity-grpc.yaml")),
            "GRPC_METRICS_PORT": str(free_port()),
        }
        child = self.fleet.start("capacity-grpc", [*cli, "grpc"], ROUTER_CORE, env, unset=unset)
        capacity_children.append((child, grpc_port))
        self.capacity_grpc = (child, grpc_port)
        # Its own (empty) settings file: run from the repository, gunicorn would load the router's.
        # The router's worker class: gunicorn's gevent worker on gevent.pywsgi.
        floor_conf = self.workdir / "flask-floor.conf.py"
        floor_conf.write_text("")
        flask_floor = self.fleet.start(
            "flask-floor",
            [python, "-m", "gunicorn", "-c", str(floor_conf), "-k", "ai_router.http_api.server.worker.Worker",
             "-w", "1", "--chdir", str(HERE),
             "-b", f"127.0.0.1:{ports['flask']}", "flask_floor:app"],
            ROUTER_CORE,
            {"UPSTREAM_URL": upstream_url},
        )
        floor = self.fleet.start(
            "grpc-floor",
            [python, str(HERE / "grpc_floor.py"), "--port", str(ports["floor"]), "--upstream", f"{upstream_url}/v1", "--workers", "64"],
            ROUTER_CORE,
        )
        for child, port in ((upstream, ports["upstream"]), (nginx, ports["nginx"]), (http, ports["http"]), (grpc_server, ports["grpc"]), (floor, ports["floor"]), (flask_floor, ports["flask"]), *capacity_children):
            self.fleet.wait_for_port(child, port)
        self._wait_http_ready(http, ports["http"])
        for child, port in self.capacity_http.values():
            self._wait_http_ready(child, port)
        self.groups = {
            "router-http": Group("router-http", http.popen.pid),
            "router-grpc": Group("router-grpc", grpc_server.popen.pid, with_children=False),
            "nginx": Group("nginx", nginx.popen.pid),
            "upstream": Group("upstream", upstream.popen.pid, with_children=False),
            "floor": Group("floor", floor.popen.pid, with_children=False),
            "flask-floor": Group("flask-floor", flask_floor.popen.pid),
        }
        workers = children_of(http.popen.pid)
        if len(workers) != 1:
            raise RuntimeError(f"expected one gunicorn worker (WEB_CONCURRENCY=1), found {workers}")
        self.results["python"] = {"executable": sys.executable, "version": platform.python_version(), "compiler": platform.python_compiler()}
        self.results["processes"] = {
            "capacity": [child.popen.pid for child, _ in capacity_children],
            "router_http_arbiter": http.popen.pid,
            "router_http_worker": workers[0],
            "router_grpc": grpc_server.popen.pid,
            "nginx_master": nginx.popen.pid,
            "upstream": upstream.popen.pid,
            "grpc_floor": floor.popen.pid,
            "flask_floor": flask_floor.popen.pid,
        }

    def _wait_http_ready(self, child: Child, port: int) -> None:
        url = f"http://127.0.0.1:{port}/healthz"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with NO_PROXY.open(url, timeout=2) as response:
                    if response.status == 200 and len(children_of(child.popen.pid)) >= 1:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the router's HTTP server did not answer /healthz:\n{tail(child.log)}")

    def _write_router_config(self, http_port: int, grpc_port: int, name: str) -> Path:
        provider = {"default_max_tokens": UNARY_TOKENS, "timeout": 120, "max_retries": 0}
        config = {
            "server": {
                "host": "127.0.0.1",
                "http_port": http_port,
                "grpc_port": grpc_port,
                "grpc_max_workers": 64,
                # Short graceful stops: the bench ends with streams just closed.
                "http_grace_seconds": 1,
                "grpc_grace_seconds": 1,
                "grpc_drain_seconds": 0,
            },
            "providers": {
                "openai": {"default_model": "gpt-4o-mini", **provider},
                "anthropic": {"default_model": "claude-3-5-haiku-20241022", **provider},
            },
        }
        path = self.workdir / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.results.setdefault("router_config", config)
        return path

    def _write_nginx_conf(self) -> Path:
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(
            f"""# nginx as a pure proxy: the floor for the HTTP surfaces.
{user}
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 30000;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    upstream bench_upstream {{
        server 127.0.0.1:{self.ports['upstream']};
        keepalive 128;
    }}
    server {{
        listen 127.0.0.1:{self.ports['nginx']} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 3600s;
        }}
    }}
}}
"""
        )
        return conf

    def write_bodies(self) -> None:
        message = [{"role": "user", "content": PROMPT}]

        def upstream_body(tokens: int, stream: bool) -> dict[str, Any]:
            # What the router's openai SDK sends upstream for these requests.
            body: dict[str, Any] = {"messages": message, "model": "gpt-4o-mini", "max_completion_tokens": tokens}
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
            return body

        def v1_body(tokens: int, stream: bool) -> dict[str, Any]:
            return {**upstream_body(tokens, stream), "model": "openai/gpt-4o-mini"}

        def native(tokens: int, model: str = "") -> dict[str, Any]:
            body: dict[str, Any] = {"provider": "openai", "prompt": PROMPT, "max_tokens": tokens}
            if model:
                body["model"] = model
            return body

        bodies = {
            "direct-unary": upstream_body(UNARY_TOKENS, False),
            "generate": native(UNARY_TOKENS),
            "v1-unary": v1_body(UNARY_TOKENS, False),
            "direct-stream-64": upstream_body(STREAM_TOKENS, True),
            "direct-stream-1": upstream_body(1, True),
            f"direct-stream-{SLOPE_TOKENS}": upstream_body(SLOPE_TOKENS, True),
            f"v1-stream-{SLOPE_TOKENS}": v1_body(SLOPE_TOKENS, True),
            f"stream-{SLOPE_TOKENS}": native(SLOPE_TOKENS),
            "v1-stream-64": v1_body(STREAM_TOKENS, True),
            "v1-stream-1": v1_body(1, True),
            "stream-64": native(STREAM_TOKENS),
            "stream-1": native(1),
            "slow-stream": native(16, "slow-model"),
            "slow-v1-stream": {**v1_body(16, True), "model": "openai/slow-model"},
        }
        for name, body in bodies.items():
            path = self.workdir / f"body-{name}.json"
            path.write_bytes(json.dumps(body, separators=(",", ":")).encode())
            self.bodies[name] = path

    # ---- measuring

    def steal_cores(self) -> float:
        return self.steal_total / self.measured_wall if self.measured_wall else 0.0

    def _meter(self) -> Meter:
        return Meter(list(self.groups.values()))

    def _finish(self, meter: Meter, group: str | None, requests: int) -> Shares:
        """CPU per request of `group`, and the load generator's, other processes' and the
        hypervisor's share of the run (in cores)."""
        usage = meter.stop()
        wall = usage["wall_s"]
        others = usage["others_cpu_s"]
        self.others_total += others
        steal = usage["steal_s"] / wall
        self.steal_total += usage["steal_s"]
        self.steal_worst = max(self.steal_worst, steal)
        self.measured_wall += wall
        cpu = usage[f"cpu_s.{group}"] if group else None
        return Shares(
            per_request_us=cpu / requests * 1e6 if cpu is not None and requests else None,
            loader=usage["loader_cpu_s"] / wall, others=others / wall, steal=steal,
            stolen_ms_server_core=usage.get(f"steal_s.cpu{ROUTER_CORE}", 0.0) * 1000,
            stolen_ms_load_core=usage.get(f"steal_s.cpu{LOAD_CORE}", 0.0) * 1000,
        )

    def wrk(
        self, surface: str, target: str, url: str, body: str, concurrency: int, tokens: int,
        group: str | None, close: bool = False, seconds: int | None = None, headers: Path | None = None,
    ) -> Run:
        self.fleet.check_alive()
        seconds = seconds or (self.mode.c1_seconds if concurrency == 1 else self.mode.seconds)
        out = self.workdir / "wrk-out.json"
        out.unlink(missing_ok=True)
        env = {**os.environ, "WRK_BODY": str(self.bodies[body]), "WRK_OUT": str(out), "WRK_CLOSE": "1" if close else "0",
               "WRK_HEADERS": str(headers or "")}
        command = [
            "taskset", "-c", LOAD_CORE, self.wrk_binary, "-t", str(concurrency), "-c", str(concurrency),
            "-d", f"{seconds}s", "--timeout", "5s", "-s", str(HERE / "report.lua"), url,
        ]
        meter = self._meter()
        meter.start()
        note = ""
        try:
            completed = subprocess.run(command, env=env, capture_output=True, timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"wrk did not finish: {' '.join(command)}") from None
        if completed.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr.decode(errors='replace')}")
        data = json.loads(out.read_text())
        errors = data["errors"]
        total_errors = sum(errors.values())
        shares = self._finish(meter, group, data["requests"])
        latency = data["latency_us"]
        if data["timed"] < data["requests"]:
            note = f"{data['requests'] - data['timed']} answers not timed"
        run = Run(
            surface=surface, target=target, concurrency=concurrency, tokens=tokens,
            requests=data["requests"], rate=data["requests"] / (data["duration_us"] / 1e6),
            p50_us=latency["p50"], p99_us=latency["p99"], mean_us=latency["mean"],
            errors=total_errors, error_detail={k: v for k, v in errors.items() if v},
            cpu_per_request_us=shares.per_request_us, loader_busy=shares.loader, others_cores=shares.others,
            steal_cores=shares.steal, note=note,
        )
        self.runs.append(run)
        return run

    def client_run(
        self, surface: str, target: str, tokens: int, concurrency: int, group: str | None,
        coroutine: Callable[[], Any],
    ) -> Run:
        self.fleet.check_alive()
        meter = self._meter()
        meter.start()
        data = asyncio.run(coroutine())
        requests = data["requests"]
        shares = self._finish(meter, group, requests)
        latency, ttft = data["latency_us"], data["ttft_us"]
        run = Run(
            surface=surface, target=target, concurrency=concurrency, tokens=tokens, requests=requests,
            rate=data["rate"], p50_us=latency["p50"], p99_us=latency["p99"], mean_us=latency["mean"],
            errors=sum(data["errors"].values()), error_detail=data["errors"],
            cpu_per_request_us=shares.per_request_us, loader_busy=shares.loader, others_cores=shares.others,
            steal_cores=shares.steal, ttft_p50_us=ttft["p50"], ttft_p99_us=ttft["p99"],
        )
        self.runs.append(run)
        return run

    def warm_up(self, port: int, path: str, body: str, count: int = 30, close: bool = False) -> None:
        data = self.bodies[body].read_bytes()
        asyncio.run(loadgen.http_sequential("127.0.0.1", port, path, data, 10.0, count, close))

    def find(self, surface: str, target: str, concurrency: int, tokens: int | None = None) -> Run | None:
        for run in reversed(self.runs):
            if (run.surface, run.target, run.concurrency) == (surface, target, concurrency) and (
                tokens is None or run.tokens == tokens
            ):
                return run
        return None

    # ---- the measurements

    def http_unary(self) -> None:
        ports = self.ports
        direct_url = f"http://127.0.0.1:{ports['upstream']}/v1/chat/completions"
        nginx_url = f"http://127.0.0.1:{ports['nginx']}/v1/chat/completions"
        router = f"http://127.0.0.1:{ports['http']}"
        surfaces = [
            ("/generate", f"{router}/generate", "generate"),
            ("/v1/chat/completions", f"{router}/v1/chat/completions", "v1-unary"),
        ]
        self.warm_up(ports["upstream"], "/v1/chat/completions", "direct-unary")
        self.warm_up(ports["nginx"], "/v1/chat/completions", "direct-unary")
        self.warm_up(ports["flask"], "/v1/chat/completions", "direct-unary", 50)
        flask_url = f"http://127.0.0.1:{ports['flask']}/v1/chat/completions"
        for _, url, body in surfaces:
            self.warm_up(ports["http"], url.removeprefix(router), body, 50)
        failed: set[str] = set()
        for step in self.mode.steps:
            if step > 32 and len(failed) == len(surfaces) + 1:
                break  # past the knee of every surface: more load only queues
            self.wrk("http-unary", "direct", direct_url, "direct-unary", step, UNARY_TOKENS, "upstream")
            if step in (1, 32):
                self.wrk("http-unary", "nginx", nginx_url, "direct-unary", step, UNARY_TOKENS, "nginx")
            direct = self.find("http-unary", "direct", step)
            assert direct is not None
            if FLASK_FLOOR not in failed or step <= 32:
                run = self.wrk(FLASK_FLOOR, "flask", flask_url, "direct-unary", step, UNARY_TOKENS, "flask-floor")
                if run.errors or run.p99_us - direct.p99_us >= KNEE_P99_OVERHEAD_US:
                    failed.add(FLASK_FLOOR)
            for surface, url, body in surfaces:
                if surface in failed and step > 32:
                    continue
                run = self.wrk(surface, "router", url, body, step, UNARY_TOKENS, "router-http")
                if run.errors or run.p99_us - direct.p99_us >= KNEE_P99_OVERHEAD_US:
                    failed.add(surface)
            progress(f"HTTP unary, c={step}: done")

    def http_streams(self) -> None:
        ports = self.ports
        router = f"http://127.0.0.1:{ports['http']}"
        direct_url = f"http://127.0.0.1:{ports['upstream']}/v1/chat/completions"
        nginx_url = f"http://127.0.0.1:{ports['nginx']}/v1/chat/completions"
        surfaces = [
            ("/v1/chat/completions stream", "/v1/chat/completions", "v1-stream"),
            ("/stream", "/stream", "stream"),
        ]
        # A stream, then another request on the same kept-alive connection: if the router
        # cannot do that, every stream run uses one connection per request (for all targets).
        problems = []
        for surface, path, body in surfaces:
            problem = asyncio.run(
                loadgen.keepalive_probe("127.0.0.1", ports["http"], path, self.bodies[f"{body}-1"].read_bytes(), 30)
            )
            if problem:
                problems.append(f"{surface}: {problem}")
        self.results["stream_keepalive_problems"] = problems
        if problems:
            self.stream_close = True
            self.notes.append(
                "Router fault: a kept-alive HTTP connection does not survive a stream. "
                + "; ".join(problems)
                + ". So every HTTP stream run below (direct, nginx and router alike) sends "
                "`Connection: close`: one stream per connection, connection set-up included."
            )
        close = self.stream_close
        self.warm_up(ports["upstream"], "/v1/chat/completions", "direct-stream-64", close=close)
        self.warm_up(ports["nginx"], "/v1/chat/completions", "direct-stream-64", close=close)
        for _, path, body in surfaces:
            self.warm_up(ports["http"], path, f"{body}-64", 30, close=close)
        for concurrency in (1, 32):
            self.wrk("http-stream", "direct", direct_url, f"direct-stream-{STREAM_TOKENS}", concurrency, STREAM_TOKENS, "upstream", close)
            self.wrk("http-stream", "nginx", nginx_url, f"direct-stream-{STREAM_TOKENS}", concurrency, STREAM_TOKENS, "nginx", close)
            for surface, path, body in surfaces:
                self.wrk(surface, "router", router + path, f"{body}-{STREAM_TOKENS}", concurrency, STREAM_TOKENS, "router-http", close)
            progress(f"HTTP streams, c={concurrency}: done")
        for tokens in (1, SLOPE_TOKENS):
            self.wrk("http-stream", "direct", direct_url, f"direct-stream-{tokens}", 1, tokens, "upstream", close)
            for surface, path, body in surfaces:
                self.wrk(surface, "router", router + path, f"{body}-{tokens}", 1, tokens, "router-http", close)
        progress(f"HTTP streams, 1 and {SLOPE_TOKENS} chunks: done")
        # Time to first token, one request at a time, on the bench's own client.
        targets = [
            ("http-stream", "direct", ports["upstream"], "/v1/chat/completions", "direct-stream-64", "upstream"),
            ("http-stream", "nginx", ports["nginx"], "/v1/chat/completions", "direct-stream-64", "nginx"),
            *[(surface, "router", ports["http"], path, f"{body}-64", "router-http") for surface, path, body in surfaces],
        ]
        for surface, target, port, path, body, group in targets:
            data = self.bodies[body].read_bytes()
            self.client_run(
                surface + " ttft", target, STREAM_TOKENS, 1, group,
                lambda port=port, path=path, data=data: loadgen.http_sequential(
                    "127.0.0.1", port, path, data, self.mode.client_c1_seconds, self.mode.ttft_max, close
                ),
            )
        progress("HTTP streams, time to first token: done")

    def grpc(self) -> None:
        ports = self.ports
        router = f"127.0.0.1:{ports['grpc']}"
        floor = f"127.0.0.1:{ports['floor']}"
        unary = loadgen.grpc_request("openai/gpt-4o-mini", UNARY_TOKENS)

        def direct(body: str, concurrency: int, tokens: int, surface: str) -> Run:
            data = self.bodies[body].read_bytes()
            seconds = self.mode.client_c1_seconds if concurrency == 1 else self.mode.client_seconds
            return self.client_run(
                surface, "direct", tokens, concurrency, "upstream",
                lambda: loadgen.http_load("127.0.0.1", ports["upstream"], "/v1/chat/completions", data, concurrency, seconds),
            )

        def call(target: str, address: str, group: str, request: Any, stream: bool, concurrency: int, tokens: int, surface: str) -> Run:
            seconds = self.mode.client_c1_seconds if concurrency == 1 else self.mode.client_seconds
            return self.client_run(
                surface, target, tokens, concurrency, group,
                lambda: loadgen.grpc_load(address, request, stream, concurrency, seconds),
            )

        # Warm-up: channels, threads, the SDK's connections.
        asyncio.run(loadgen.grpc_load(router, unary, False, 4, 0.3))
        asyncio.run(loadgen.grpc_load(floor, unary, False, 4, 0.3))
        failed = False
        for step in self.mode.steps:
            if failed and step > 32:
                break
            direct("direct-unary", step, UNARY_TOKENS, "grpc-unary")
            if step in (1, 32):
                call("floor", floor, "floor", unary, False, step, UNARY_TOKENS, "grpc-unary")
            run = call("router", router, "router-grpc", unary, False, step, UNARY_TOKENS, "grpc-unary")
            base = self.find("grpc-unary", "direct", step)
            assert base is not None
            if run.errors or run.p99_us - base.p99_us >= KNEE_P99_OVERHEAD_US:
                failed = True
            progress(f"gRPC unary, c={step}: done")
        request = loadgen.grpc_request("openai/gpt-4o-mini", STREAM_TOKENS)
        for concurrency in (1, 32):
            direct(f"direct-stream-{STREAM_TOKENS}", concurrency, STREAM_TOKENS, "grpc-stream")
            call("floor", floor, "floor", request, True, concurrency, STREAM_TOKENS, "grpc-stream")
            call("router", router, "router-grpc", request, True, concurrency, STREAM_TOKENS, "grpc-stream")
            progress(f"gRPC streams, c={concurrency}: done")
        for tokens in (1, SLOPE_TOKENS):
            direct(f"direct-stream-{tokens}", 1, tokens, "grpc-stream")
            call("router", router, "router-grpc", loadgen.grpc_request("openai/gpt-4o-mini", tokens), True, 1, tokens, "grpc-stream")
        progress(f"gRPC streams, 1 and {SLOPE_TOKENS} chunks: done")

    def capacity(self) -> None:
        """Open streams against the slow upstream on the fresh capacity routers, after a short
        warm-up (so the baseline RSS is that of a worker that has served streams)."""
        results: dict[str, Any] = {}
        paths = {"/stream": ("/stream", "slow-stream", "stream-64"), "/v1/chat/completions": ("/v1/chat/completions", "slow-v1-stream", "v1-stream-64")}
        for surface in self.mode.capacity_surfaces:
            self.fleet.check_alive()
            path, body, warm = paths[surface]
            child, port = self.capacity_http[surface]
            workers = children_of(child.popen.pid)
            if len(workers) != 1:
                raise RuntimeError(f"capacity router: expected one gunicorn worker, found {workers}")
            self.warm_up(port, path, warm, 50, close=True)
            outcome = asyncio.run(
                loadgen.open_http_streams(
                    "127.0.0.1", port, path, self.bodies[body].read_bytes(), self.mode.capacity,
                    wave=100, first_token_timeout=FIRST_TOKEN_TIMEOUT, rss_kib=lambda: rss_kib(workers[0]),
                )
            )
            results[f"HTTP {surface}"] = outcome
            progress(f"capacity, HTTP {surface}: {outcome.opened} open")
        self.fleet.check_alive()
        assert self.capacity_grpc is not None
        child, port = self.capacity_grpc
        address = f"127.0.0.1:{port}"
        asyncio.run(loadgen.grpc_load(address, loadgen.grpc_request("openai/gpt-4o-mini", STREAM_TOKENS), True, 4, 0.3))
        outcome = asyncio.run(
            loadgen.open_grpc_streams(
                address, loadgen.grpc_request("openai/slow-model", 16), self.mode.capacity,
                wave=50, first_token_timeout=FIRST_TOKEN_TIMEOUT, rss_kib=lambda: rss_kib(child.popen.pid),
            )
        )
        outcome.extra["pool"] = 64
        results["gRPC StreamingRouteRequest"] = outcome
        progress(f"capacity, gRPC: {outcome.opened} open")
        self.results["capacity"] = {
            name: {**asdict(result), "rss_per_stream_kib": result.rss_per_stream_kib} for name, result in results.items()
        }
        self.capacity_results = results


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Report


def us(value: float | None) -> str:
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    v = abs(value)
    if v < 1000:
        return f"{sign}{v:.0f} µs"
    if v < 100_000:
        return f"{sign}{v / 1000:.2f} ms"
    if v < 1_000_000:
        return f"{sign}{v / 1000:.0f} ms"
    return f"{sign}{v / 1e6:.2f} s"


def rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}/s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0 or a < 0:
        return "—"
    value = a / b
    # Two decimals: a target's ratio reads as the value it was judged by (×1.34 misses ×1.3).
    return f"×{value:.2f}" if value >= 0.95 else f"×{value:.2g}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


class Report:
    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.targets: list[tuple[str, str, str, bool | None]] = []
        self.derived: dict[str, Any] = {}

    def find(self, surface: str, target: str, concurrency: int, tokens: int | None = None) -> Run | None:
        return self.bench.find(surface, target, concurrency, tokens)

    def target(self, what: str, value: str, goal: str, met: bool | None) -> str:
        self.targets.append((what, value, goal, met))
        verdict = "—" if met is None else ("met" if met else "NOT MET")
        return f"  target {what}: {value} (goal {goal}) — {verdict}"

    @staticmethod
    def _overhead(run: Run | None, base: Run | None, field: str) -> float | None:
        if run is None or base is None:
            return None
        a, b = getattr(run, field), getattr(base, field)
        return None if a is None or b is None else a - b

    def latency_block(
        self, title: str, surface_rows: list[tuple[str, str, str]], base_surface: str, floor: str, unit: str,
        tokens: int | None = None,
    ) -> list[str]:
        """Rows: direct, floor, router(s), their overheads, and router ÷ floor; columns: latency
        at c=1 and c=32, rate and server CPU per request at c=32, errors. A figure from a run
        during which other processes or the hypervisor took CPU is marked *."""
        out = [title]
        headers = ["", "c=1 p50", "c=1 p99", "c=32 p50", "c=32 p99", f"{unit}/s @32", "server CPU/req", "errors"]
        rows = []

        def cell(text: str, *runs: Run | None) -> str:
            noisy = any(r is not None and disturbed(r) for r in runs)
            return text + ("*" if noisy and text not in ("—", "") else "")

        entries = [("direct", base_surface, "direct"), (floor, base_surface, floor), *surface_rows]
        for label, surface, target in entries:
            one, many = self.find(surface, target, 1, tokens), self.find(surface, target, 32, tokens)
            errors = sum(r.errors for r in (one, many) if r)
            rows.append([
                label, cell(us(one and one.p50_us), one), cell(us(one and one.p99_us), one),
                cell(us(many and many.p50_us), many), cell(us(many and many.p99_us), many),
                cell(rate(many and many.rate), many), us(many and many.cpu_per_request_us), str(errors),
            ])
        direct1, direct32 = self.find(base_surface, "direct", 1, tokens), self.find(base_surface, "direct", 32, tokens)
        overheads = [(f"{floor} − direct", base_surface, floor), *[(f"{l} − direct", s, t) for l, s, t in surface_rows]]
        for label, surface, target in overheads:
            one, many = self.find(surface, target, 1, tokens), self.find(surface, target, 32, tokens)
            rows.append([
                label,
                cell(us(self._overhead(one, direct1, "p50_us")), one, direct1),
                cell(us(self._overhead(one, direct1, "p99_us")), one, direct1),
                cell(us(self._overhead(many, direct32, "p50_us")), many, direct32),
                cell(us(self._overhead(many, direct32, "p99_us")), many, direct32),
                "", "", "",
            ])
        floor1, floor32 = self.find(base_surface, floor, 1, tokens), self.find(base_surface, floor, 32, tokens)
        for label, surface, target in surface_rows:
            one, many = self.find(surface, target, 1, tokens), self.find(surface, target, 32, tokens)
            rows.append([
                f"{label} ÷ {floor}",
                ratio(self._overhead(one, direct1, "p50_us"), self._overhead(floor1, direct1, "p50_us")),
                ratio(self._overhead(one, direct1, "p99_us"), self._overhead(floor1, direct1, "p99_us")),
                ratio(self._overhead(many, direct32, "p50_us"), self._overhead(floor32, direct32, "p50_us")),
                ratio(self._overhead(many, direct32, "p99_us"), self._overhead(floor32, direct32, "p99_us")),
                ratio(many and many.rate, floor32 and floor32.rate),
                ratio(many and many.cpu_per_request_us, floor32 and floor32.cpu_per_request_us),
                "",
            ])
        out.append(table(headers, rows))
        out.append(
            f"  (server CPU/req: the upstream's for direct, {floor}'s, the router's (all its processes), "
            f"at c=32. ÷ {floor}: latency columns compare overheads, the others the figures themselves.)"
        )
        return out

    def per_chunk(self, surface: str, base_surface: str) -> tuple[float | None, float | None, Run | None, Run | None]:
        """Added latency and CPU per relayed chunk: (long − short) / (chunks apart), at c=1;
        latency as the overhead over the direct call, CPU as the router's own."""
        short, long_ = self.find(surface, "router", 1, 1), self.find(surface, "router", 1, SLOPE_TOKENS)
        d_short, d_long = self.find(base_surface, "direct", 1, 1), self.find(base_surface, "direct", 1, SLOPE_TOKENS)
        span = SLOPE_TOKENS - 1
        latency = cpu = None
        if short and long_ and d_short and d_long:
            latency = ((long_.p50_us - d_long.p50_us) - (short.p50_us - d_short.p50_us)) / span
        if short and long_ and short.cpu_per_request_us is not None and long_.cpu_per_request_us is not None:
            cpu = (long_.cpu_per_request_us - short.cpu_per_request_us) / span
        return latency, cpu, short, long_

    def knee(self, surface: str, base_surface: str, target: str = "router") -> tuple[Run | None, list[str]]:
        steps = []
        best: Run | None = None
        for step in self.bench.mode.steps:
            run, base = self.find(surface, target, step), self.find(base_surface, "direct", step)
            if run is None or base is None:
                continue
            over = run.p99_us - base.p99_us
            ok = run.errors == 0 and over < KNEE_P99_OVERHEAD_US
            steps.append(f"c={step}: {rate(run.rate)}, p99 +{us(over)}{'' if run.errors == 0 else f', {run.errors} errors'}{'' if ok else ' ✗'}")
            if ok and (best is None or run.rate > best.rate):
                best = run
        return best, steps

    def knee_line(
        self, key: str, label: str, surface: str, base_surface: str, target: str = "router", per: str = "worker",
    ) -> tuple[Run | None, str]:
        """The knee of `surface` (kept in the JSON as "knee <key>") and its report line."""
        best, steps = self.knee(surface, base_surface, target)
        self.derived[f"knee {key}"] = asdict(best) if best else None
        found = f"c={best.concurrency}, {rate(best.rate)} per {per}, CPU {us(best.cpu_per_request_us)}/req" if best else "none"
        return best, f"  {label} knee (no errors, p99 overhead < 10 ms): {found}   [{'; '.join(steps)}]"

    def render(self) -> str:
        b = self.bench
        lines: list[str] = []
        add = lines.append
        mode = b.mode
        add(f"ai-router benchmark ({mode.name} mode) — {time.strftime('%Y-%m-%d %H:%M:%S')}, {os.cpu_count()} cores")
        add(
            "Router: 1 gunicorn gevent worker (WEB_CONCURRENCY=1) and 1 gRPC process (grpc_max_workers=64), "
            f"pinned to core {ROUTER_CORE}; nginx proxy and gRPC floor on core {ROUTER_CORE} too. "
            f"Upstream (scripts/bench/upstream.py, answers at once) and load generators on core {LOAD_CORE}."
        )
        add(
            "Load: wrk (one connection per thread, per-request latency timed in Lua) for HTTP; the bench's "
            "asyncio client for time to first token and the in-process gRPC baseline; grpc.aio for gRPC. "
            f"Runs: {mode.c1_seconds} s at c=1, {mode.seconds} s at c>1 (wrk); {mode.client_c1_seconds:g}/{mode.client_seconds:g} s (own clients)."
        )
        python = b.results["python"]
        add(f"Python: {python['executable']} ({python['version']}, {python['compiler']}), for every process of the bench's but nginx and wrk.")
        add("Overhead = router latency − direct latency at the same concurrency. Latencies are whole answers unless marked TTFT.")
        for note in b.notes:
            add("NOTE: " + note)
        add("")

        # HTTP unary
        add_block = lines.extend
        add_block(self.latency_block(
            f"== HTTP unary ({UNARY_TOKENS} tokens): direct = POST upstream /v1/chat/completions; floor = nginx proxy_pass ==",
            [(FLASK_FLOOR, FLASK_FLOOR, "flask"), ("router /generate", "/generate", "router"),
             ("router /v1/chat/completions", "/v1/chat/completions", "router")],
            "http-unary", "nginx", "req",
        ))
        add(f"  ({FLASK_FLOOR}: scripts/bench/flask_floor.py, one gunicorn gevent worker (the router's worker class) relaying the bytes over "
            "geventhttpclient (as the router does) with nothing else: what Flask, gunicorn and the upstream call cost before any work of the router's.)")
        floor_best, floor_line = self.knee_line(FLASK_FLOOR, FLASK_FLOOR, FLASK_FLOOR, "http-unary", "flask")
        add(floor_line)
        direct1 = self.find("http-unary", "direct", 1)
        floor1 = self.find(FLASK_FLOOR, "flask", 1)
        floor_p50 = self._overhead(floor1, direct1, "p50_us")
        floor_p99 = self._overhead(floor1, direct1, "p99_us")
        for surface in ("/generate", "/v1/chat/completions"):
            best, line = self.knee_line(surface, surface, surface, "http-unary")
            add(line)
            one = self.find(surface, "router", 1)
            p50 = self._overhead(one, direct1, "p50_us")
            p99 = self._overhead(one, direct1, "p99_us")
            add(self.target(f"HTTP {surface} overhead p50 at c=1", us(p50), "≤ 1 ms", None if p50 is None else p50 <= 1000))
            add(self.target(f"HTTP {surface} overhead p99 at c=1", us(p99), "≤ 3 ms", None if p99 is None else p99 <= 3000))
            add(self.target(f"HTTP {surface} throughput at the knee", rate(best.rate) if best else "no knee", "≥ 1,000/s per worker", bool(best and best.rate >= 1000)))
            # Issue 22: the router against the bare Flask relay of the same run.
            add(self.target(f"HTTP {surface} overhead p50 at c=1, × the bare Flask relay's", ratio(p50, floor_p50), "≤ ×1.3",
                            None if p50 is None or floor_p50 is None else p50 <= 1.3 * floor_p50))
            above = None if p99 is None or floor_p99 is None else p99 - floor_p99
            add(self.target(f"HTTP {surface} overhead p99 at c=1, above the bare Flask relay's", us(above), "≤ 1 ms",
                            None if above is None else above <= 1000))
            share = best.rate / floor_best.rate if best and floor_best else None
            add(self.target(f"HTTP {surface} throughput at the knee, × the bare Flask relay's", ratio(share, 1.0), "≥ ×0.7",
                            None if share is None else share >= 0.7))
        add("")

        # HTTP streams
        stream_surfaces = [("router /v1/chat/completions", "/v1/chat/completions stream"), ("router /stream", "/stream")]
        add_block(self.latency_block(
            f"== HTTP streams ({STREAM_TOKENS} chunks, whole stream): direct = upstream stream; floor = nginx (proxy_buffering off)"
            + (" — one stream per connection (Connection: close), see NOTE" if b.stream_close else "") + " ==",
            [(label, surface, "router") for label, surface in stream_surfaces],
            "http-stream", "nginx", "streams", STREAM_TOKENS,
        ))
        ttft_rows = []
        direct_t = self.find("http-stream ttft", "direct", 1)
        for label, surface, target in [("direct", "http-stream ttft", "direct"), ("nginx", "http-stream ttft", "nginx"),
                                       *[(l, s + " ttft", "router") for l, s in stream_surfaces]]:
            run = self.find(surface, target, 1)
            ttft_rows.append([
                label, us(run and run.ttft_p50_us), us(run and run.ttft_p99_us),
                us(self._overhead(run, direct_t, "ttft_p50_us")) if target != "direct" else "",
                us(self._overhead(run, direct_t, "ttft_p99_us")) if target != "direct" else "",
                str(run.requests if run else 0), str(run.errors if run else 0),
            ])
        add("  time to first token, c=1 (bench client):")
        add("  " + table(["", "TTFT p50", "TTFT p99", "overhead p50", "overhead p99", "n", "errors"], ttft_rows).replace("\n", "\n  "))
        chunk_rows = []
        for label, surface in stream_surfaces:
            latency, cpu, one, many = self.per_chunk(surface, "http-stream")
            chunk_rows.append([label, us(latency), us(cpu), us(one and one.cpu_per_request_us), us(many and many.cpu_per_request_us)])
            self.derived[f"per chunk {surface}"] = {"latency_us": latency, "cpu_us": cpu}
        add(f"  per relayed chunk: the slope between 1-chunk and {SLOPE_TOKENS}-chunk streams, one at a time "
            "(latency: p50 overhead; CPU: the router's per stream):")
        add("  " + table(["", "added latency/chunk", "CPU/chunk", "CPU/stream (1)", f"CPU/stream ({SLOPE_TOKENS})"], chunk_rows).replace("\n", "\n  "))
        for label, surface in stream_surfaces:
            run = self.find(surface + " ttft", "router", 1)
            over = self._overhead(run, direct_t, "ttft_p50_us")
            add(self.target(f"{label} TTFT overhead p50", us(over), "≤ 1 ms", None if over is None else over <= 1000))
            cpu = self.derived[f"per chunk {surface}"]["cpu_us"]
            add(self.target(f"{label} CPU per relayed chunk", us(cpu), "≤ 50 µs", None if cpu is None else cpu <= 50))
        add("")

        # gRPC unary
        add_block(self.latency_block(
            f"== gRPC unary RouteRequest ({UNARY_TOKENS} tokens): direct = the same upstream call from the bench's in-process HTTP client; "
            "floor = bare grpcio relay (scripts/bench/grpc_floor.py) ==",
            [("router gRPC", "grpc-unary", "router")], "grpc-unary", "floor", "req",
        ))
        best, line = self.knee_line("grpc", "gRPC", "grpc-unary", "grpc-unary", per="process")
        add(line)
        one, d1 = self.find("grpc-unary", "router", 1), self.find("grpc-unary", "direct", 1)
        over = self._overhead(one, d1, "p50_us")
        add(self.target("gRPC unary overhead p50 at c=1", us(over), "≤ 1.5 ms", None if over is None else over <= 1500))
        add(self.target("gRPC unary throughput at the knee", rate(best.rate) if best else "no knee", "≥ 800/s per process", bool(best and best.rate >= 800)))
        floor_over = self._overhead(self.find("grpc-unary", "floor", 1), d1, "p50_us")
        add(self.target("gRPC unary overhead p50 at c=1, × the bare grpcio relay's", ratio(over, floor_over), "≤ ×1.2",
                        None if over is None or floor_over is None else over <= 1.2 * floor_over))
        add("")

        # gRPC streams
        add_block(self.latency_block(
            f"== gRPC StreamingRouteRequest ({STREAM_TOKENS} chunks, whole stream) ==",
            [("router gRPC", "grpc-stream", "router")], "grpc-stream", "floor", "streams", STREAM_TOKENS,
        ))
        rows = []
        g_direct = self.find("grpc-stream", "direct", 1, STREAM_TOKENS)
        for label, target in (("direct", "direct"), ("floor", "floor"), ("router gRPC", "router")):
            run = self.find("grpc-stream", target, 1, STREAM_TOKENS)
            rows.append([label, us(run and run.ttft_p50_us), us(run and run.ttft_p99_us),
                         us(self._overhead(run, g_direct, "ttft_p50_us")) if target != "direct" else "",
                         us(self._overhead(run, g_direct, "ttft_p99_us")) if target != "direct" else ""])
        add("  time to first token, c=1:")
        add("  " + table(["", "TTFT p50", "TTFT p99", "overhead p50", "overhead p99"], rows).replace("\n", "\n  "))
        latency, cpu, one, many = self.per_chunk("grpc-stream", "grpc-stream")
        self.derived["per chunk grpc"] = {"latency_us": latency, "cpu_us": cpu}
        add(f"  per relayed chunk (slope between 1 and {SLOPE_TOKENS} chunks, one at a time): added latency {us(latency)}, "
            f"CPU {us(cpu)} (CPU/stream: {us(one and one.cpu_per_request_us)} for 1 chunk, "
            f"{us(many and many.cpu_per_request_us)} for {SLOPE_TOKENS})")
        add("")

        # Capacity
        add(f"== Capacity: streams held open against a slow upstream (first token at once, then silence); target {mode.capacity} ==")
        rows = []
        for name, result in getattr(b, "capacity_results", {}).items():
            rows.append([
                name, f"{result.opened}", f"{result.rss_before_kib / 1024:.1f} MiB", f"{result.rss_after_kib / 1024:.1f} MiB",
                f"{result.rss_per_stream_kib:.1f} KiB ({result.rss_streams})" if result.rss_streams else "—", f"{result.seconds:.1f} s",
                result.failure or "none",
            ])
        add(table(["", "open", "RSS before", "RSS after", "RSS/stream (over n)", "time", "first failure"], rows))
        add("  (a fresh router process each, warmed up with 50 streams; RSS after = with the last complete wave open)")
        http_result = getattr(b, "capacity_results", {}).get("HTTP /stream")
        if http_result is not None:
            add(self.target("open streams per HTTP worker (/stream)", f"{http_result.opened}", f"≥ {mode.capacity}", http_result.opened >= 5000))
            per = http_result.rss_per_stream_kib
            add(self.target("RSS per open stream (HTTP worker)", f"{per:.1f} KiB", "≤ 50 KiB", per <= 50 if http_result.rss_streams else None))
        for name, result in getattr(b, "capacity_results", {}).items():
            if name.startswith("HTTP") and result.opened == SDK_POOL and result.failure:
                add(f"  {name}: {SDK_POOL} open is exactly the openai SDK's default connection pool "
                    "(httpx2 Limits(max_connections=1000)); the next stream waits for a pooled connection.")
        grpc_result = getattr(b, "capacity_results", {}).get("gRPC StreamingRouteRequest")
        if grpc_result is not None and grpc_result.failure:
            add(f"  gRPC: one stream holds one thread of the pool (grpc_max_workers=64, grpc_max_concurrent_rpcs defaults to it), "
                f"so the process caps at the pool size.")
        add("")

        # Honesty about the machine
        router_runs = [r for r in b.runs if r.target in ("router", "nginx", "floor", "flask")]
        busiest = max(router_runs, key=lambda r: r.loader_busy, default=None)
        busy = busiest.loader_busy if busiest else 0.0
        others = b.others_total / b.measured_wall if b.measured_wall else 0.0
        noisy_runs = [r for r in b.runs if r.others_cores > NOISY_CORES]
        stolen_runs = [r for r in b.runs if r.steal_cores > NOISY_CORES]
        worst = max((r.others_cores for r in b.runs), default=0.0)
        add("== The measurement itself ==")
        add(
            f"  load generator (core {LOAD_CORE}, shared with the upstream): busiest run against router/nginx/floor used "
            f"{busy:.0%} of its core"
            + (f" ({busiest.surface}, {busiest.target}, c={busiest.concurrency})" if busiest else "")
            + ("; so it was not the bottleneck" if busy < 0.9 else "; AT ITS LIMIT there: read that rate as a lower bound")
            + ". Direct runs at c=32 are limited by the client by design; they are baselines, not targets."
        )
        add(
            f"  other processes on this machine: {others:.2f} cores on average during the runs, {worst:.2f} at most; "
            f"{len(noisy_runs)} of {len(b.runs)} runs had more than {NOISY_CORES} cores of it (figures marked *)"
            + (". The machine was not quiet: latencies and rates are pessimistic; CPU per request suffers least, "
               "but shifts too (its per-chunk slopes use long streams to stay above that noise)."
               if noisy_runs else ".")
        )
        add(f"  hypervisor steal (/proc/stat): {b.steal_cores():.2f} cores on average during the runs, "
            f"{b.steal_worst:.2f} at most; {len(stolen_runs)} of {len(b.runs)} runs had more than {NOISY_CORES} "
            "cores of it (figures marked *)" + ("." if not stolen_runs else
            ": this virtual machine was kept waiting for its CPUs, which no process here shows; "
            "every figure of those runs is slower, and ratios between runs that it fell on unevenly drift."))
        add("")

        add("== Targets ==")
        for what, value, goal, met in self.targets:
            verdict = "—" if met is None else ("met    " if met else "NOT MET")
            add(f"  {verdict}  {what}: {value} (goal {goal})")
        met_count = sum(1 for *_, met in self.targets if met)
        add(f"  {met_count} of {len(self.targets)} targets met")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="the long run (minutes) instead of the quick one")
    parser.add_argument("--out", default=os.environ.get("BENCH_RESULTS", DEFAULT_RESULTS), help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, configs)")
    args = parser.parse_args()
    mode = FULL if args.full else QUICK

    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            print(f"bench: `{tool}` is not installed; `make bench` installs it (apt-get install -y {tool})", file=sys.stderr)
            return 2
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        print("bench: nginx is not installed; `make bench` installs it", file=sys.stderr)
        return 2
    if (os.cpu_count() or 1) < 2:
        print("bench: needs 2 cores (router on one, load on the other)", file=sys.stderr)
        return 2

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    os.sched_setaffinity(0, {int(LOAD_CORE)})

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="ai-router-bench-"))
    fleet = Fleet(workdir)
    bench = Bench(mode, workdir, fleet)
    ok = False
    try:
        print(f"bench ({mode.name}): working in {workdir}", file=sys.stderr, flush=True)
        bench.write_bodies()
        bench.start_servers()
        progress(f"servers up in {time.monotonic() - started:.1f} s")
        bench.http_unary()
        bench.http_streams()
        bench.grpc()
        bench.capacity()
        fleet.check_alive()
        report = Report(bench)
        text = report.render()
        elapsed = time.monotonic() - started
        print(text)
        print(f"\nfinished in {elapsed:.0f} s; JSON: {args.out}; logs: {workdir if args.keep else '(removed; --keep keeps them)'}")
        bench.results.update(
            elapsed_s=elapsed,
            runs=[asdict(run) for run in bench.runs],
            derived=report.derived,
            targets=[{"what": w, "value": v, "goal": g, "met": m} for w, v, g, m in report.targets],
            notes=bench.notes,
            others_cores_mean=bench.others_total / bench.measured_wall if bench.measured_wall else None,
            steal_cores_mean=bench.steal_cores(),
            steal_cores_max=bench.steal_worst,
        )
        Path(args.out).write_text(json.dumps(bench.results, indent=2, default=str))
        ok = True
    except KeyboardInterrupt:
        print("\nbench: interrupted; stopping what it started", file=sys.stderr)
        return 130
    except RuntimeError as exc:
        print(f"\nbench: {exc}", file=sys.stderr)
        args.keep = True
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fleet.stop_all()
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not ok:
            print(f"bench: logs kept in {workdir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
