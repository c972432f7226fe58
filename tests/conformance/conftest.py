"""The conformance suite's additions to tests/conftest.py: a router of its own, the session's
config plus a Gemini provider on the same simulator (the session's router keeps its two
families, which other modules count on). The matrix is printed by hooks in tests/conftest.py,
which the process that reports loads (pytest-xdist's controller loads no conftest below it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from support import RouterConfig, Simulator, http_and_grpc

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
    env = {**config.env(), "GEMINI_API_KEY": GEMINI_TEST_KEY, "GEMINI_BASE_URL": simulator_process.url}
    with http_and_grpc("conformance", env, logs_dir, workers=2) as (http_url, grpc_target, processes):
        yield http_url, grpc_target
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
