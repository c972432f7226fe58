"""Conformance: every client family against every upstream family, unary and streamed, across
the scenarios in scenarios.py. Each cell checks both sides of the router:

- what the client got: text, tool calls, finish reason, usage or the typed error, read through
  its own SDK, in its own family's vocabulary;
- what the provider received: the request in the upstream's format, relayed untouched but for
  the model when client and upstream speak the same family, translated otherwise.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from support import Simulator

from .clients import AnthropicClient, Client, GrpcClient, HttpClient, OpenAIClient
from .conversation import ROUTER_DEFAULT_MAX_TOKENS, UPSTREAMS, Answer, Conversation, Upstream
from .formats import FORMATS
from .matrix import CELLS, CLIENTS, Cell
from .scenarios import Expect

# Cells that cannot pass for a reason outside this project: cell id -> the reason.
KNOWN_FAILURES: dict[str, str] = {
    f"{client}-gemini-{mode}-image": "Gemini fetches no image by web URL (fileData takes only its "
    "Files API or gs:// URIs): the router refuses the URL image with a 400 before any attempt"
    for client in CLIENTS
    for mode in ("unary", "stream")
}

# The ids the simulator gives tool calls, which every client must get unchanged; Gemini's calls
# have none, so the router makes one that carries the call's thought signature.
CALL_IDS = {"openai": r"call_sim_\d+", "anthropic": r"toolu_sim_\d+", "gemini": r"gemini_[0-9a-f]{16}_[A-Za-z0-9_-]+"}


@pytest.fixture(scope="session")
def clients(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Client]]:
    """Each client family's adapter, built on first use, against the session's servers."""
    makers: dict[str, Callable[[], Client]] = {
        OpenAIClient.name: lambda: OpenAIClient(request.getfixturevalue("http_url")),
        AnthropicClient.name: lambda: AnthropicClient(request.getfixturevalue("http_url")),
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
    for step in cell.scenario.plan(cell.mode, cell.upstream):
        simulator.reset()
        if step.fault is not None:
            simulator.fail_next(step.fault)
        conversation = step.build(previous)

        answer = client.send(conversation, upstream, stream)

        check_client_got(answer, step.expect, client, upstream, stream)
        check_provider_received(simulator.requests(), conversation, answer, client, upstream, stream)
        previous = answer


def check_client_got(answer: Answer, expect: Expect, client: Client, upstream: Upstream, stream: bool) -> None:
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
        check_tool_call(answer, expect.call, upstream, stream)
    else:
        assert answer.text == expect.text(upstream.model)
        assert answer.calls == []
    assert (answer.finish, answer.stop_sequence) == client.expected_finish(
        expect.finish, upstream, expect.stop_sequence
    )
    if expect.usage is not None:
        assert answer.usage is not None, "no usage reported"
        assert (answer.usage.input, answer.usage.output) == expect.usage
        assert answer.usage.total in (None, sum(expect.usage))
        if stream:
            assert answer.deltas == expect.usage[1], "one streamed delta per output token"


def check_tool_call(answer: Answer, call: tuple[str, dict[str, Any]], upstream: Upstream, stream: bool) -> None:
    name, arguments = call
    assert len(answer.calls) == 1, answer.calls
    [got] = answer.calls
    assert got.name == name
    assert re.fullmatch(CALL_IDS[upstream.family], got.id), got.id
    assert got.input == arguments
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
    wire = FORMATS[upstream.family]
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
    expected = {**wire.request(conversation, upstream.model, limit), **(wire.stream_fields() if stream else {})}
    assert wire.canonical(request["body"]) == wire.canonical(expected)


def test_the_matrix_covers_every_combination_once() -> None:
    assert len({cell.id for cell in CELLS}) == len(CELLS) == 3 * 3 * 2 * 10
