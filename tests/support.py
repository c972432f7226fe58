"""Helpers for tests that run the real servers as processes on loopback ports."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
OPENAI_TEST_KEY = "sk-test-openai-0123456789abcdef"
ANTHROPIC_TEST_KEY = "sk-ant-test-0123456789abcdef"
START_TIMEOUT = 30.0


# A port is picked here and bound later by the server started with it. Picked by bind(0), it came
# from the kernel's ephemeral range, where the other pytest process (make test runs two) and
# every client's outgoing connection take theirs: one took a replica's port in between. So each
# pytest process hands out, in turn, ports of a slice of its own just below that range.
PORT_SLICE = 2000


def _port_slice() -> range:
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    process = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    end = ephemeral_low - process * PORT_SLICE
    if end - PORT_SLICE < 1024:
        raise RuntimeError(f"no room for test ports below the ephemeral range at {ephemeral_low}")
    return range(end - PORT_SLICE, end)


PORTS = _port_slice()
_next_port = iter(range(len(PORTS) * 2))


def free_port() -> int:
    """A port of this process's slice that nothing is bound to, each one in turn."""
    for turn in _next_port:
        port = PORTS[turn % len(PORTS)]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"every port of {PORTS} taken twice over")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} did not happen within {timeout}s")


def worker_answers(url: str) -> bool:
    """Whether a router at `url` answers: gunicorn's master opens the port before a worker has
    booted, which takes seconds on a loaded machine."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_for_worker(url: str, timeout: float = 60) -> None:
    wait_until(lambda: worker_answers(url), timeout, f"a worker of the router at {url}")


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


# Every router process's log (stderr) of the session, scanned at the end (conftest.py).
ROUTER_LOGS: list[Path] = []


@dataclass
class Process:
    """A server we started; stopped by its own PID only. Its stderr (the log) and stdout
    (what it tells a person) go to two files."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0
    http_port: int = 0  # where its gunicorn answers, for `http` and `serve`

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    @property
    def output_path(self) -> Path:
        return self.log_path.with_suffix(".out")

    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def log(self) -> str:
        return self.output() + self.log_path.read_text(errors="replace")


def start_process(
    name: str, arguments: list[str], env: Mapping[str, str], log_dir: Path, port: int = 0
) -> Process:
    """`python -m ai_router.cli ARGUMENTS` from the repository, with this environment plus `env`."""
    command = [sys.executable, "-m", "ai_router.cli", *arguments]
    router = arguments[0] != "simulate"
    process = launch(name, command, {**os.environ, **env}, REPO_ROOT, log_dir, port, router)
    if arguments[0] in ("http", "serve"):
        process.http_port = int(env.get("HTTP_PORT") or port)
    return process


def launch(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    cwd: Path,
    log_dir: Path,
    port: int = 0,
    router: bool = True,
) -> Process:
    """`command` with exactly `env`, in `cwd`. A router's log joins the session's scan."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file, log_path.with_suffix(".out").open("wb") as out_file:
        popen = subprocess.Popen(
            command, env=dict(env), cwd=cwd, stdout=out_file, stderr=log_file
        )
    if router:
        ROUTER_LOGS.append(log_path)
    return Process(name, popen, log_path, port)


def wait_for_port(process: Process, port: int | None = None) -> None:
    """Until `port` accepts connections; on a router's HTTP port, until one of its workers
    answers too (gunicorn's master binds it before they have booted)."""
    port = port or process.port

    def alive(check: Callable[[], bool]) -> Callable[[], bool]:
        def checked() -> bool:
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited early:\n{process.log()}")
            return check()

        return checked

    wait_until(alive(lambda: port_open(port)), START_TIMEOUT, f"{process.name} listening on {port}")
    if port == process.http_port:
        url = f"http://127.0.0.1:{port}"
        wait_until(alive(lambda: worker_answers(url)), 60, f"a worker of {process.name}")


@dataclass
class Simulator:
    """A running `ai-router simulate` and its control API."""

    port: int
    process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._call("POST", "/_sim/reset", {})

    def set(self, **settings: float) -> None:
        self._call("POST", "/_sim/settings", settings)

    def fail_next(self, *faults: dict[str, Any]) -> None:
        self._call("POST", "/_sim/faults", {"faults": list(faults)})

    def requests(self) -> list[dict[str, Any]]:
        recorded: list[dict[str, Any]] = self._call("GET", "/_sim/requests")["requests"]
        return recorded

    def last_request(self) -> dict[str, Any]:
        return self.requests()[-1]


@dataclass
class RouterConfig:
    """A config file for the router under test, pointing both providers at the simulator."""

    simulator: Simulator
    directory: Path
    overrides: dict[str, Any] = field(default_factory=dict)

    def write(self) -> Path:
        config: dict[str, Any] = {
            "server": {
                "host": "127.0.0.1",
                "max_body_bytes": 64 * 1024,
                "grpc_grace_seconds": 5,
                "grpc_metrics_port": 0,  # many gRPC servers run at once; a test that needs
                # their metrics gives them a port of their own
            },
            "providers": {
                "openai": {
                    "default_model": "gpt-4o-mini",
                    "default_max_tokens": 64,
                    "timeout": 3,
                    "max_retries": 0,
                },
                "anthropic": {
                    "default_model": "claude-3-5-haiku-20241022",
                    "default_max_tokens": 64,
                    "timeout": 3,
                    "max_retries": 0,
                },
                # An OpenAI-compatible provider whose key (SPARE_API_KEY) is never set.
                "spare": {"type": "openai", "default_model": "spare-model"},
            },
            # The test's own state file: the default is in the working directory, the
            # repository's, which every test and run would then share.
            "state": {"path": str(self.directory / "state.db")},
        }
        for section, values in self.overrides.items():
            config[section] = {**config.get(section, {}), **values}
        path = self.directory / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        return path

    def env(self) -> dict[str, str]:
        return {
            "CONFIG_PATH": str(self.write()),
            "OPENAI_API_KEY": OPENAI_TEST_KEY,
            "ANTHROPIC_API_KEY": ANTHROPIC_TEST_KEY,
            "OPENAI_BASE_URL": f"{self.simulator.url}/v1",
            "ANTHROPIC_BASE_URL": self.simulator.url,
        }


@contextmanager
def http_and_grpc(
    name: str, env: Mapping[str, str], directory: Path, workers: int = 1
) -> Iterator[tuple[str, str, list[Process]]]:
    """`ai-router http` (`workers` gunicorn workers) and `ai-router grpc` with `env`, each on a
    free port, stopped after: (HTTP URL, gRPC target, the two processes)."""
    http_port, grpc_port = free_port(), free_port()
    env = {**env, "HTTP_PORT": str(http_port), "GRPC_PORT": str(grpc_port)}
    processes = [
        start_process(f"{name}-http", ["http"], {**env, "WEB_CONCURRENCY": str(workers)}, directory),
        start_process(f"{name}-grpc", ["grpc"], env, directory),
    ]
    try:
        wait_for_port(processes[0], http_port)
        wait_for_port(processes[1], grpc_port)
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", processes
    finally:
        for process in processes:
            process.stop()
