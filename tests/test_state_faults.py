"""Limits and budgets through faults, on the real servers: a worker killed while its key holds
slots, and a Redis that dies under a running router (on every surface, and in /readyz)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx2
import pytest
from access_support import (
    RedisServer,
    bearer,
    json_lines,
    new_key,
    sha256_hex,
    start_redis,
    usage_of,
)
from support import (
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_for_worker,
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

LEASE_SECONDS = 2.0
STORE_TIMEOUT = 0.5
KEY = new_key("pair")
ADMIN_KEY = new_key("admin")
ADMIN_ENV = "STATE_FAULTS_ADMIN_KEY"
MODEL = "openai/gpt-4o-mini"
GRPC_SURFACE = "grpc"
PAIR = {"name": "pair", "key_sha256": sha256_hex(KEY), "max_concurrent": 2,
        "budget_usd": 100.0, "budget_period": "1d"}


@dataclass
class Router:
    http: Process
    grpc_process: Process | None
    url: str
    grpc_target: str

    def stop(self) -> None:
        self.http.stop()
        if self.grpc_process is not None:
            self.grpc_process.stop()

    def worker_pids(self) -> list[int]:
        pid = self.http.popen.pid  # `ai-router http` execs gunicorn: this is its master
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def generate(self, timeout: float = 10) -> httpx2.Response:
        return httpx2.post(f"{self.url}/generate", json={"model": MODEL, "prompt": "a"},
                           headers=bearer(KEY), timeout=timeout)


def start_router(simulator: Simulator, directory: Path, state: dict[str, Any],
                 with_grpc: bool = False) -> Router:
    directory.mkdir()
    config = RouterConfig(
        simulator,
        directory,
        {
            "auth": {"admin_key_env": ADMIN_ENV, "keys": [PAIR]},
            "state": {**state, "lease_seconds": LEASE_SECONDS, "timeout_seconds": STORE_TIMEOUT},
        },
    )
    http_port, grpc_port = free_port(), free_port()
    env = {**config.env(), ADMIN_ENV: ADMIN_KEY, "HTTP_PORT": str(http_port),
           "GRPC_PORT": str(grpc_port)}
    http = start_process(f"{directory.name}-http", ["http"], {**env, "WEB_CONCURRENCY": "1"},
                         directory, http_port)
    grpc_process = (start_process(f"{directory.name}-grpc", ["grpc"], env, directory, grpc_port)
                    if with_grpc else None)
    router = Router(http, grpc_process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}")
    try:
        wait_for_port(http)
        if grpc_process is not None:
            wait_for_port(grpc_process)
    except BaseException:
        router.stop()
        raise
    return router


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path)
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_the_slots_and_spend_of_a_killed_worker_come_back_within_the_lease(
    simulator: Simulator, tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        state = {"backend": "redis", "url": server.url}
    else:
        state = {"backend": "sqlite", "path": str(tmp_path / "state.db")}
    router = start_router(simulator, tmp_path / f"killed-{backend}", state)
    try:
        simulator.set(token_rate=2)  # streams that outlive the worker
        streams = [httpx2.Client(base_url=router.url, timeout=20) for _ in range(2)]
        open_streams = [  # kept referenced: a response collected would close its connection
            client.send(client.build_request("POST", "/stream", headers=bearer(KEY),
                                             json={"model": MODEL, "prompt": "w w w"}),
                        stream=True)
            for client in streams
        ]
        lines = [response.iter_lines() for response in open_streams]  # referenced, as above
        for response, stream_lines in zip(open_streams, lines):
            assert response.status_code == 200
            assert next(stream_lines).startswith("data: ")
        assert router.generate().status_code == 429  # both slots are held
        assert usage_of(router.url, "pair", ADMIN_KEY)["reserved_usd"] > 0

        (worker,) = router.worker_pids()
        os.kill(worker, signal.SIGKILL)
        killed = time.monotonic()
        for client in streams:
            client.close()
        simulator.reset()  # answers at once again: the wait below is the slots', not theirs
        # gunicorn boots a new worker meanwhile: seconds, more on a loaded machine, and no
        # request is answered before it. The slots are due back by the later of the two.
        wait_for_worker(router.url)
        booted_after = time.monotonic() - killed
        wait_until(lambda: router.generate().status_code == 200, LEASE_SECONDS + 10,
                   "the key served again")
        back_after = time.monotonic() - killed

        print(f"\n{backend}: the key's slots back {back_after:.2f}s after kill -9 "
              f"(lease {LEASE_SECONDS:g}s, a new worker answering after {booted_after:.2f}s)")
        assert back_after <= max(LEASE_SECONDS, booted_after) + 3.0
        assert usage_of(router.url, "pair", ADMIN_KEY)["reserved_usd"] == 0
    finally:
        router.stop()


def test_a_dead_redis_is_503_unavailable_at_once_on_every_surface_then_recovers(
    simulator: Simulator, tmp_path: Path, redis_server: RedisServer
) -> None:
    router = start_router(simulator, tmp_path / "outage", {"backend": "redis",
                                                          "url": redis_server.url},
                          with_grpc=True)
    channel = grpc.insecure_channel(router.grpc_target)
    stub = pb_grpc.AIRouterStub(channel)
    metadata = [("authorization", f"Bearer {KEY}")]
    try:
        assert router.generate().status_code == 200
        assert httpx2.get(f"{router.url}/readyz").json()["state"] == {"ready": True}
        redis_server.stop()

        asked = time.monotonic()
        native = router.generate()
        native_after = time.monotonic() - asked
        openai = httpx2.post(
            f"{router.url}/v1/chat/completions", headers=bearer(KEY), timeout=10,
            json={"model": MODEL, "messages": [{"role": "user", "content": "a"}]},
        )
        with pytest.raises(grpc.RpcError) as refused:
            stub.RouteRequest(pb.AIRequest(model=MODEL, prompt="a"), metadata=metadata, timeout=10)

        print(f"\nRedis dead: /generate answered 503 in {native_after * 1000:.0f} ms")
        assert native.status_code == 503, native.text
        assert native.json()["error"]["type"] == "unavailable"
        assert native.json()["error"]["message"].startswith("state store unavailable: Redis at")
        assert native.headers["Retry-After"].isdigit()
        assert native_after < 3.0  # answered, not hung on the dead store
        assert openai.status_code == 503
        assert openai.json()["error"]["message"].startswith("state store unavailable")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "state store unavailable" in (refused.value.details() or "")
        wait_until(lambda: httpx2.get(f"{router.url}/readyz").status_code == 503,
                   LEASE_SECONDS, "/readyz saying the store is unavailable")
        readiness = httpx2.get(f"{router.url}/readyz").json()
        assert readiness["status"] == "state store unavailable"
        assert readiness["state"]["ready"] is False

        (tmp_path / "again").mkdir()
        restarted = start_redis(tmp_path / "again", redis_server.port)  # as a restarted container
        try:
            back = time.monotonic()
            wait_until(lambda: router.generate().status_code == 200, 5, "served again")
            served_after = time.monotonic() - back
            wait_until(lambda: httpx2.get(f"{router.url}/readyz").status_code == 200,
                       LEASE_SECONDS, "/readyz ready again")
            print(f"Redis back: served again after {served_after * 1000:.0f} ms")
            response = stub.RouteRequest(pb.AIRequest(model=MODEL, prompt="a"),
                                         metadata=metadata, timeout=10)
            assert response.content
        finally:
            restarted.stop()
    finally:
        channel.close()
        router.stop()

    # Each refusal is one request line with the status the client got, on both front doors,
    # and no traceback.
    assert router.grpc_process is not None
    lines = [entry for process in (router.http, router.grpc_process)
             for entry in json_lines(process.log_path)]
    refusals = [entry for entry in lines
                if entry.get("message") == "request" and entry.get("status") == "unavailable"]
    assert len(refusals) >= 3, json.dumps(refusals)[:2000]
    assert {entry.get("surface") for entry in refusals} >= {"generate", "openai", GRPC_SURFACE}
    assert not [entry for entry in lines if "Traceback" in json.dumps(entry)]
