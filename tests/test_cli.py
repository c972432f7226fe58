"""`ai-router chat`, run as a person runs it: as a process, against the session's real gRPC and
HTTP servers and the simulator."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from support import REPO_ROOT, Simulator, free_port

# The default provider is openai; its default model in the test config is gpt-4o-mini.
ANSWER = "Simulated reply from gpt-4o-mini: Say hi"
# Words are tokens in the simulator: 2 in ("Say hi"), 6 out.
USAGE = "tokens: 2 in, 6 out, 8 total"


def clean_env(**variables: str) -> dict[str, str]:
    """This environment without anything the router's commands read, plus `variables`."""
    ours = ("CONFIG_PATH", "GRPC_PORT", "HTTP_PORT", "HOST")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ours and not key.endswith(("_API_KEY", "_BASE_URL"))
    }
    return {**env, **variables}


def ai_router(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ai_router.cli", *arguments],
        cwd=REPO_ROOT,
        env=clean_env(**variables),
        capture_output=True,
        text=True,
        timeout=60,
    )


Transport = list[str]


@pytest.fixture(params=["grpc", "http"])
def transport(request: pytest.FixtureRequest) -> Transport:
    """The chat options that reach the session's server over one transport."""
    if request.param == "grpc":
        return ["--grpc", "--url", f"127.0.0.1:{request.getfixturevalue('grpc_port')}"]
    return ["--http", "--url", request.getfixturevalue("http_url")]


@pytest.fixture(params=["stream", "no-stream"])
def streaming(request: pytest.FixtureRequest) -> list[str]:
    return [] if request.param == "stream" else ["--no-stream"]


def chat(transport: Transport, *arguments: str) -> subprocess.CompletedProcess[str]:
    return ai_router("chat", *transport, *arguments)


# chat


def test_chat_prints_the_answer_on_stdout_and_the_usage_on_stderr(
    simulator: Simulator, transport: Transport, streaming: list[str]
) -> None:
    result = chat(transport, *streaming, "Say hi")

    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
    assert USAGE in result.stderr
    assert "stop" in result.stderr
    assert "cost" not in result.stderr  # the server reports none yet
    assert simulator.last_request()["path"] == "/v1/chat/completions"  # openai by default


def test_without_streaming_the_summary_names_the_model(
    simulator: Simulator, transport: Transport
) -> None:
    result = chat(transport, "--no-stream", "Say hi")

    assert result.stderr.strip() == f"openai/gpt-4o-mini: stop; {USAGE}"


def test_chat_prints_the_answer_as_it_arrives(
    simulator: Simulator, transport: Transport
) -> None:
    simulator.set(token_rate=4)  # 6 tokens: about 1.5 seconds
    process = subprocess.Popen(
        [sys.executable, "-m", "ai_router.cli", "chat", *transport, "Say hi"],
        cwd=REPO_ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = os.read(process.stdout.fileno(), 1024)
        still_running = process.poll() is None
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert first and still_running
    assert (first + rest).decode() == ANSWER + "\n"
    assert process.returncode == 0


def test_model_system_and_max_tokens_reach_the_provider(
    simulator: Simulator, transport: Transport, streaming: list[str]
) -> None:
    result = chat(
        transport,
        *streaming,
        "--model", "anthropic/claude-3-5-haiku-20241022",
        "--system", "Be brief.",
        "--max-tokens", "2",
        "Say hi",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Simulated reply\n"
    assert "length" in result.stderr
    upstream = simulator.last_request()
    assert upstream["path"] == "/v1/messages"
    assert upstream["body"]["model"] == "claude-3-5-haiku-20241022"
    assert upstream["body"]["system"] == "Be brief."
    assert upstream["body"]["max_tokens"] == 2


def test_a_refused_request_exits_1_with_the_servers_message(
    simulator: Simulator, transport: Transport, streaming: list[str]
) -> None:
    result = chat(transport, *streaming, "--provider", "mystery", "Say hi")

    assert result.returncode == 1
    assert result.stdout == ""
    assert "unknown provider 'mystery'; configured providers:" in result.stderr
    assert "NOT_FOUND" in result.stderr or "404" in result.stderr
    assert "request id" in result.stderr
    assert "Traceback" not in result.stderr
    assert simulator.requests() == []


def test_a_failure_midway_keeps_what_arrived_and_exits_1(
    simulator: Simulator, transport: Transport
) -> None:
    # Over HTTP this arrives as a `data: {"error": ...}` event after two content events.
    simulator.fail_next({"reset_after_tokens": 2})

    result = chat(transport, "Say hi")

    assert result.returncode == 1
    assert result.stdout == "Simulated reply\n"
    assert "openai" in result.stderr
    assert "UNAVAILABLE" in result.stderr or "upstream_unavailable" in result.stderr


def test_a_rate_limit_says_when_to_retry(simulator: Simulator, transport: Transport) -> None:
    simulator.fail_next({"status": 429, "retry_after": 3})

    result = chat(transport, "Say hi")

    assert result.returncode == 1
    assert "rate limiting" in result.stderr
    assert "retry after 3 s" in result.stderr


@pytest.mark.parametrize("option", ["--grpc", "--http"])
def test_an_unreachable_router_exits_1_saying_so(option: str) -> None:
    port = free_port()
    url = f"127.0.0.1:{port}" if option == "--grpc" else f"http://127.0.0.1:{port}"

    result = ai_router("chat", option, "--url", url, "Say hi")

    assert result.returncode == 1
    assert f"127.0.0.1:{port}" in result.stderr or "connect" in result.stderr.lower()
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("option", "port_variable", "fixture"),
    [("--grpc", "GRPC_PORT", "grpc_port"), ("--http", "HTTP_PORT", "http_url")],
)
def test_the_default_url_comes_from_the_port_variables(
    request: pytest.FixtureRequest,
    simulator: Simulator,
    option: str,
    port_variable: str,
    fixture: str,
) -> None:
    port = str(request.getfixturevalue(fixture)).rpartition(":")[2]

    result = ai_router("chat", option, "Say hi", **{port_variable: port})

    assert result.returncode == 0, result.stderr
    assert result.stdout == ANSWER + "\n"
