"""The conformance matrix's Azure column: every client (OpenAI Chat Completions and Responses,
Anthropic Messages, gRPC) x unary/stream x every scenario of tests/conformance it can express,
against an Azure OpenAI deployment (the v1 surface) of a router of its own; checking what the
client got as the matrix does, and that Azure received the request under /openai/, with the
router's `api-key`, relayed untouched but for the model or translated into what an OpenAI client
would have sent.

The session router (tests/support.py) is left as other tests expect it; this column runs its
own router, and its cells, under ids of the matrix's form, are printed as the matrix's rows
`<client> > azure <mode>` (matrix.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx2
import pytest
from conformance.clients import CLIENT_TYPES, Client, GrpcClient, HttpClient
from conformance.conversation import ROUTER_DEFAULT_MAX_TOKENS, Answer, Conversation, Mode, Upstream
from conformance.matrix import INEXPRESSIBLE, MODES
from conformance.scenarios import SCENARIOS, Scenario
from conformance.test_conformance import check_client_got
from support import START_TIMEOUT, RouterConfig, Simulator, free_port, start_process, wait_for_port

KEY = "azure-conformance-key-0123456789"
AZURE_PREFIX = "/openai"  # the v1 surface: OpenAI's paths under the resource's /openai


@dataclass(frozen=True)
class AzureUpstream(Upstream):
    """An OpenAI-family upstream under the provider name `azure`; its model is its deployment."""

    provider: str = "azure"

    @property
    def route(self) -> str:
        return f"{self.provider}/{self.model}"


AZURE = AzureUpstream("openai", "gpt-4o-mini")


@pytest.fixture(scope="module")
def azure_clients(
    simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Client]]:
    directory = tmp_path_factory.mktemp("azure-conformance")
    azure = {
        "type": "azure",
        "base_url": simulator_process.url,
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
        # gunicorn listens before its worker has loaded the app: wait for it to answer.
        assert httpx2.get(f"{url}/readyz", timeout=START_TIMEOUT).status_code == 200
        channel = grpc.insecure_channel(f"127.0.0.1:{grpc_port}")
        grpc.channel_ready_future(channel).result(timeout=START_TIMEOUT)
        for kind in CLIENT_TYPES:
            made.append(kind(channel) if issubclass(kind, GrpcClient) else kind(url))  # type: ignore[call-arg]
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
    pytest.param(kind.name, mode, scenario, id=f"{kind.name}-azure-{mode}-{scenario.name}")
    for kind in CLIENT_TYPES
    for mode in MODES
    for scenario in SCENARIOS
    if (kind.name, scenario.name) not in INEXPRESSIBLE
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
    # As the matrix does: the simulator is not reset between steps (a continued response lives in
    # the upstream that holds it); each step reads the requests made since it began.
    for step in scenario.plan(mode, "openai"):
        before = len(simulator.requests())
        if step.fault is not None:
            simulator.fail_next(step.fault)
        conversation = step.build(previous)

        answer = client.send(conversation, AZURE, stream)

        check_client_got(answer, step.expect, conversation, client, AZURE, stream)
        check_azure_received(simulator.requests()[before:], conversation, answer, client, stream)
        previous = answer


def check_azure_received(
    received: list[dict[str, Any]], conversation: Conversation, answer: Answer, client: Client, stream: bool
) -> None:
    wire = client.upstream_wire(AZURE)
    assert [r["path"] for r in received] == [AZURE_PREFIX + wire.path], "exactly one request, no retries"
    [request] = received
    assert request["headers"]["api-key"] == KEY, "the router's key, in Azure's header"
    assert "authorization" not in request["headers"]
    relayed = client.family == AZURE.family
    if relayed:
        assert answer.sent is not None
        assert request["body"] == {**answer.sent, "model": AZURE.model}, "relayed untouched but for the model"
    limit = client.limit(conversation)
    if not relayed:
        limit = limit or ROUTER_DEFAULT_MAX_TOKENS
    said = client.conveyed(conversation)
    expected = {**wire.request(said, AZURE.model, limit), **(wire.stream_fields() if stream else {})}
    assert wire.canonical(request["body"]) == wire.canonical(expected)


def test_the_column_covers_every_client_mode_and_scenario_it_can_express() -> None:
    expressible = len(CLIENT_TYPES) * len(SCENARIOS) - len(INEXPRESSIBLE)
    assert len(CELLS) == expressible * len(MODES)
