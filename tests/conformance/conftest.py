"""The conformance suite's additions to tests/conftest.py: a router of its own, the session's
config plus a Gemini provider on the same simulator (the session's router keeps its two
families, which other modules count on). The matrix is printed by hooks in tests/conftest.py,
which the process that reports loads (pytest-xdist's controller loads no conftest below it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support import Process, RouterConfig, Simulator, free_port, start_process, wait_for_port

from .conversation import ROUTER_DEFAULT_MAX_TOKENS, UPSTREAMS
from .formats import GEMINI_TEST_KEY

GEMINI = {"default_model": UPSTREAMS["gemini"].model, "default_max_tokens": ROUTER_DEFAULT_MAX_TOKENS,
          "timeout": 3, "max_retries": 0}


@pytest.fixture(scope="session")
def conformance_router(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path
) -> Iterator[tuple[str, str]]:
    """(HTTP URL, gRPC target) of the router every cell goes through."""
    config = RouterConfig(simulator_process, tmp_path_factory.mktemp("conformance"),
                          {"providers": {"gemini": GEMINI}})
    http_port, grpc_port = free_port(), free_port()
    env = {**config.env(), "GEMINI_API_KEY": GEMINI_TEST_KEY, "GEMINI_BASE_URL": simulator_process.url,
           "HTTP_PORT": str(http_port), "GRPC_PORT": str(grpc_port)}
    processes: list[Process] = [
        start_process("conformance-http", ["http"], {**env, "WEB_CONCURRENCY": "2"}, logs_dir),
        start_process("conformance-grpc", ["grpc"], env, logs_dir),
    ]
    try:
        wait_for_port(processes[0], http_port)
        wait_for_port(processes[1], grpc_port)
        yield f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}"
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert GEMINI_TEST_KEY not in process.log(), "the Gemini key reached a log"


@pytest.fixture(scope="session")
def http_url(conformance_router: tuple[str, str]) -> str:
    return conformance_router[0]


@pytest.fixture(scope="session")
def grpc_channel(conformance_router: tuple[str, str]) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(conformance_router[1]) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel
