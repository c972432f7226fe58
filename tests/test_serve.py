"""`ai-router serve` as one unit on a host: the HTTP /metrics shows its gRPC server's requests
too, so a second serve with ports of its own starts beside the first (issue 21: the gRPC
process's fixed metrics port stopped it), and nothing of a serve is left in the temporary
directory once it has exited, however it stops; nor of `ai-router http` run alone."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
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


@dataclass
class Served:
    process: Process
    http: str
    grpc: str
    temporary: Path  # its TMPDIR

    def ask_grpc(self, stream: bool = False) -> None:
        with grpc.insecure_channel(self.grpc) as channel:
            stub = pb_grpc.AIRouterStub(channel)
            request = pb.AIRequest(provider="openai", prompt="x")
            if stream:
                assert list(stub.StreamingRouteRequest(request, timeout=10))
            else:
                assert stub.RouteRequest(request, timeout=10).content

    def ask_http(self) -> None:
        answer = httpx2.post(f"{self.http}/generate", json={"provider": "openai", "prompt": "x"}, timeout=10)
        assert answer.status_code == 200, answer.text

    def child(self, marker: str) -> int:
        pid = self.process.popen.pid
        for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
            if marker in Path(f"/proc/{child}/cmdline").read_text():
                return int(child)
        raise AssertionError(f"no child of serve runs {marker}")


def serve(name: str, simulator: Simulator, directory: Path, metrics_port: int) -> Served:
    """`ai-router serve` on ports of its own, but for `server.grpc_metrics_port`, and with a
    temporary directory of its own."""
    directory.mkdir()
    temporary = directory / "tmp"
    temporary.mkdir()
    config = RouterConfig(simulator, directory, {"server": {"grpc_metrics_port": metrics_port}})
    http_port, grpc_port = free_port(), free_port()
    env = {
        **config.env(),
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "WEB_CONCURRENCY": "1",
        "TMPDIR": str(temporary),
    }
    process = start_process(name, ["serve"], env, directory, http_port)
    return Served(process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", temporary)


def ready(served: Served) -> None:
    wait_for_port(served.process)
    wait_for_port(served.process, int(served.grpc.rpartition(":")[2]))


@pytest.fixture
def two(simulator: Simulator, tmp_path: Path) -> Iterator[tuple[Served, Served]]:
    # Both configs name one metrics port, as two copies of one config.yaml on a host would.
    metrics_port = free_port()
    first = serve("serve-first", simulator, tmp_path / "first", metrics_port)
    second = serve("serve-second", simulator, tmp_path / "second", metrics_port)
    try:
        for served in (first, second):
            ready(served)
        yield first, second
    finally:
        for served in (first, second):
            served.process.stop()
    assert not port_open(metrics_port)


def requests_counted(served: Served, surface: str) -> float:
    text = httpx2.get(f"{served.http}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "ai_router_requests_total" and sample.labels["surface"] == surface
    )


def test_two_serves_on_one_host_both_serve(two: tuple[Served, Served]) -> None:
    for served in two:
        served.ask_http()
        served.ask_grpc()
        assert served.process.popen.poll() is None


def test_the_grpc_servers_requests_are_in_the_http_metrics(two: tuple[Served, Served]) -> None:
    first, second = two
    first.ask_grpc()
    first.ask_grpc(stream=True)
    first.ask_http()

    # Counted once a call is over, a moment after its answer reached the client.
    wait_until(lambda: requests_counted(first, "grpc") == 2, 10, "both gRPC calls counted")
    wait_until(lambda: requests_counted(first, "generate") == 1, 10, "the HTTP request counted")
    assert requests_counted(first, "grpc") == 2
    assert requests_counted(second, "grpc") == 0  # each serve's metrics are its own


@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT", "a server dies"])
def test_nothing_of_a_serve_is_left_in_the_temporary_directory(
    simulator: Simulator, tmp_path: Path, how: str
) -> None:
    served = serve("serve-cleanup", simulator, tmp_path / "serve", free_port())
    try:
        ready(served)
        served.ask_http()
        served.ask_grpc()
        # While it runs: the config snapshot gunicorn's workers load, and the metrics files.
        assert list(served.temporary.rglob("*.yaml"))
        assert list(served.temporary.rglob("*.db"))

        if how == "a server dies":
            os.kill(served.child("grpc"), signal.SIGKILL)
            served.process.popen.wait(30)
        else:
            served.process.stop(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    finally:
        served.process.stop()

    assert (served.process.popen.returncode == 0) is (how != "a server dies")
    assert sorted(path.name for path in served.temporary.iterdir()) == []


def test_gunicorn_run_alone_removes_the_files_it_made(simulator: Simulator, tmp_path: Path) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    http_port = free_port()
    env = {
        **RouterConfig(simulator, tmp_path).env(),
        "HTTP_PORT": str(http_port),
        "WEB_CONCURRENCY": "1",
        "TMPDIR": str(temporary),
    }
    process = start_process("http-cleanup", ["http"], env, tmp_path, http_port)
    try:
        wait_for_port(process)
        answer = httpx2.post(f"http://127.0.0.1:{http_port}/generate", json={"provider": "openai", "prompt": "x"}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert list(temporary.rglob("*.yaml")) and list(temporary.rglob("*.db"))
    finally:
        process.stop()

    assert process.popen.returncode == 0
    assert sorted(path.name for path in temporary.iterdir()) == []
