"""The Responses API through a real router (gunicorn + gevent, two workers) on the simulator,
with the official `openai` SDK: POST /v1/responses (unary and streamed), retrieve, delete and
input items, and conversations continued with `previous_response_id` on either family.

To an OpenAI-family model the body is relayed; to an Anthropic model it is translated. Every
stored response is kept by the router, with its conversation, so a conversation may move between
families: a continuation of a response only the router has carries that conversation as input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from access_support import AccessConfig, new_key, sha256_hex
from support import Process, Simulator, free_port, start_process, wait_for_port, wait_for_worker

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"


def reply_of(model: str, text: str) -> str:
    return f"Simulated reply from {model.partition('/')[2]}: {text}"


def sent_to(simulator: Simulator, path: str) -> list[dict[str, Any]]:
    return [entry["body"] for entry in simulator.requests() if entry["path"] == path]


# --- one turn ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_a_response_answers_on_either_family(oai: openai.OpenAI, model: str) -> None:
    response = oai.responses.create(model=model, input="Say hello", instructions="Be brief.")

    assert response.output_text == reply_of(model, "Say hello")
    assert response.model == model  # named as the client can send it back
    assert response.status == "completed"
    assert response.usage is not None and response.usage.output_tokens > 0


def test_to_openai_the_body_is_relayed_with_only_the_model_changed(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    oai.responses.create(model=OPENAI_MODEL, input="Say hello", instructions="Be brief.", store=False)

    [body] = sent_to(simulator, "/v1/responses")
    assert body == {"model": "gpt-4o-mini", "input": "Say hello", "instructions": "Be brief.", "store": False}


def test_to_anthropic_the_request_is_translated(oai: openai.OpenAI, simulator: Simulator) -> None:
    oai.responses.create(model=ANTHROPIC_MODEL, input="Say hello", instructions="Be brief.")

    [body] = sent_to(simulator, "/v1/messages")
    assert body["system"] == "Be brief."
    assert turns(body["messages"]) == [("user", "Say hello")]


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_a_streamed_response_ends_with_the_whole_response(oai: openai.OpenAI, model: str) -> None:
    with oai.responses.stream(model=model, input="Say hello") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()

    assert "".join(deltas) == reply_of(model, "Say hello")
    assert final.output_text == reply_of(model, "Say hello")
    assert final.model == model


# --- conversations -------------------------------------------------------------------------------------


@pytest.mark.parametrize("first", [OPENAI_MODEL, ANTHROPIC_MODEL])
@pytest.mark.parametrize("second", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_previous_response_id_continues_a_conversation_on_any_family(
    oai: openai.OpenAI, simulator: Simulator, first: str, second: str
) -> None:
    one = oai.responses.create(model=first, input="My name is Ada")
    before = len(simulator.requests())

    two = oai.responses.create(model=second, input="What is my name?", previous_response_id=one.id)
    simulator_got = simulator.requests()[before:]

    assert two.output_text == reply_of(second, "What is my name?")
    assert two.previous_response_id == one.id
    if second == ANTHROPIC_MODEL:
        [body] = [entry["body"] for entry in simulator_got if entry["path"] == "/v1/messages"]
        assert turns(body["messages"]) == [
            ("user", "My name is Ada"),
            ("assistant", reply_of(first, "My name is Ada")),
            ("user", "What is my name?"),
        ]
    else:
        [body] = [entry["body"] for entry in simulator_got if entry["path"] == "/v1/responses"]
        if first == OPENAI_MODEL:
            # The upstream keeps its own copy: the continuation is relayed as it came.
            assert body["previous_response_id"] == one.id and body["input"] == "What is my name?"
        else:
            # Only the router has the first turn: it goes in as input.
            assert "previous_response_id" not in body
            assert not any("id" in item for item in body["input"])  # the router's ids stay here
            texts = [_text_of(item) for item in body["input"]]
            assert texts == ["My name is Ada", reply_of(first, "My name is Ada"), "What is my name?"]


def _text_of(item: dict[str, Any]) -> str:
    content = item["content"]
    return content if isinstance(content, str) else "".join(part["text"] for part in content)


def turns(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Each message's role and text, whether its content is a string or text blocks."""
    return [(message["role"], _text_of(message)) for message in messages]


