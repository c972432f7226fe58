"""`ai-router chat` and `ai-router check-config`, run as a person runs them: as processes, chat
against the session's real gRPC and HTTP servers and the simulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


# check-config


def check_config(*arguments: str, **variables: str) -> subprocess.CompletedProcess[str]:
    return ai_router("check-config", *arguments, **variables)


def test_the_repository_config_is_valid_and_unset_keys_are_named() -> None:
    result = check_config("config.yaml")

    assert result.returncode == 0, result.stdout
    assert result.stdout == (
        "config.yaml: OK: 4 providers (openai, anthropic, gemini, bedrock), 0 aliases; "
        "not set: OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or AWS_BEARER_TOKEN_BEDROCK) "
        "(their providers answer 503 / FAILED_PRECONDITION until set)\n"
    )


def test_a_key_that_is_set_is_not_named() -> None:
    result = check_config("config.yaml", OPENAI_API_KEY="sk-anything")

    assert result.returncode == 0
    assert "not set: ANTHROPIC_API_KEY, GEMINI_API_KEY, AWS_ACCESS_KEY_ID " in result.stdout
    assert "OPENAI_API_KEY" not in result.stdout
    assert "sk-anything" not in result.stdout


BROKEN = """\
server:
  grpc_port: 70000
  colour: blue
providers:
  openai:
    default_model: gpt-4o-mini
    timeout: -1
  local:
    default_model: llama
  anthropic:
    default_model: claude-3-5-haiku-20241022
    models: [claude-3-5-haiku-20241022]
models:
  fast:
    targets: [mystery/model-x, anthropic/claude-opus]
"""


def test_a_broken_config_lists_every_problem_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)

    result = check_config(str(path))

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}: server.grpc_port: Input should be less than or equal to 65535",
        f"{path}: server.colour: Extra inputs are not permitted",
        f"{path}: providers.openai.timeout: Input should be greater than 0",
        f"{path}: providers.local.type: 'local' is not a provider type; "
        "set `type:` to one of anthropic, azure, bedrock, gemini, openai",
        f"{path}: models.fast.targets[0]: provider 'mystery' is not configured; "
        "providers: openai, local, anthropic",
        f"{path}: models.fast.targets[1]: provider 'anthropic' does not offer model "
        "'claude-opus'; add it to providers.anthropic.models",
        f"{path}: 6 problems",
    ]


def test_cross_field_problems_are_all_listed_not_just_the_first(tmp_path: Path) -> None:
    # Every field is valid, so only the checks across providers and aliases find anything.
    path = tmp_path / "aliases.yaml"
    path.write_text(
        "providers:\n"
        "  openai: {default_model: gpt-4o-mini}\n"
        "  vllm: {default_model: llama}\n"
        "models:\n"
        "  fast: {targets: [nowhere/a, openai/gpt-4o-mini]}\n"
        "  smart: {targets: [elsewhere/b]}\n"
    )

    result = check_config(str(path))

    assert result.returncode == 1
    problems = result.stdout.splitlines()[:-1]
    assert [line.split(": ")[1] for line in problems] == [
        "providers.vllm.type",
        "models.fast.targets[0]",
        "models.smart.targets[0]",
    ]


def test_the_config_path_defaults_to_config_path_then_the_config_option(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)

    from_variable = check_config(CONFIG_PATH=str(path))
    from_option = ai_router("--config", str(path), "check-config")

    assert from_variable.returncode == from_option.returncode == 1
    assert from_variable.stdout == from_option.stdout
    assert f"{path}: 6 problems" in from_variable.stdout


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "file not found; set CONFIG_PATH or create it"),
        ("providers: [unclosed\n", "is not valid YAML"),
        ("- a list\n", "must be a mapping with a `providers:` section"),
    ],
)
def test_a_missing_or_unreadable_file_is_one_problem(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)

    result = check_config(str(path))

    assert result.returncode == 1
    assert result.stdout.startswith(f"{path}: {problem}")
    assert result.stdout.endswith(f"{path}: 1 problem\n")


def test_check_config_needs_no_running_router_and_no_keys(tmp_path: Path) -> None:
    path = tmp_path / "local.yaml"
    path.write_text(
        "providers:\n"
        "  local: {type: openai, default_model: llama, base_url: 'http://127.0.0.1:9/v1'}\n"
        "models:\n"
        "  default: {targets: [local/llama]}\n"
    )

    result = check_config(str(path))

    assert result.returncode == 0, result.stdout
    assert "1 provider (local), 1 alias (default); not set: LOCAL_API_KEY" in result.stdout
