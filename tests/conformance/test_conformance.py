"""Conformance: every client family against every upstream family, unary and streamed, across
the scenarios in scenarios.py. Each cell checks both sides of the router:

- what the client got: text, tool calls, finish reason, usage or the typed error, read through
  its own SDK, in its own family's vocabulary;
- what the provider received: the request in the upstream's format, relayed untouched but for
  the model when client and upstream speak the same family, translated otherwise.

A scenario a client's API cannot express is no cell (matrix.py shows it n/a).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx2
import jsonschema
import pytest
from support import START_TIMEOUT, Simulator

from .clients import AnthropicClient, Client, GrpcClient, HttpClient, OpenAIChatClient, OpenAIResponsesClient
from .conversation import ROUTER_DEFAULT_MAX_TOKENS, UPSTREAMS, Answer, Conversation, Upstream
from .matrix import CELLS, CLIENTS, FAMILIES, INEXPRESSIBLE, Cell
from .scenarios import TOKEN, Expect

# Cells that cannot pass for a reason outside this project: cell id -> the reason.
KNOWN_FAILURES: dict[str, str] = {
    f"{client}-gemini-{mode}-image": "Gemini fetches no image by web URL (fileData takes only its "
    "Files API or gs:// URIs): the router refuses the URL image with a 400 before any attempt"
    for client in CLIENTS
    for mode in ("unary", "stream")
} | {
    f"{client}-bedrock-{mode}-image": "Bedrock fetches no image by web URL (an image's source is "
    "its bytes or an S3 location): the router refuses the URL image with a 400 before any attempt"
    for client in CLIENTS
    for mode in ("unary", "stream")
}

# The ids the simulator gives tool calls, which every client must get unchanged; Gemini's calls
# have none, so the router makes one that carries the call's thought signature.
CALL_IDS = {"openai": r"call_sim_\d+", "anthropic": r"toolu_sim_\d+", "gemini": r"gemini_[0-9a-f]{16}_[A-Za-z0-9_-]+",
            "bedrock": r"tooluse_sim_\d+"}


@pytest.fixture(scope="session")
def clients(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Client]]:
    """Each client family's adapter, built on first use, against the session's servers."""
    makers: dict[str, Callable[[], Client]] = {
        OpenAIChatClient.name: lambda: OpenAIChatClient(ready_router(request)),
        OpenAIResponsesClient.name: lambda: OpenAIResponsesClient(ready_router(request)),
        AnthropicClient.name: lambda: AnthropicClient(ready_router(request)),
        GrpcClient.name: lambda: GrpcClient(request.getfixturevalue("grpc_channel")),
    }
    made: dict[str, Client] = {}

    def client(name: str) -> Client:
        if name not in made:
            made[name] = makers[name]()
        return made[name]

    yield client
    for adapter in made.values():
        if isinstance(adapter, HttpClient):
            adapter.http.close()


def ready_router(request: pytest.FixtureRequest) -> str:
    """The session router's URL, once it answers: gunicorn listens before its workers have loaded
    the app, which on a busy machine takes longer than a client's timeout. A request meanwhile
    waits in the listen queue, so this waits for that event."""
    http_url: str = request.getfixturevalue("http_url")
    assert httpx2.get(f"{http_url}/readyz", timeout=START_TIMEOUT).status_code == 200
    return http_url


def cell_param(cell: Cell) -> Any:
    reason = KNOWN_FAILURES.get(cell.id)
    marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
    return pytest.param(cell, id=cell.id, marks=marks)


@pytest.mark.parametrize("cell", [cell_param(cell) for cell in CELLS])
def test_cell(cell: Cell, clients: Callable[[str], Client], simulator: Simulator) -> None:
    client = clients(cell.client)
    upstream = UPSTREAMS[cell.upstream]
    stream = cell.mode == "stream"
    previous: Answer | None = None
    # The simulator was reset for the test, and not between steps: a continued response lives in
    # the upstream that holds it. Each step reads the requests made since it began.
    for step in cell.scenario.plan(cell.mode, cell.upstream):
        before = len(simulator.requests())
        if step.fault is not None:
            simulator.fail_next(step.fault)
        conversation = step.build(previous)

        answer = client.send(conversation, upstream, stream)

        check_client_got(answer, step.expect, conversation, client, upstream, stream)
        check_provider_received(simulator.requests()[before:], conversation, answer, client, upstream, stream)
        previous = answer


def check_client_got(
    answer: Answer, expect: Expect, conversation: Conversation, client: Client, upstream: Upstream, stream: bool
) -> None:
    if expect.error is not None:
        assert answer.error is not None, f"no error raised; the client got {answer!r}"
        assert client.classify(answer.error) == client.expected_error(*expect.error), repr(answer.error)
        # A stream broken midway keeps what arrived before the error; a refused request has nothing.
        delivered = expect.cut if stream and expect.cut else 0
        assert (answer.text, answer.deltas) == (expect.text(upstream.model) if delivered else "", delivered)
        return
    assert answer.error is None, repr(answer.error)
    assert answer.models == {upstream.route}
    assert answer.ends == 1, "one finish reason, at the end"
    if expect.call is not None:
        check_tool_call(answer, expect.call, conversation, upstream, stream)
    elif expect.structured is not None:
        assert conversation.output is not None
        value = json.loads(answer.text)
        jsonschema.validate(value, conversation.output.schema)
        assert value == expect.structured(expect.text(upstream.model))
        assert answer.calls == []
    else:
        assert answer.text == expect.text(upstream.model)
        assert answer.calls == []
    reasoning = client.expected_reasoning(expect.thinking(), upstream)
    assert answer.reasoning == reasoning
    if stream:
        assert answer.reasoning_deltas == len(TOKEN.findall(reasoning)), "one streamed delta per reasoning token"
    assert (answer.finish, answer.stop_sequence) == client.expected_finish(
        expect.finish, upstream, expect.stop_sequence
    )
    if expect.usage is not None:
        assert answer.usage is not None, "no usage reported"
        assert (answer.usage.input, answer.usage.output) == expect.usage
        assert answer.usage.total in (None, sum(expect.usage))
        if stream:
            assert answer.deltas == expect.usage[1], "one streamed delta per output token"


def check_tool_call(
    answer: Answer, call: tuple[str, dict[str, Any]], conversation: Conversation, upstream: Upstream, stream: bool
) -> None:
    name, arguments = call
    assert len(answer.calls) == 1, answer.calls
    [got] = answer.calls
    assert got.name == name
    assert re.fullmatch(CALL_IDS[upstream.family], got.id), got.id
    assert got.input == arguments
    [tool] = [t for t in conversation.tools if t.name == name]
    if tool.strict:
        jsonschema.validate(got.input, tool.parameters)
    assert answer.text == ""
    if stream:
        if upstream.family == "gemini":
            # Gemini sends a call whole, its arguments an object: one piece, the router's JSON text.
            assert answer.argument_pieces == 1
            return
        # The arguments arrive in pieces that concatenate to the upstream's JSON text.
        assert got.arguments == json.dumps(arguments)
        assert answer.argument_pieces > 1


def check_provider_received(
    received: list[dict[str, Any]],
    conversation: Conversation,
    answer: Answer,
    client: Client,
    upstream: Upstream,
    stream: bool,
) -> None:
    wire = client.upstream_wire(upstream)
    assert [r["path"] for r in received] == [wire.path_for(upstream.model, stream)], "exactly one upstream request, no retries"
    [request] = received
    assert wire.key_sent(request["headers"]) == wire.key, "the router's key, never the client's"
    relayed = client.family == upstream.family
    if relayed:
        assert answer.sent is not None
        assert request["body"] == {**answer.sent, "model": upstream.model}, "relayed untouched but for the model"
    # What this family's own client would send for the conversation (modulo the API's equivalences).
    limit = client.limit(conversation)
    if not relayed:
        limit = limit or ROUTER_DEFAULT_MAX_TOKENS
    said = client.conveyed(conversation)
    expected = {**wire.request(said, upstream.model, limit), **(wire.stream_fields() if stream else {})}
    assert wire.canonical(request["body"]) == wire.canonical(expected)


def test_the_matrix_covers_every_combination_once() -> None:
    assert len({cell.id for cell in CELLS}) == len(CELLS)
    inexpressible = {(client, scenario) for client, scenario in INEXPRESSIBLE}
    run = {(cell.client, cell.scenario.name) for cell in CELLS}
    assert not run & inexpressible
    assert len(run) + len(inexpressible) == 4 * 14
    assert len(CELLS) == len(run) * len(FAMILIES) * 2