def test_a_streamed_response_can_be_continued_at_once(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model=ANTHROPIC_MODEL, input="My name is Ada") as stream:
        first = stream.get_final_response()

    second = oai.responses.create(model=ANTHROPIC_MODEL, input="And?", previous_response_id=first.id)

    assert second.output_text == reply_of(ANTHROPIC_MODEL, "And?")


def test_an_unknown_previous_response_is_a_400_before_any_upstream(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        oai.responses.create(model=ANTHROPIC_MODEL, input="hi", previous_response_id="resp_nope")

    assert raised.value.code == "previous_response_not_found"
    assert raised.value.param == "previous_response_id"
    assert simulator.requests() == []


def test_a_response_not_stored_cannot_be_continued(oai: openai.OpenAI) -> None:
    one = oai.responses.create(model=ANTHROPIC_MODEL, input="hi", store=False)

    with pytest.raises(openai.BadRequestError, match="not found"):
        oai.responses.create(model=ANTHROPIC_MODEL, input="again", previous_response_id=one.id)


# --- retrieve, delete, input items ---------------------------------------------------------------------


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
def test_a_stored_response_can_be_retrieved_listed_and_deleted(oai: openai.OpenAI, model: str) -> None:
    one = oai.responses.create(model=model, input="My name is Ada")
    two = oai.responses.create(model=model, input="What is my name?", previous_response_id=one.id)

    assert oai.responses.retrieve(two.id).output_text == two.output_text
    items = oai.responses.input_items.list(two.id, order="asc")
    assert [_text_of(item.model_dump()) for item in items.data] == [
        "My name is Ada", reply_of(model, "My name is Ada"), "What is my name?",
    ]
    newest = oai.responses.input_items.list(two.id, limit=1)
    assert [_text_of(item.model_dump()) for item in newest.data] == ["What is my name?"]
    assert newest.has_more

    oai.responses.delete(two.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.retrieve(two.id)
    with pytest.raises(openai.NotFoundError):
        oai.responses.delete(two.id)


# --- keys --------------------------------------------------------------------------------------------

KEYS = {name: new_key(name) for name in ("alice", "bob")}


@pytest.fixture(scope="module")
def keyed_url(simulator_process: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One `ai-router http` (one worker) with two router keys."""
    directory: Path = tmp_path_factory.mktemp("responses-keys")
    keys = [{"name": name, "key_sha256": sha256_hex(key)} for name, key in KEYS.items()]
    config = AccessConfig(
        simulator_process,
        directory,
        {"auth": {"keys": keys}, "state": {"backend": "sqlite", "path": str(directory / "state.db")}},
    )
    port = free_port()
    env = {**config.env(), "HTTP_PORT": str(port), "WEB_CONCURRENCY": "1"}
    process: Process = start_process("responses-http", ["http"], env, directory, port)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_port(process)
        wait_for_worker(url)
        yield url
    finally:
        process.stop()



def test_a_stored_response_belongs_to_the_key_that_made_it(keyed_url: str) -> None:
    alice, bob = (
        openai.OpenAI(base_url=f"{keyed_url}/v1", api_key=KEYS[name], max_retries=0) for name in ("alice", "bob")
    )
    one = alice.responses.create(model=ANTHROPIC_MODEL, input="a secret")

    assert alice.responses.retrieve(one.id).id == one.id
    with pytest.raises(openai.NotFoundError):
        bob.responses.retrieve(one.id)
    with pytest.raises(openai.NotFoundError):
        bob.responses.delete(one.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        bob.responses.create(model=ANTHROPIC_MODEL, input="tell me", previous_response_id=one.id)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed_url}/v1", api_key="nope", max_retries=0).responses.retrieve(one.id)
