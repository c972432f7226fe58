"""The conformance matrix's Azure column: every client (OpenAI SDK, Anthropic SDK, gRPC) x
unary/stream x every scenario of tests/conformance, against an Azure OpenAI deployment (the
dated surface) of a router of its own, checking what the client got as the matrix does, and
that Azure received the request at the deployment's URL, with the router's `api-key`, relayed
untouched but for the model or translated into what an OpenAI client would have sent.

The session router (tests/support.py) is left as other tests expect it; this column runs its
own router, so `make test` prints it as these tests' results rather than in the matrix table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from conformance.clients import AnthropicClient, Client, GrpcClient, HttpClient, OpenAIClient
from conformance.conversation import ROUTER_DEFAULT_MAX_TOKENS, Answer, Conversation, Mode, Upstream
from conformance.formats import FORMATS
from conformance.matrix import CLIENTS, MODES
from conformance.scenarios import SCENARIOS, Scenario
from conformance.test_conformance import check_client_got
from support import RouterConfig, Simulator, free_port, start_process, wait_for_port

API_VERSION = "2024-10-21"
KEY = "azure-conformance-key-0123456789"


@dataclass(frozen=True)
class AzureUpstream(Upstream):
    """An OpenAI-family upstream under the provider name `azure`; its model is its deployment."""

    provider: str = "azure"

    @property
    def route(self) -> str:
        return f"{self.provider}/{self.model}"

    @property
    def path(self) -> str:
        return f"/openai/deployments/{self.model}/chat/completions?api-version={API_VERSION}"


AZURE = AzureUpstream("openai", "gpt-4o-mini")


@pytest.fixture(scope="module")
def azure_clients(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Client]]:
    directory = tmp_path_factory.mktemp("azure-conformance")
    azure = {
        "type": "azure",
        "base_url": simulator_process.url,
        "api_version": API_VERSION,
        "default_model": AZURE.model,
        "default_max_tokens": ROUTER_DEFAULT_MAX_TOKENS,
        "timeout": 3,
        "max_retries": 0,
    }
    config = RouterConfig(simulator_process, directory, {"providers": {"azure": azure}})
    http_port, grpc_port = free_port(), free_port()
    env = {**config.env(), "HTTP_PORT": str(http_port), "GRPC_PORT": str(grpc_port), "AZURE_API_KEY": KEY}
    processes = [
        start_process("azure-conformance-http", ["http"], {**env, "WEB_CONCURRENCY": "1"}, directory),
        start_process("azure-conformance-grpc", ["grpc"], env, directory),
    ]
    channel = None
    made: list[Client] = []
    try:
        wait_for_port(processes[0], http_port)
        wait_for_port(processes[1], grpc_port)
        url = f"http://127.0.0.1:{http_port}"
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=10)
        makers: dict[str, Callable[[], Client]] = {
            OpenAIClient.name: lambda: OpenAIClient(url),
            AnthropicClient.name: lambda: AnthropicClient(url),
            GrpcClient.name: lambda: GrpcClient(channel),
        }
        made = [makers[name]() for name in CLIENTS]
        yield {client.name: client for client in made}.__getitem__
    finally:
        for client in made:
            if isinstance(client, HttpClient):
                client.http.close()
        if channel is not None:
            channel.close()
        for process in processes:
            process.stop()


CELLS = [
    pytest.param(client, mode, scenario, id=f"{client}-azure-{mode}-{scenario.name}")
    for client in CLIENTS
    for mode in MODES
    for scenario in SCENARIOS
]


@pytest.mark.parametrize(("client_name", "mode", "scenario"), CELLS)
def test_azure_cell(
    client_name: str,
    mode: Mode,
    scenario: Scenario,
    azure_clients: Callable[[str], Client],
    simulator: Simulator,
) -> None:
    client = azure_clients(client_name)
    stream = mode == "stream"
    previous: Answer | None = None
    for step in scenario.plan(mode, "openai"):
        simulator.reset()
        if step.fault is not None:
            simulator.fail_next(step.fault)
        conversation = step.build(previous)

        answer = client.send(conversation, AZURE, stream)

        check_client_got(answer, step.expect, client, AZURE, stream)
        check_azure_received(simulator.requests(), conversation, answer, client, stream)
        previous = answer


def check_azure_received(
    received: list[dict[str, Any]], conversation: Conversation, answer: Answer, client: Client, stream: bool
) -> None:
    wire = FORMATS["openai"]
    assert [r["path"] for r in received] == [AZURE.path], "exactly one request, at the deployment"
    [request] = received
    assert request["headers"]["api-key"] == KEY, "the router's key, in Azure's header"
    assert "authorization" not in request["headers"]
    relayed = client.family == "openai"
    if relayed:
        assert answer.sent is not None
        assert request["body"] == {**answer.sent, "model": AZURE.model}, "relayed untouched but for the model"
    limit = client.limit(conversation)
    if not relayed:
        limit = limit or ROUTER_DEFAULT_MAX_TOKENS
    expected = {**wire.request(conversation, AZURE.model, limit), **(wire.stream_fields() if stream else {})}
    assert wire.canonical(request["body"]) == wire.canonical(expected)


def test_the_column_covers_every_client_mode_and_scenario() -> None:
    assert len(CELLS) == len(CLIENTS) * len(MODES) * len(SCENARIOS) == 3 * 2 * 10
