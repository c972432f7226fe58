"""The production layout on loopback: three `ai-router serve` replicas behind real nginx running
the project's own nginx.conf, with only its upstream addresses and listen ports rendered."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx2
import pytest
from deploy_support import REPLICA_HEADER, Nginx, descendants, start_nginx, wait_ready
from support import (
    Process,
    RouterConfig,
    Simulator,
    free_port,
    port_open,
    start_process,
    wait_for_port,
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

REPLICAS = 3
NGINX_NOTICE_SECONDS = 0.1
PROMPT = {"provider": "openai", "prompt": "ping"}


@dataclass
class Replica:
    name: str
    process: Process
    http_port: int
    grpc_port: int

    def kill(self) -> None:
        """SIGKILL the whole replica at once, as when its container dies."""
        pids = descendants(self.process.popen.pid)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.popen.wait(timeout=10)


@dataclass
class Deployment:
    replicas: list[Replica]
    http_url: str
    grpc_target: str


@pytest.fixture(scope="module")
def deployment(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """Shared by the tests that leave every replica running."""
    with deploy(simulator_process, tmp_path_factory.mktemp("deployment")) as running:
        yield running


@pytest.fixture
def fresh_deployment(simulator: Simulator, tmp_path: Path) -> Iterator[Deployment]:
    """For the tests that kill or stop a replica."""
    with deploy(simulator, tmp_path) as running:
        yield running


@contextlib.contextmanager
def deploy(simulator: Simulator, tmp_path: Path) -> Iterator[Deployment]:
    env = RouterConfig(simulator, tmp_path).env()
    replicas: list[Replica] = []
    nginx: Nginx | None = None
    try:
        for index in range(REPLICAS):
            name = f"replica-{index}"
            http_port, grpc_port = free_port(), free_port()
            # A replica killed outright cleans nothing up: its run directory goes with the test's.
            temporary = tmp_path / f"{name}-tmp"
            temporary.mkdir()
            replica_env = {
                **env,
                "REPLICA_NAME": name,
                "HTTP_PORT": str(http_port),
                "GRPC_PORT": str(grpc_port),
                "WEB_CONCURRENCY": "1",
                "TMPDIR": str(temporary),
            }
            process = start_process(name, ["serve"], replica_env, tmp_path, http_port)
            replicas.append(Replica(name, process, http_port, grpc_port))
        for replica in replicas:
            wait_ready(replica.process, replica.http_port)
            wait_for_port(replica.process, replica.grpc_port)

        nginx = start_nginx(
            tmp_path, [r.http_port for r in replicas], [r.grpc_port for r in replicas]
        )
        yield Deployment(replicas, nginx.http_url, nginx.grpc_target)
    finally:
        if nginx is not None:
            nginx.stop()
        for replica in replicas:
            replica.process.stop()


def generate(client: httpx2.Client) -> httpx2.Response:
    return client.post("/generate", json=PROMPT)


def grpc_call(stub: pb_grpc.AIRouterStub) -> tuple[str, str]:
    """The replica that answered a unary call, and its content."""
    response, call = stub.RouteRequest.with_call(
        pb.AIRequest(provider="openai", prompt="ping"), timeout=10
    )
    replica = dict(call.trailing_metadata())[REPLICA_HEADER]
    return str(replica), response.content


def test_http_and_grpc_calls_spread_over_every_replica(deployment: Deployment) -> None:
    with httpx2.Client(base_url=deployment.http_url, timeout=10) as client:
        http_spread = Counter(generate(client).headers[REPLICA_HEADER] for _ in range(30))
    # One channel, so one HTTP/2 connection to nginx: balancing must happen per call.
    with grpc.insecure_channel(deployment.grpc_target) as channel:
        stub = pb_grpc.AIRouterStub(channel)
        grpc_spread = Counter(grpc_call(stub)[0] for _ in range(30))

    names = {replica.name for replica in deployment.replicas}
    assert set(http_spread) == names, http_spread
    assert set(grpc_spread) == names, grpc_spread
    print(f"\nreplica spread over 30 calls: HTTP {dict(http_spread)}, gRPC {dict(grpc_spread)}")


def test_a_stream_through_nginx_arrives_incrementally(
    deployment: Deployment, simulator: Simulator
) -> None:
    # nginx consumes the router's X-Accel-Buffering header; the proof is in the timing.
    simulator.set(token_rate=10)  # ~8 tokens: the upstream needs ~0.8 s after its first token
    arrivals = []
    with httpx2.stream(
        "POST", f"{deployment.http_url}/stream", json={**PROMPT, "prompt": "a b c d"}, timeout=10
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append((time.monotonic(), line))

    assert arrivals[-1][1] == "data: [DONE]"
    assert arrivals[-1][0] - arrivals[0][0] > 0.4


@dataclass
class Outcome:
    started: float
    finished: float
    ok: bool
    detail: str


def steady_load(
    send: Callable[[], tuple[bool, str]], stop: threading.Event, workers: int
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def loop() -> None:
        while not stop.is_set():
            started = time.monotonic()
            ok, detail = send()
            with lock:
                outcomes.append(Outcome(started, time.monotonic(), ok, detail))

    with ThreadPoolExecutor(workers) as pool:
        for _ in range(workers):
            pool.submit(loop)
        stop.wait()
    return outcomes


def test_killing_a_replica_under_load_fails_only_its_in_flight_requests(
    fresh_deployment: Deployment, simulator: Simulator
) -> None:
    deployment = fresh_deployment
    simulator.set(latency=0.05)  # keep requests in flight long enough to be caught by the kill
    http = httpx2.Client(base_url=deployment.http_url, timeout=10)
    channel = grpc.insecure_channel(deployment.grpc_target)
    stub = pb_grpc.AIRouterStub(channel)

    def send_http() -> tuple[bool, str]:
        response = generate(http)
        return response.status_code == 200, f"{response.status_code} {response.text[:120]}"

    def send_grpc() -> tuple[bool, str]:
        try:
            return True, grpc_call(stub)[0]
        except grpc.RpcError as error:
            return False, f"{error.code().name} {error.details()}"

    stop = threading.Event()
    results: dict[str, list[Outcome]] = {}
    threads = [
        threading.Thread(target=lambda: results.update(http=steady_load(send_http, stop, 3))),
        threading.Thread(target=lambda: results.update(grpc=steady_load(send_grpc, stop, 3))),
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    killed_at = time.monotonic()
    victim = deployment.replicas[1]
    victim.kill()
    # The kill has taken effect once the replica's ports refuse connections. nginx learns of it
    # from the kernel closing its idle keep-alive connections to the replica, which it handles
    # within its next event-loop turn; a request it had already sent down one of them was in
    # flight on that replica.
    wait_until(
        lambda: not port_open(victim.http_port) and not port_open(victim.grpc_port), 5, "death"
    )
    time.sleep(NGINX_NOTICE_SECONDS)
    dead_at = time.monotonic()
    time.sleep(2.5)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    http.close()
    channel.close()

    for surface, outcomes in results.items():
        before = [o for o in outcomes if o.finished < killed_at]
        after = [o for o in outcomes if o.started > dead_at]
        in_flight = [o for o in outcomes if o not in before and o not in after]
        failed_after = [o.detail for o in after if not o.ok]
        failed_in_flight = [o.detail for o in in_flight if not o.ok]
        print(
            f"\n{surface}: {len(before)} before the kill, {len(in_flight)} in flight "
            f"({len(failed_in_flight)} failed), {len(after)} after (failed: {len(failed_after)})"
        )
        assert before and after and all(o.ok for o in before)
        assert failed_after == []
        for detail in failed_in_flight:
            assert detail.startswith(("502", "UNAVAILABLE")), detail


def test_sigterm_drains_a_replica(fresh_deployment: Deployment, simulator: Simulator) -> None:
    deployment = fresh_deployment
    simulator.set(token_rate=5)  # a stream of ~7 tokens: ~1.4 s
    with httpx2.Client(base_url=deployment.http_url, timeout=15) as client:
        with client.stream("POST", "/stream", json={**PROMPT, "prompt": "a b c"}) as stream:
            draining = next(
                r for r in deployment.replicas if r.name == stream.headers[REPLICA_HEADER]
            )
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data: "))
            draining.process.popen.send_signal(signal.SIGTERM)
            # Draining has begun once the replica refuses new connections.
            wait_until(lambda: not port_open(draining.http_port), 5, "the listener closed")
            simulator.set(token_rate=0)
            others = [generate(client) for _ in range(10)]
            rest = [line for line in lines if line.startswith("data: ")]

        assert rest[-1] == "data: [DONE]"  # the in-flight stream completed
        assert all(r.status_code == 200 for r in others)
        assert draining.name not in {r.headers[REPLICA_HEADER] for r in others}
    assert draining.process.popen.wait(timeout=30) == 0
