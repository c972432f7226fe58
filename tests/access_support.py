"""Helpers for tests/test_access.py: a redis-server of our own, router keys, the usage ledger,
and concurrent bursts of requests."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from support import RouterConfig, free_port, wait_until

COST_HEADER = "X-AI-Router-Cost-USD"
COST_TRAILER = "x-ai-router-cost-usd"


def new_key(label: str) -> str:
    """A fresh router key, unlike any other string a log could hold by chance."""
    return f"rk-{label}-{secrets.token_hex(16)}"


def sha256_hex(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def cost(usage_in: int, usage_out: int, price: dict[str, float]) -> float:
    """USD for the tokens at `price` (USD per million tokens)."""
    return usage_in * price["input"] / 1e6 + usage_out * price["output"] / 1e6


@dataclass
class AccessConfig(RouterConfig):
    """RouterConfig, plus top-level settings that are not sections (`usage_log: path`)."""

    scalars: dict[str, Any] = field(default_factory=dict)

    def write(self) -> Path:
        path = super().write()
        if self.scalars:
            config = yaml.safe_load(path.read_text())
            config.update(self.scalars)
            path.write_text(yaml.safe_dump(config))
        return path


# --- redis-server --------------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as connection:
            connection.sendall(b"*1\r\n$4\r\nPING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """A redis-server on `port` (default: a free one) of loopback, with no persistence. A missing
    binary fails the test: the Redis backend is part of what is tested, not an optional extra."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = port or free_port()
    log_path = directory / "redis.log"
    with log_path.open("wb") as log_file:
        popen = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no",
             "--bind", "127.0.0.1", "--dir", str(directory)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = RedisServer(port, popen, log_path)

    def ready() -> bool:
        if popen.poll() is not None:
            raise RuntimeError(f"redis-server exited early:\n{log_path.read_text()}")
        return redis_ping(port)

    try:
        wait_until(ready, 15, f"redis-server answering PING on {port}")
    except BaseException:
        server.stop()
        raise
    return server


# --- the usage ledger ----------------------------------------------------------------------------


def usage_of(base_url: str, name: str, admin_key: str) -> dict[str, Any]:
    response = httpx2.get(
        f"{base_url}/v1/usage", params={"key": name}, headers=bearer(admin_key), timeout=10
    )
    assert response.status_code == 200, (
        f"GET /v1/usage?key={name} with the admin key: expected 200, got "
        f"{response.status_code} {response.text[:300]}"
    )
    body: dict[str, Any] = response.json()
    return body


def spent(base_url: str, name: str, admin_key: str) -> float:
    return float(usage_of(base_url, name, admin_key)["spent_usd"])


# --- bursts --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    retry_after: str | None
    error_type: str | None
    cost: str | None
    body: str
    finished: float


@dataclass
class Burst:
    outcomes: list[Outcome] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    @property
    def duration(self) -> float:
        return self.ended - self.started

    @property
    def accepted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == 200]

    @property
    def refused(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]


def _error_type(response: httpx2.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("type") if isinstance(error, dict) else None


def burst(
    urls: list[str],
    count: int,
    threads: int,
    body: dict[str, Any],
    headers: dict[str, str],
    path: str = "/generate",
    deadline_seconds: float = 60.0,
) -> Burst:
    """`count` POSTs of `body`, spread round-robin over `urls`, sent by `threads` threads that
    all start together. Every response is recorded, whatever its status."""
    result = Burst()
    lock = threading.Lock()
    jobs = iter(range(count))
    gate = threading.Barrier(threads + 1)
    deadline = time.monotonic() + deadline_seconds

    def work() -> None:
        with httpx2.Client(timeout=30) as client:
            gate.wait()
            while time.monotonic() < deadline:
                with lock:
                    index = next(jobs, None)
                if index is None:
                    return
                response = client.post(urls[index % len(urls)] + path, json=body, headers=headers)
                outcome = Outcome(
                    response.status_code,
                    response.headers.get("Retry-After"),
                    _error_type(response),
                    response.headers.get(COST_HEADER),
                    response.text[:300],
                    time.monotonic(),
                )
                with lock:
                    result.outcomes.append(outcome)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    gate.wait()
    result.started = time.monotonic()
    for worker in workers:
        worker.join(deadline_seconds + 30)
    result.ended = max((o.finished for o in result.outcomes), default=result.started)
    assert len(result.outcomes) == count, (
        f"only {len(result.outcomes)} of {count} requests completed within {deadline_seconds}s"
    )
    return result


# --- logs ----------------------------------------------------------------------------------------


def json_lines(path: Path) -> list[dict[str, Any]]:
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def request_lines(paths: Iterable[Path], where: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [
        entry
        for path in paths
        for entry in json_lines(path)
        if entry.get("message") == "request" and where(entry)
    ]
