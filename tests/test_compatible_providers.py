"""Named OpenAI-compatible providers (`type: openai` with their own base URL and key variable)
and what each declares it takes differently (`unsupported`, `renamed`, `headers`,
`key_required`; docs/PROVIDERS.md), through a real router process: a refused field is a 400
naming it before any upstream attempt, a dropped or renamed one reaches the server changed, a
local server answers with no key set."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import yaml

import anthropic
import httpx2
import openai
import pytest
from support import (
    REPO_ROOT,
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
)

from ai_router.config import ConfigError, settings_from_mapping
from ai_router.errors import InvalidRequest
from ai_router.providers.field_rules import FieldRules
from ai_router.simulator import SimulatorSettings, build_server

GROQ_KEY = "gsk-test-0123456789abcdef"
MISTRAL_KEY = "mistral-test-0123456789abcdef"
OPENROUTER_KEY = "sk-or-test-0123456789abcdef"


@pytest.fixture(scope="module")
def local_server() -> Iterator[Simulator]:
    """A simulator that takes no key, standing in for a local Ollama."""
    server = build_server("127.0.0.1", 0, SimulatorSettings(require_key=False))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield Simulator(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def providers(simulator: Simulator, local: Simulator) -> dict[str, Any]:
    common = {"type": "openai", "base_url": f"{simulator.url}/v1", "timeout": 3, "max_retries": 0}
    return {
        "groq": {
            **common,
            "default_model": "llama-3.3-70b-versatile",
            "unsupported": {
                "logprobs": "refuse",
                "top_logprobs": "refuse",
                "logit_bias": "refuse",
                "n": "refuse",
                "messages[].name": "drop",
            },
        },
        "mistral": {
            **common,
            "default_model": "mistral-small-latest",
            "renamed": {"max_completion_tokens": "max_tokens", "seed": "random_seed"},
            "unsupported": {"top_k": "refuse", "user": "drop"},
        },
        "openrouter": {
            **common,
            "default_model": "openai/gpt-4o-mini",
            "headers": {"HTTP-Referer": "https://example.test/app", "X-OpenRouter-Title": "ai-router tests"},
        },
        "ollama": {
            **common,
            "base_url": f"{local.url}/v1",
            "default_model": "llama3.2",
            "key_required": False,
            "renamed": {"max_completion_tokens": "max_tokens"},
            "unsupported": {
                "n": "refuse",
                "logit_bias": "refuse",
                "parallel_tool_calls": "refuse",
                "user": "drop",
            },
        },
    }


@pytest.fixture(scope="module")
def router_url(
    simulator_process: Simulator, local_server: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    directory = tmp_path_factory.mktemp("compatible")
    config = RouterConfig(
        simulator_process, directory, {"providers": providers(simulator_process, local_server)}
    )
    port = free_port()
    env = {
        **config.env(),
        "HTTP_PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "GROQ_API_KEY": GROQ_KEY,
        "MISTRAL_API_KEY": MISTRAL_KEY,
        "OPENROUTER_API_KEY": OPENROUTER_KEY,
        "OLLAMA_API_KEY": "",  # not set: a local server needs none
    }
    process: Process = start_process("compatible-http", ["http"], env, directory)
    try:
        wait_for_port(process, port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
        log = process.log()
        assert not any(key in log for key in (GROQ_KEY, MISTRAL_KEY, OPENROUTER_KEY))


@pytest.fixture
def oai_compat(router_url: str, simulator: Simulator) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{router_url}/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def ant_compat(router_url: str, simulator: Simulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=router_url, api_key="client-key", max_retries=0) as client:
        yield client


HELLO: Any = [{"role": "user", "content": "Hello"}]


# --- refused: a 400 naming the field, and nothing sent ------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("logprobs", True), ("top_logprobs", 2), ("logit_bias", {"50256": -100}), ("n", 2)],
)
def test_a_refused_field_is_a_400_naming_it_before_any_attempt(
    oai_compat: openai.OpenAI, simulator: Simulator, field: str, value: Any
) -> None:
    extra = {"logprobs": True, field: value} if field == "top_logprobs" else {field: value}
    with pytest.raises(openai.BadRequestError) as raised:
        oai_compat.chat.completions.create(model="groq/llama-3.3-70b-versatile", messages=HELLO, **extra)

    error = raised.value.body
    assert isinstance(error, dict)
    assert error["param"] in extra
    assert f"provider 'groq' does not support `{error['param']}`" in error["message"]
    assert simulator.requests() == []


def test_a_refused_field_of_a_translated_request(
    ant_compat: anthropic.Anthropic, simulator: Simulator
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        ant_compat.messages.create(
            model="mistral/mistral-small-latest",
            max_tokens=20,
            messages=HELLO,
            extra_body={"top_k": 5},
        )

    assert "provider 'mistral' does not support `top_k`" in str(raised.value)
    assert simulator.requests() == []


# --- dropped or renamed: what reaches the server ------------------------------------------------


def test_a_value_that_asks_for_nothing_and_a_dropped_field_are_removed(
    oai_compat: openai.OpenAI, simulator: Simulator
) -> None:
    answer = oai_compat.chat.completions.create(
        model="groq/llama-3.3-70b-versatile",
        messages=[{"role": "user", "content": "Hello", "name": "ada"}],
        n=1,
        logprobs=False,
        temperature=0.5,
    )

    assert answer.choices[0].message.content == "Simulated reply from llama-3.3-70b-versatile: Hello"
    [received] = simulator.requests()
    assert received["body"] == {
        "model": "llama-3.3-70b-versatile",
        "messages": [{"role": "user", "content": "Hello"}],
        "temperature": 0.5,
    }
    assert received["headers"]["authorization"] == f"Bearer {GROQ_KEY}"


def test_renamed_fields_of_a_relayed_body(oai_compat: openai.OpenAI, simulator: Simulator) -> None:
    oai_compat.chat.completions.create(
        model="mistral/mistral-small-latest",
        messages=HELLO,
        max_completion_tokens=30,
        seed=7,
        user="someone",
    )

    [received] = simulator.requests()
    assert received["body"] == {
        "model": "mistral-small-latest",
        "messages": HELLO,
        "max_tokens": 30,
        "random_seed": 7,
    }


def test_renamed_fields_of_a_translated_stream(
    ant_compat: anthropic.Anthropic, simulator: Simulator
) -> None:
    with ant_compat.messages.stream(
        model="mistral/mistral-small-latest", max_tokens=40, messages=HELLO
    ) as stream:
        text = "".join(stream.text_stream)

    assert text == "Simulated reply from mistral-small-latest: Hello"
    [received] = simulator.requests()
    assert received["body"]["max_tokens"] == 40
    assert "max_completion_tokens" not in received["body"]
    assert received["body"]["stream"] is True


def test_a_provider_s_own_headers(oai_compat: openai.OpenAI, simulator: Simulator) -> None:
    oai_compat.chat.completions.create(model="openrouter/openai/gpt-4o-mini", messages=HELLO)

    [received] = simulator.requests()
    assert received["path"] == "/v1/chat/completions"
    assert received["body"]["model"] == "openai/gpt-4o-mini"
    assert received["headers"]["http-referer"] == "https://example.test/app"
    assert received["headers"]["x-openrouter-title"] == "ai-router tests"
    assert received["headers"]["authorization"] == f"Bearer {OPENROUTER_KEY}"


# --- a local server without a key ----------------------------------------------------------------


def test_a_local_server_answers_with_no_key_set(
    oai_compat: openai.OpenAI, ant_compat: anthropic.Anthropic, local_server: Simulator
) -> None:
    local_server.reset()
    answer = oai_compat.chat.completions.create(
        model="ollama/llama3.2", messages=HELLO, max_completion_tokens=25, user="someone"
    )
    assert answer.choices[0].message.content == "Simulated reply from llama3.2: Hello"
    message = ant_compat.messages.create(model="ollama/llama3.2", max_tokens=25, messages=HELLO)
    assert message.content[0].text == "Simulated reply from llama3.2: Hello"  # type: ignore[union-attr]

    relayed, translated = local_server.requests()
    for received in (relayed, translated):
        assert "authorization" not in received["headers"]
        assert received["body"]["max_tokens"] == 25
        assert "max_completion_tokens" not in received["body"]
    assert "user" not in relayed["body"]


def test_a_local_provider_is_ready_without_a_key(router_url: str) -> None:
    providers = httpx2.get(f"{router_url}/readyz", timeout=5).json()["providers"]
    assert providers["ollama"] == {"ready": True}
    # Beside it, the fixture's provider whose key is never set is reported.
    assert providers["spare"] == {"ready": False, "reason": "SPARE_API_KEY is not set"}


def test_a_default_asks_for_nothing_and_its_opposite_is_refused(
    oai_compat: openai.OpenAI, local_server: Simulator
) -> None:
    local_server.reset()
    oai_compat.chat.completions.create(
        model="ollama/llama3.2", messages=HELLO, parallel_tool_calls=True, n=1
    )
    [received] = local_server.requests()
    assert "parallel_tool_calls" not in received["body"] and "n" not in received["body"]

    with pytest.raises(openai.BadRequestError) as raised:
        oai_compat.chat.completions.create(
            model="ollama/llama3.2", messages=HELLO, parallel_tool_calls=False
        )
    assert "does not support `parallel_tool_calls`" in str(raised.value)
    assert len(local_server.requests()) == 1


def test_the_rules_leave_the_body_they_are_given_as_it_was() -> None:
    rules = FieldRules(
        "p",
        {"messages[].name": "drop", "logprobs": "refuse"},
        {"max_completion_tokens": "max_tokens"},
    )
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": "hi", "name": "ada"}, "not a message"],
        "max_completion_tokens": 5,
        "max_tokens": 9,
        "logprobs": None,
    }

    assert rules.apply(body) == {
        "messages": [{"role": "user", "content": "hi"}, "not a message"],
        "max_tokens": 9,  # both given: the server's own name wins
    }
    assert body["messages"][0] == {"role": "user", "content": "hi", "name": "ada"}
    with pytest.raises(InvalidRequest) as raised:
        rules.apply({**body, "logprobs": True})
    assert raised.value.param == "logprobs"


# --- configuration -------------------------------------------------------------------------------


def test_an_unknown_action_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping(
            {"providers": {"groq": {"type": "openai", "default_model": "m", "unsupported": {"n": "ignore"}}}},
            {},
        )
    assert "providers.groq.unsupported.n" in str(raised.value)


def test_every_entry_in_the_providers_doc_is_valid_config() -> None:
    text = (REPO_ROOT / "docs" / "PROVIDERS.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    names = set()
    for block in blocks:
        document = block if block.startswith("providers:") else "providers:\n" + block
        settings = settings_from_mapping(yaml.safe_load(document), {})
        names |= set(settings.providers)
    assert {"groq", "mistral", "deepseek", "openrouter", "together", "ollama", "vllm", "azure", "bedrock"} <= names
