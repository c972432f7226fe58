"""Azure OpenAI (`type: azure`) through a real router process over the simulator: the URL, API
version, credential header and deployment that Azure receives, on both its surfaces; relay for
OpenAI clients, translation for Anthropic clients; missing and rejected credentials; the
content-filter refusal translated."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import grpc
import httpx2
import openai
import pytest
from support import Process, RouterConfig, Simulator, free_port, start_process, wait_for_port

from ai_router._generated import ai_router_pb2, ai_router_pb2_grpc
from ai_router.config import ConfigError, settings_from_mapping
from ai_router.providers.azure_provider import AzureOpenAIProvider
from ai_router.providers.base import RelayRequest
from ai_router.providers.fake_transport import FakeAnswer, FakeUpstream
from ai_router.upstream_watch import Watchdog

API_VERSION = "2024-10-21"
AZURE_KEY = "azure-key-0123456789abcdef"
V1_KEY = "azure-v1-key-0123456789abcdef"
ENTRA_TOKEN = "eyJ0eXAiOiJKV1Qi.entra-token-0123456789"
SECRETS = (AZURE_KEY, V1_KEY, ENTRA_TOKEN)


def providers(endpoint: str) -> dict[str, Any]:
    common = {"base_url": endpoint, "timeout": 3, "default_max_tokens": 64}
    return {
        # The dated surface: a deployment per model name, one of them mapped.
        "azure": {
            **common,
            "type": "azure",
            "default_model": "gpt-4o",
            "api_version": API_VERSION,
            "deployments": {"gpt-4o": "my-gpt4o-deployment"},
            "max_retries": 1,
        },
        # The v1 surface (no api_version): the deployment is the body's model.
        "azure-v1": {
            **common,
            "type": "azure",
            "default_model": "gpt-4o-mini",
            "deployments": {"gpt-4o-mini": "mini-prod"},
            "max_retries": 0,
        },
        "azure-entra": {
            **common,
            "type": "azure",
            "auth": "entra-id",
            "api_key_env": "AZURE_ENTRA_TOKEN",
            "default_model": "gpt-4o",
            "api_version": API_VERSION,
            "max_retries": 0,
        },
        # Its key variable, AZURE_UNSET_API_KEY, is never set.
        "azure-unset": {**common, "type": "azure", "default_model": "gpt-4o"},
    }


@pytest.fixture(scope="module")
def azure_router(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, list[Process]]]:
    directory = tmp_path_factory.mktemp("azure")
    config = RouterConfig(simulator_process, directory, {"providers": providers(simulator_process.url)})
    http_port, grpc_port = free_port(), free_port()
    env = {
        **config.env(),
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "AZURE_API_KEY": AZURE_KEY,
        "AZURE_V1_API_KEY": V1_KEY,
        "AZURE_ENTRA_TOKEN": ENTRA_TOKEN,
    }
    processes = [
        start_process("azure-http", ["http"], {**env, "WEB_CONCURRENCY": "1"}, directory),
        start_process("azure-grpc", ["grpc"], env, directory),
    ]
    try:
        wait_for_port(processes[0], http_port)
        wait_for_port(processes[1], grpc_port)
        yield f"http://127.0.0.1:{http_port}", grpc_port, processes
    finally:
        for process in processes:
            process.stop()
        for process in processes:
            log = process.log()
            assert not any(secret in log for secret in SECRETS), f"{process.name} logged a key"


@pytest.fixture
def url(azure_router: tuple[str, int, list[Process]], simulator: Simulator) -> str:
    return azure_router[0]


@pytest.fixture
def oai_azure(url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{url}/v1", api_key="client-key", max_retries=0) as client:
        yield client


@pytest.fixture
def ant_azure(url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0) as client:
        yield client


def chat(client: openai.OpenAI, model: str, **extra: Any) -> Any:
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello Azure"}], **extra
    )


# --- what Azure receives ------------------------------------------------------------------------


def test_a_deployment_url_with_the_api_version_and_the_api_key_header(
    oai_azure: openai.OpenAI, simulator: Simulator
) -> None:
    answer = chat(oai_azure, "azure/gpt-4o", max_tokens=20)

    # Relayed answers name the model as the upstream did, under the provider (the simulator
    # names the deployment; Azure names the deployment's model), which a client may send back.
    assert answer.model == "azure/my-gpt4o-deployment"
    assert answer.choices[0].message.content == "Simulated reply from my-gpt4o-deployment: Hello Azure"
    [received] = simulator.requests()
    assert received["path"] == (
        f"/openai/deployments/my-gpt4o-deployment/chat/completions?api-version={API_VERSION}"
    )
    assert received["headers"]["api-key"] == AZURE_KEY
    assert "authorization" not in received["headers"]
    assert received["headers"]["user-agent"].startswith("AzureOpenAI/Python")
    # Relayed: the client's body, its model the deployment.
    assert received["body"] == {
        "model": "my-gpt4o-deployment",
        "messages": [{"role": "user", "content": "Hello Azure"}],
        "max_tokens": 20,
    }


def test_a_request_is_priced_by_its_model_not_its_deployment(url: str, simulator: Simulator) -> None:
    answer = httpx2.post(
        f"{url}/v1/chat/completions",
        json={"model": "azure/gpt-4o", "messages": [{"role": "user", "content": "Hello Azure"}]},
        timeout=10,
    )

    assert answer.status_code == 200
    usage = answer.json()["usage"]
    expected = (usage["prompt_tokens"] * 2.5 + usage["completion_tokens"] * 10.0) / 1e6
    assert float(answer.headers["x-ai-router-cost-usd"]) == pytest.approx(expected)


def test_a_model_without_a_mapped_deployment_is_its_own_deployment(
    oai_azure: openai.OpenAI, simulator: Simulator
) -> None:
    chat(oai_azure, "azure/gpt-4.1-nano")

    [received] = simulator.requests()
    assert received["path"] == (
        f"/openai/deployments/gpt-4.1-nano/chat/completions?api-version={API_VERSION}"
    )
    assert received["body"]["model"] == "gpt-4.1-nano"


def test_the_v1_surface_names_the_deployment_in_the_body(
    oai_azure: openai.OpenAI, simulator: Simulator
) -> None:
    answer = chat(oai_azure, "azure-v1/gpt-4o-mini")

    assert answer.model == "azure-v1/mini-prod"
    [received] = simulator.requests()
    assert received["path"] == "/openai/v1/chat/completions"
    assert received["body"]["model"] == "mini-prod"
    assert received["headers"]["api-key"] == V1_KEY
    assert "authorization" not in received["headers"]


def test_an_entra_id_token_goes_as_a_bearer_token(
    oai_azure: openai.OpenAI, simulator: Simulator
) -> None:
    chat(oai_azure, "azure-entra/gpt-4o")

    [received] = simulator.requests()
    assert received["path"].startswith("/openai/deployments/gpt-4o/chat/completions?api-version=")
    assert received["headers"]["authorization"] == f"Bearer {ENTRA_TOKEN}"
    assert "api-key" not in received["headers"]


def test_a_relayed_stream(oai_azure: openai.OpenAI, simulator: Simulator) -> None:
    stream = chat(oai_azure, "azure/gpt-4o", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Simulated reply from my-gpt4o-deployment: Hello Azure"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert {c.model for c in chunks} == {"azure/my-gpt4o-deployment"}
    [received] = simulator.requests()
    assert received["body"]["stream"] is True
    assert received["body"]["model"] == "my-gpt4o-deployment"


def test_embeddings_reach_the_deployment(oai_azure: openai.OpenAI, simulator: Simulator) -> None:
    vectors = oai_azure.embeddings.create(model="azure/text-embedding-3-small", input="hi")

    assert len(vectors.data[0].embedding) > 0
    [received] = simulator.requests()
    assert received["path"] == (
        f"/openai/deployments/text-embedding-3-small/embeddings?api-version={API_VERSION}"
    )
    assert received["body"]["model"] == "text-embedding-3-small"


# --- across families, and the native and gRPC doors ----------------------------------------------


def test_an_anthropic_client_reaches_an_azure_deployment(
    ant_azure: anthropic.Anthropic, simulator: Simulator
) -> None:
    message = ant_azure.messages.create(
        model="azure/gpt-4o",
        max_tokens=50,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello Azure"}],
    )

    assert message.content[0].type == "text"
    assert message.content[0].text == "Simulated reply from my-gpt4o-deployment: Hello Azure"
    assert message.usage.output_tokens > 0
    [received] = simulator.requests()
    assert received["path"].startswith("/openai/deployments/my-gpt4o-deployment/chat/completions")
    assert received["body"] == {
        "model": "my-gpt4o-deployment",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello Azure"},
        ],
        "max_completion_tokens": 50,
    }


def test_an_anthropic_stream_from_azure(ant_azure: anthropic.Anthropic, simulator: Simulator) -> None:
    with ant_azure.messages.stream(
        model="azure-v1/gpt-4o-mini",
        max_tokens=50,
        messages=[{"role": "user", "content": "Hello Azure"}],
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    assert text == "Simulated reply from mini-prod: Hello Azure"
    assert final.stop_reason == "end_turn"
    [received] = simulator.requests()
    assert received["path"] == "/openai/v1/chat/completions"
    assert received["body"]["stream"] is True
    assert received["body"]["model"] == "mini-prod"


def test_native_generate_and_grpc_reach_azure(
    azure_router: tuple[str, int, list[Process]], url: str, simulator: Simulator
) -> None:
    answer = httpx2.post(
        f"{url}/generate", json={"provider": "azure", "prompt": "Hello Azure"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == "Simulated reply from my-gpt4o-deployment: Hello Azure"
    assert answer.json()["model"] == "gpt-4o"

    with grpc.insecure_channel(f"127.0.0.1:{azure_router[1]}") as channel:
        stub = ai_router_pb2_grpc.AIRouterStub(channel)
        reply = stub.RouteRequest(
            ai_router_pb2.AIRequest(provider="azure-v1", prompt="Hello Azure"), timeout=10
        )
    assert reply.content == "Simulated reply from mini-prod: Hello Azure"
    paths = [r["path"] for r in simulator.requests()]
    assert paths == [
        f"/openai/deployments/my-gpt4o-deployment/chat/completions?api-version={API_VERSION}",
        "/openai/v1/chat/completions",
    ]


# --- credentials and errors ---------------------------------------------------------------------


def test_a_missing_key_is_a_503_naming_the_variable(url: str, simulator: Simulator) -> None:
    answer = httpx2.post(
        f"{url}/v1/chat/completions",
        json={"model": "azure-unset/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
        timeout=10,
    )

    assert answer.status_code == 503
    assert "AZURE_UNSET_API_KEY" in answer.json()["error"]["message"]
    assert simulator.requests() == []


def test_a_rejected_key_is_translated_and_never_echoed(
    oai_azure: openai.OpenAI, simulator: Simulator
) -> None:
    simulator.fail_next(
        {"status": 401, "family": "openai", "message": f"Access denied: bad key {AZURE_KEY[:12]}"}
    )

    with pytest.raises(openai.APIStatusError) as raised:
        chat(oai_azure, "azure/gpt-4o")

    assert raised.value.status_code == 502
    body = raised.value.response.text
    assert "rejected the router's API key" in body
    assert AZURE_KEY[:12] not in body
    assert len(simulator.requests()) == 1  # a rejected key is not retried


def test_the_content_filter_refusal_is_a_400_with_its_code(
    oai_azure: openai.OpenAI, ant_azure: anthropic.Anthropic, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 400, "code": "content_filter", "family": "openai"})

    with pytest.raises(openai.BadRequestError) as raised:
        chat(oai_azure, "azure/gpt-4o")

    error = raised.value.body
    assert isinstance(error, dict)
    assert error["code"] == "content_filter"
    assert "content filter blocked it (hate: medium)" in error["message"]
    assert "content management policy" in error["message"]  # Azure's own words follow
    assert len(simulator.requests()) == 1  # refused, so not retried (max_retries: 1)

    simulator.fail_next({"status": 400, "code": "content_filter", "family": "openai"})
    with pytest.raises(anthropic.BadRequestError) as refused:
        ant_azure.messages.create(
            model="azure/gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "content filter blocked it (hate: medium)" in str(refused.value)


# --- configuration -------------------------------------------------------------------------------


def test_an_azure_provider_needs_its_endpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"providers": {"azure": {"default_model": "gpt-4o"}}}, {})
    assert "providers.azure.base_url" in str(raised.value)
    assert "AZURE_BASE_URL" in str(raised.value)

    settings = settings_from_mapping(
        {"providers": {"azure": {"default_model": "gpt-4o"}}},
        {"AZURE_BASE_URL": "https://res.openai.azure.com"},
    )
    assert settings.providers["azure"].base_url == "https://res.openai.azure.com"

    with pytest.raises(ConfigError) as keyless:
        settings_from_mapping(
            {"providers": {"azure": {"default_model": "gpt-4o", "key_required": False}}},
            {"AZURE_BASE_URL": "https://res.openai.azure.com"},
        )
    assert "providers.azure.key_required" in str(keyless.value)


# --- in process: the responses endpoint, and one connection pool per URL ------------------------


def test_the_responses_endpoint_and_one_pool_per_url() -> None:
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json({"id": "resp_1", "object": "response"}))
    pools: list[str] = []

    def connect(url: str, headers: Any) -> Any:
        pools.append(url)
        return upstream.connect(url, headers)

    raw = {"default_model": "gpt-4o", "base_url": "https://res.openai.azure.com"}
    settings = settings_from_mapping(
        {
            "providers": {
                "dated": {**raw, "type": "azure", "api_version": "2025-04-01-preview"},
                "v1": {**raw, "type": "azure", "deployments": {"gpt-4o": "dep-a"}},
            }
        },
        {"DATED_API_KEY": AZURE_KEY, "V1_API_KEY": V1_KEY},
    )
    watchdog = Watchdog()
    for name in ("dated", "v1"):
        provider = AzureOpenAIProvider(settings.providers[name], connect)
        for model in ("gpt-4o", "gpt-4.1"):
            body = {"model": model, "input": "hi"}
            answer = provider.relay(RelayRequest(body, False, 5, "", "responses"), watchdog.watch())
            assert b"resp_1" in b"".join(answer.chunks)
        provider.close()

    assert [(r.url, r.json()["model"]) for r in upstream.requests] == [
        ("https://res.openai.azure.com/openai/responses?api-version=2025-04-01-preview", "gpt-4o"),
        ("https://res.openai.azure.com/openai/responses?api-version=2025-04-01-preview", "gpt-4.1"),
        ("https://res.openai.azure.com/openai/v1/responses", "dep-a"),
        ("https://res.openai.azure.com/openai/v1/responses", "gpt-4.1"),
    ]
    # Deployments whose requests go to one URL share its pool.
    assert pools == [
        "https://res.openai.azure.com/openai/responses?api-version=2025-04-01-preview",
        "https://res.openai.azure.com/openai/v1/responses",
    ]
    assert upstream.requests[0].headers["api-key"] == AZURE_KEY
    assert upstream.requests[2].headers["api-key"] == V1_KEY


def test_an_entra_id_token_on_the_v1_surface() -> None:
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json({"id": "chatcmpl-1", "choices": []}))
    settings = settings_from_mapping(
        {
            "providers": {
                "azure": {
                    "type": "azure",
                    "auth": "entra-id",
                    "api_key_env": "ENTRA_TOKEN",
                    "default_model": "gpt-4o",
                    "base_url": "https://res.openai.azure.com/",
                }
            }
        },
        {"ENTRA_TOKEN": ENTRA_TOKEN},
    )
    provider = AzureOpenAIProvider(settings.providers["azure"], upstream.connect)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    provider.relay(RelayRequest(body, False, 5, "", "chat"), Watchdog().watch())
    provider.close()

    [request] = upstream.requests
    assert request.url == "https://res.openai.azure.com/openai/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {ENTRA_TOKEN}"
    assert "api-key" not in request.headers


def test_deployments_a_client_names_keep_at_most_64_pools_open() -> None:
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json({"id": "chatcmpl-1", "choices": []}))
    open_pools: set[str] = set()

    class Counted:
        def __init__(self, url: str, headers: Any) -> None:
            self.url, self.transport = url, upstream.connect(url, headers)
            open_pools.add(url)

        def post(self, *args: Any) -> Any:
            return self.transport.post(*args)

        def close(self) -> None:
            open_pools.discard(self.url)

    raw = {"type": "azure", "default_model": "gpt-4o", "base_url": "https://res.openai.azure.com",
           "api_version": "2025-04-01-preview"}
    settings = settings_from_mapping({"providers": {"azure": raw}}, {"AZURE_API_KEY": AZURE_KEY})
    provider = AzureOpenAIProvider(settings.providers["azure"], Counted)
    watchdog = Watchdog()
    for number in range(100):  # a deployment URL each: no `models` list, so any name goes
        body = {"model": f"made-up-{number}", "messages": [{"role": "user", "content": "hi"}]}
        provider.relay(RelayRequest(body, False, 5, "", "chat"), watchdog.watch())
        assert len(open_pools) <= 64

    assert len(upstream.requests) == 100
    assert "/openai/deployments/made-up-99/chat/completions" in upstream.requests[-1].url
    provider.close()
    assert not open_pools
