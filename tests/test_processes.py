"""Whole processes: `ai-router serve` with the simulator, graceful stops, and what each imports."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import httpx2
import pytest
import yaml
from access_support import json_lines
from grpc_health.v1 import health_pb2, health_pb2_grpc
from support import (
    REPO_ROOT,
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    status = Path(f"/proc/{pid}/stat").read_text().split()[2]
    return status != "Z"


def thread_state(pid: int, thread: int) -> str:
    """R running, S asleep, ... (proc(5)): the third field of the thread's stat."""
    return Path(f"/proc/{pid}/task/{thread}/stat").read_text().rpartition(")")[2].split()[0]


def child_pids(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_serve_without_keys_uses_the_simulator_and_stops_everything_on_sigterm(
    tmp_path: Path,
) -> None:
    grpc_port, http_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text((REPO_ROOT / "config.yaml").read_text())
    env = {
        "CONFIG_PATH": str(config),
        "GRPC_PORT": str(grpc_port),
        "HTTP_PORT": str(http_port),
        "GRPC_METRICS_PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        "OPENAI_API_KEY": "",
        "ANTHROPIC_API_KEY": "",
        "OPENAI_BASE_URL": "",
        "ANTHROPIC_BASE_URL": "",
        "GEMINI_API_KEY": "",
        "GEMINI_BASE_URL": "",
        "AWS_ACCESS_KEY_ID": "",
        "AWS_BEARER_TOKEN_BEDROCK": "",
        "BEDROCK_BASE_URL": "",
    }
    serve = start_process("serve", ["serve"], env, tmp_path, http_port)
    try:
        wait_for_port(serve)
        wait_for_port(serve, grpc_port)
        first_lines = serve.output().splitlines()[:3]
        assert any("built-in provider simulator" in line for line in first_lines), first_lines

        http = httpx2.post(
            f"http://127.0.0.1:{http_port}/generate",
            json={"provider": "anthropic", "prompt": "ping"},
            timeout=10,
        )
        assert http.status_code == 200 and http.json()["content"].endswith(": ping")
        # Gemini too: the simulator speaks its wire.
        gemini = httpx2.post(
            f"http://127.0.0.1:{http_port}/generate",
            json={"provider": "gemini", "prompt": "ping"},
            timeout=10,
        )
        assert gemini.status_code == 200 and gemini.json()["content"] == "Simulated reply from gemini-2.5-flash: ping"
        # And Bedrock, its requests signed with the simulator's AWS credentials, which it checks.
        bedrock = httpx2.post(
            f"http://127.0.0.1:{http_port}/generate",
            json={"provider": "bedrock", "prompt": "ping"},
            timeout=10,
        )
        assert bedrock.status_code == 200, bedrock.text
        assert bedrock.json()["content"] == "Simulated reply from anthropic.claude-3-5-haiku-20241022-v1:0: ping"
        with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            reply = pb_grpc.AIRouterStub(channel).RouteRequest(
                pb.AIRequest(provider="openai", prompt="pong"), timeout=10
            )
        assert reply.content.endswith(": pong")

        children = child_pids(serve.popen.pid)
        assert len(children) == 3  # simulator, gRPC server, gunicorn master
    finally:
        code = serve.stop(signal.SIGTERM, timeout=30)

    assert code == 0, serve.log()
    assert not [pid for pid in children if pid_alive(pid)]


def test_the_grpc_server_drains_in_flight_rpcs_on_sigterm(
    simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = {**RouterConfig(simulator, tmp_path).env(), "GRPC_PORT": str(port)}
    process = start_process("grpc-drain", ["grpc"], env, tmp_path, port)
    try:
        wait_for_port(process)
        simulator.set(token_rate=10)  # a stream of ~6 tokens takes ~0.6 s
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.AIRouterStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            stream = stub.StreamingRouteRequest(
                pb.AIRequest(provider="openai", prompt="a b c"), timeout=10
            )
            first = next(stream)
            process.popen.send_signal(signal.SIGTERM)
            signalled_at = time.monotonic()

            def not_serving() -> bool:
                reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
                return bool(reply.status == health_pb2.HealthCheckResponse.NOT_SERVING)

            wait_until(not_serving, 5, "health NOT_SERVING after SIGTERM")
            rest = list(stream)
        assert first.content and rest[-1].finish_reason == "stop"
        assert process.popen.wait(timeout=10) == 0
        print(f"\ngRPC drain: stream completed, exit 0 {time.monotonic() - signalled_at:.2f}s "
              "after SIGTERM")
    finally:
        process.stop()


def test_the_grpc_server_stops_on_a_sigterm_that_reaches_another_of_its_threads(
    simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = {**RouterConfig(simulator, tmp_path).env(), "GRPC_PORT": str(port)}
    process = start_process("grpc-thread-signal", ["grpc"], env, tmp_path, port)
    try:
        wait_for_port(process)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = pb_grpc.AIRouterStub(channel).RouteRequest(
                pb.AIRequest(provider="openai", prompt="hi"), timeout=10
            )
        assert reply.content
        pid = process.popen.pid
        wait_until(lambda: thread_state(pid, pid) == "S", 10, "the main thread asleep")
        threads = sorted(int(task.name) for task in Path(f"/proc/{pid}/task").iterdir())
        # kill() given a thread's id signals the whole process, but offers it to that thread
        # first: here, the earliest thread after the main one, grpc's own, which lives as long.
        os.kill(threads[1], signal.SIGTERM)
        assert process.popen.wait(timeout=15) == 0, process.log()
        assert "gRPC server stopped" in process.log()
    finally:
        process.stop()


def test_gunicorn_finishes_an_open_stream_on_sigterm(
    simulator: Simulator, tmp_path: Path
) -> None:
    port = free_port()
    env = {**RouterConfig(simulator, tmp_path).env(), "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}
    process = start_process("http-drain", ["http"], env, tmp_path, port)
    try:
        wait_for_port(process)
        simulator.set(token_rate=10)
        with httpx2.stream(
            "POST",
            f"http://127.0.0.1:{port}/stream",
            json={"provider": "anthropic", "prompt": "a b c"},
            timeout=10,
        ) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            process.popen.send_signal(signal.SIGTERM)
            signalled_at = time.monotonic()
            rest = [line for line in lines if line.startswith("data:")]
        assert rest[-1] == "data: [DONE]"
        assert process.popen.wait(timeout=15) == 0
        print(f"\nHTTP drain: stream completed, exit 0 {time.monotonic() - signalled_at:.2f}s "
              "after SIGTERM")
    finally:
        process.stop()


def test_a_draining_worker_answers_with_connection_close_and_ends_a_stream_past_its_grace(
    simulator: Simulator, tmp_path: Path
) -> None:
    port, grace = free_port(), 4
    config = RouterConfig(simulator, tmp_path, {"server": {"http_grace_seconds": grace}})
    env = {**config.env(), "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}
    process = start_process("http-grace", ["http"], env, tmp_path, port)
    kept = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        wait_for_port(process)
        kept.request("GET", "/healthz")
        first = kept.getresponse()
        first.read()
        assert not first.will_close
        simulator.set(token_rate=3)  # 34 tokens: about 11 s, past the grace
        long_prompt = {"provider": "openai", "prompt": " ".join(["w"] * 30)}
        with httpx2.stream("POST", f"http://127.0.0.1:{port}/stream", json=long_prompt,
                           timeout=30) as stream:
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("data:"))
            process.popen.send_signal(signal.SIGTERM)
            signalled_at = time.monotonic()
            wait_until(lambda: not port_open(port), 5, "the listener closed")

            # A request on a connection kept alive from before: answered, and the connection
            # closed after it, so that the client opens its next one elsewhere.
            kept.request("GET", "/healthz")
            answer = kept.getresponse()
            answer.read()
            assert answer.status == 200
            assert answer.getheader("Connection") == "close" and answer.will_close

            rest = [line for line in lines if line.startswith("data:")]
            ended_after = time.monotonic() - signalled_at
        last = json.loads(rest[-1].removeprefix("data:"))
        assert last["error"]["type"] == "unavailable", rest[-3:]
        assert "grace period" in last["error"]["message"]
        assert grace / 2 <= ended_after < grace  # ended by the worker, before the master's kill
        assert process.popen.wait(timeout=15) == 0
        print(f"\nHTTP drain: the stream past its grace ended with an error event "
              f"{ended_after:.2f}s after SIGTERM (grace {grace}s)")
        logged = [entry for entry in json_lines(process.log_path)
                  if entry.get("message") == "request" and entry.get("surface") == "stream"]
        assert [entry["status"] for entry in logged] == ["unavailable"]
    finally:
        kept.close()
        process.stop()


def test_an_idle_keep_alive_connection_is_closed_after_gunicorns_keepalive(http_url: str) -> None:
    connection = http.client.HTTPConnection(http_url.removeprefix("http://"), timeout=15)
    try:
        for pause in (0.0, 1.0):  # a connection used again within keepalive stays open
            time.sleep(pause)
            connection.request("GET", "/healthz")
            response = connection.getresponse()
            response.read()
            assert response.status == 200 and not response.will_close
        idle_since = time.monotonic()
        assert connection.sock is not None
        closed = connection.sock.recv(1) == b""  # waits for the server to close it
        idle = time.monotonic() - idle_since
    finally:
        connection.close()

    assert closed
    assert 4.0 <= idle < 10.0, idle  # gunicorn.conf.py: keepalive = 5


def raw_exchange(http_url: str, head: bytes) -> bytes:
    """Send `head` (a request without a body) and read until the server closes or answers."""
    host, _, port = http_url.removeprefix("http://").partition(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = connection.recv(65536)
            if not data:
                break
            answer += data
        return answer


def test_request_headers_reach_the_app(http_url: str) -> None:
    answer = raw_exchange(
        http_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: first\r\nConnection: close\r\n\r\n"
    )

    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nX-Request-ID: first\r\n" in answer


@pytest.mark.parametrize(
    ("bad_headers", "status"),
    [
        (b"no colon\r\n", b"400"),
        (b"Host : x\r\n", b"400"),
        (b"X-Folded: first\r\n part\r\n", b"400"),  # obsolete line folding (RFC 9112 5.2)
        (b"".join(b"X-%d: v\r\n" % n for n in range(101)), b"431"),
    ],
    ids=["no colon", "space before colon", "a folded line", "101 headers"],
)
def test_a_request_with_malformed_headers_is_refused(
    http_url: str, bad_headers: bytes, status: bytes
) -> None:
    answer = raw_exchange(http_url, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + bad_headers + b"\r\n")

    assert answer.startswith(b"HTTP/1.1 " + status + b" ")


def test_an_invalid_config_stops_start_up_with_the_file_and_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"providers": {"openai": {"default_model": "m", "timeout": -1}}}))

    for command in ("grpc", "http", "serve"):
        result = subprocess.run(
            [sys.executable, "-m", "ai_router.cli", command],
            env={**os.environ, "CONFIG_PATH": str(config)},
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 2
        assert f"{config}: providers.openai.timeout: Input should be greater than 0" in result.stderr


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [("ai_router.http_api.server.wsgi", "grpc"), ("ai_router.router", "flask")],
)
def test_each_process_loads_only_what_it_serves(module: str, forbidden: str) -> None:
    # The gevent process must never import grpc; the core imports neither front door's library.
    code = f"import sys, {module}; print({forbidden!r} in sys.modules)"
    env = {**os.environ, "CONFIG_PATH": str(REPO_ROOT / "config.yaml")}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.stdout.strip() == "False", result.stderr


def test_a_stream_cancelled_by_the_grpc_client_releases_the_upstream(
    grpc_channel: grpc.Channel, simulator: Simulator
) -> None:
    simulator.set(token_rate=5)
    stream = pb_grpc.AIRouterStub(grpc_channel).StreamingRouteRequest(
        pb.AIRequest(provider="openai", prompt=" ".join(["w"] * 40)), timeout=30
    )
    next(stream)
    stream.cancel()
    cancelled_at = time.monotonic()

    # The simulator records how each stream ended; a released upstream ends early, not after
    # the ~9 s the whole answer would take.
    def upstream_closed() -> bool:
        return any(r.get("closed_early") for r in simulator.requests())

    wait_until(upstream_closed, 5, "the upstream stream closed after the client cancelled")
    took = time.monotonic() - cancelled_at
    print(f"\ngRPC cancel reached the upstream in {took * 1000:.0f} ms")
    assert took < 3.0  # the whole answer would take ~9 s
