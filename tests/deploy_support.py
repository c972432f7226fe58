"""Helpers for the tests that run the project's deployment on loopback (test_deploy.py,
test_compose.py): the project's nginx.conf rendered for loopback ports and run by real nginx, a
replica's readiness, and the processes a replica started."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx2
from support import REPO_ROOT, Process, free_port, port_open, wait_until

REPLICA_HEADER = "x-ai-router-replica"
# A bound on failure, not a wait. Each HTTP worker imports the provider SDKs, seconds of CPU;
# three replicas of two workers starting at once on a busy 2-core machine have taken over 30 s.
READY_TIMEOUT = 90.0


def render_nginx_conf(http_ports: list[int], grpc_ports: list[int], listen: tuple[int, int]) -> str:
    """nginx.conf with its two `server ai-router:...` lines made one per replica's loopback port,
    and its two `listen` ports made `listen`; nothing else changed."""
    conf = (REPO_ROOT / "nginx.conf").read_text()
    substitutions = [
        (r"server ai-router:8080 ([^;]*);", _servers(http_ports)),
        (r"server ai-router:50051 ([^;]*);", _servers(grpc_ports)),
        (r"listen 80;", f"listen 127.0.0.1:{listen[0]};"),
        (r"listen 8000 http2;", f"listen 127.0.0.1:{listen[1]} http2;"),
    ]
    for pattern, replacement in substitutions:
        conf, count = re.subn(pattern, replacement, conf)
        assert count == 1, f"nginx.conf no longer has exactly one {pattern!r}"
    return conf


def _servers(ports: list[int]) -> str:
    return "\n        ".join(f"server 127.0.0.1:{port} \\1;" for port in ports)


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    assert found, "nginx is required: `apt-get install -y nginx` (.ci/run does it)"
    return found


@dataclass
class Nginx:
    popen: subprocess.Popen[bytes]
    http_url: str
    grpc_target: str

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGQUIT)  # graceful
            self.popen.wait(timeout=10)


def start_nginx(directory: Path, http_ports: list[int], grpc_ports: list[int]) -> Nginx:
    """Real nginx on two free loopback ports, running the project's nginx.conf in front of the
    replicas' ports; it has started once both ports accept connections."""
    listen = (free_port(), free_port())
    conf = directory / "nginx.conf"
    conf.write_text(render_nginx_conf(http_ports, grpc_ports, listen))
    popen = subprocess.Popen(
        [
            nginx_binary(),
            "-p", str(directory),
            "-e", str(directory / "nginx-error.log"),
            "-c", str(conf),
            "-g", f"daemon off; pid {directory / 'nginx.pid'};",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    nginx = Nginx(popen, f"http://127.0.0.1:{listen[0]}", f"127.0.0.1:{listen[1]}")

    def listening() -> bool:
        if popen.poll() is not None:
            error_log = directory / "nginx-error.log"
            raise RuntimeError(f"nginx exited early:\n{error_log.read_text(errors='replace')}")
        return port_open(listen[0]) and port_open(listen[1])

    try:
        wait_until(listening, 10, "nginx listening")
    except BaseException:
        nginx.stop()
        raise
    return nginx


def wait_ready(process: Process, http_port: int) -> None:
    """Until the replica's GET /readyz answers 200. gunicorn listens before its workers have
    loaded the app; a request meanwhile waits in the listen queue and is answered as soon as a
    worker takes it, so each try waits for that event rather than polling."""
    url = f"http://127.0.0.1:{http_port}/readyz"

    def ready() -> bool:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited early:\n{process.log()}")
        try:
            return httpx2.get(url, timeout=READY_TIMEOUT).status_code == 200
        except httpx2.HTTPError:
            return False

    wait_until(ready, READY_TIMEOUT, f"{process.name} ready")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, read from /proc while they run."""
    pids, frontier = [], [pid]
    while frontier:
        pid = frontier.pop()
        pids.append(pid)
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except FileNotFoundError:
            continue
        frontier.extend(int(child) for child in children)
    return pids
