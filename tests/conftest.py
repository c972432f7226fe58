"""Shared fixtures: the simulator, and the real gRPC and gunicorn servers, on free loopback ports.

Servers are started once per session (starting gunicorn costs a second or two) and the simulator
is reset before every test, so tests stay independent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import grpc
import httpx2
import openai
import pytest
from support import (
    ANTHROPIC_TEST_KEY,
    OPENAI_TEST_KEY,
    ROUTER_LOGS,
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_for_worker,
)
from conformance.matrix import RESULTS

from ai_router.cli import SIMULATOR_API_KEY
from ai_router.simulator import SimulatorSettings, build_server

SECRETS = (OPENAI_TEST_KEY, ANTHROPIC_TEST_KEY, "sk-test-key", SIMULATOR_API_KEY)
# Loggers whose every line is about one request, and so must name it.
REQUEST_LOGGERS = (
    "ai_router.request",
    "ai_router.policy.executor",
    "ai_router.http_api.app",
    "ai_router.http_api.streaming",
)


@pytest.fixture(scope="session", autouse=True)
def log_hygiene() -> Iterator[None]:
    """After the whole session, when every router process has stopped: each line its stderr
    received is a JSON object, each line about a request carries the request id, and no line
    holds a provider key."""
    yield
    problems = []
    request_lines = 0
    for path in ROUTER_LOGS:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            where = f"{path.name}:{number}"
            if any(secret in line for secret in SECRETS):
                problems.append(f"{where}: a key is logged")
            try:
                entry = json.loads(line)
            except ValueError:
                problems.append(f"{where}: not JSON: {line[:160]}")
                continue
            request_lines += entry.get("message") == "request"
            if str(entry.get("logger", "")).startswith(REQUEST_LOGGERS) and not entry.get(
                "request_id"
            ):
                problems.append(f"{where}: no request_id: {line[:160]}")
    # A run that started router processes (not every run does) must have seen them log requests.
    assert request_lines or not ROUTER_LOGS, "router processes ran but logged no request"
    assert not problems, "\n".join(problems[:20])


@pytest.fixture(scope="session")
def logs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def simulator_process(logs_dir: Path) -> Iterator[Simulator]:
    port = free_port()
    process = start_process("simulator", ["simulate", "--port", str(port)], {}, logs_dir)
    try:
        wait_for_port(process, port)
        yield Simulator(port, process)
    finally:
        process.stop()


@pytest.fixture
def simulator(simulator_process: Simulator) -> Simulator:
    simulator_process.reset()
    return simulator_process


@pytest.fixture(scope="session")
def router_env(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    return RouterConfig(simulator_process, tmp_path_factory.mktemp("config")).env()


@pytest.fixture(scope="session")
def grpc_port(router_env: dict[str, str], logs_dir: Path) -> Iterator[int]:
    port = free_port()
    process = start_process("grpc", ["grpc"], {**router_env, "GRPC_PORT": str(port)}, logs_dir)
    try:
        wait_for_port(process, port)
        yield port
    finally:
        process.stop()


@pytest.fixture(scope="session")
def grpc_channel(grpc_port: int) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def http_server(router_env: dict[str, str], logs_dir: Path) -> Iterator[Process]:
    port = free_port()
    env = {**router_env, "HTTP_PORT": str(port), "WEB_CONCURRENCY": "2"}
    process = start_process("http", ["http"], env, logs_dir, port)
    try:
        wait_for_port(process)
        wait_for_worker(f"http://127.0.0.1:{port}")
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def http_url(http_server: Process) -> str:
    return f"http://127.0.0.1:{http_server.port}"


@pytest.fixture
def client(http_url: str) -> Iterator[httpx2.Client]:
    """An HTTP client of the session's router."""
    with httpx2.Client(base_url=http_url, timeout=15) as client:
        yield client


# --- an in-process simulator, for the modules that test the simulator itself ---------------------


@pytest.fixture(scope="module")
def sim() -> Iterator[str]:
    """One simulator per module, in this process (no `ai-router simulate`), on a free port."""
    server = build_server("127.0.0.1", 0, SimulatorSettings())
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def sim_oai(sim: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{sim}/v1", api_key="k", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def sim_ant(sim: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim, api_key="k", max_retries=0) as client:
        yield client


# --- the official SDKs pointed at the router (`http_url`) by base URL only -----------------------


@pytest.fixture
def oai(http_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{http_url}/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def ant(http_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=http_url, api_key="client-key", max_retries=0) as client:
        yield client


# --- the conformance matrix, printed at the end of any run that ran one of its cells ---------------


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    RESULTS.record(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    lines = RESULTS.render()
    if lines:
        terminalreporter.section("conformance matrix: client > upstream mode, by scenario")
        for line in lines:
            terminalreporter.write_line(line)
