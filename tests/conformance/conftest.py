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
from ai_router.wire import bedrock_converse

from .formats import GEMINI_TEST_KEY

GEMINI = {"default_model": UPSTREAMS["gemini"].model, "default_max_tokens": ROUTER_DEFAULT_MAX_TOKENS,
          "timeout": 3, "max_retries": 0}
BEDROCK = {"default_model": UPSTREAMS["bedrock"].model, "default_max_tokens": ROUTER_DEFAULT_MAX_TOKENS,
           "region": "us-east-1", "timeout": 3, "max_retries": 0}


@pytest.fixture(scope="session")
def conformance_router(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory, logs_dir: Path
) -> Iterator[tuple[str, str]]:
    """(HTTP URL, gRPC target) of the router every cell goes through."""
    config = RouterConfig(simulator_process, tmp_path_factory.mktemp("conformance"),
                          {"providers": {"gemini": GEMINI, "bedrock": BEDROCK}})
    env = {**config.env(), "GEMINI_API_KEY": GEMINI_TEST_KEY, "GEMINI_BASE_URL": simulator_process.url,
           # Bedrock signs with the simulator's AWS credentials, which it checks; nothing else of
           # this machine's AWS setup is read, nor the instance metadata service.
           "BEDROCK_BASE_URL": simulator_process.url, "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_ACCESS_KEY_ID": bedrock_converse.SIMULATOR_ACCESS_KEY_ID,
           "AWS_SECRET_ACCESS_KEY": bedrock_converse.SIMULATOR_SECRET_ACCESS_KEY, "AWS_SESSION_TOKEN": "",
           "AWS_BEARER_TOKEN_BEDROCK": "", "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
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
