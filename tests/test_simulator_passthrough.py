"""The simulator's embeddings and token counting, driven by the real openai and anthropic SDKs,
and refusing what the real APIs refuse, with their messages."""

from __future__ import annotations

import math
from typing import Any

import anthropic
import httpx2
import openai
import pytest


EMBEDDING_MODEL = "text-embedding-3-small"
INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def post(sim: str, path: str, body: Any, **headers: str) -> httpx2.Response:
    return httpx2.post(f"{sim}{path}", json=body, headers={"x-api-key": "k", **headers}, timeout=10)


# --- embeddings ------------------------------------------------------------------------------------


def test_an_embedding_is_a_unit_vector_of_the_models_dimensions(sim_oai: openai.OpenAI) -> None:
    answer = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input="hello there", encoding_format="float")

    vector = answer.data[0].embedding
    assert len(vector) == 1536
    assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0, rel_tol=1e-5)
    assert answer.model == EMBEDDING_MODEL
    assert (answer.usage.prompt_tokens, answer.usage.total_tokens) == (2, 2)


def test_the_sdks_default_base64_decodes_to_the_same_floats(sim_oai: openai.OpenAI) -> None:
    floats = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input="hello", encoding_format="float")
    default = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input="hello")  # base64 on the wire

    assert default.data[0].embedding == floats.data[0].embedding


def test_base64_on_the_wire_is_a_string(sim: str) -> None:
    answer = post(sim, "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": "hi",
                                          "encoding_format": "base64"})

    assert answer.status_code == 200
    assert isinstance(answer.json()["data"][0]["embedding"], str)


def test_vectors_are_a_function_of_model_and_input(sim_oai: openai.OpenAI) -> None:
    first = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input=["a", "b", "a"])
    other_model = sim_oai.embeddings.create(model="text-embedding-3-large", input="a")

    vectors = [item.embedding for item in first.data]
    assert [item.index for item in first.data] == [0, 1, 2]
    assert vectors[0] == vectors[2] != vectors[1]
    assert len(other_model.data[0].embedding) == 3072


def test_token_id_inputs_count_their_ids(sim_oai: openai.OpenAI) -> None:
    one = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input=[1, 2, 3])
    two = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input=[[1, 2], [3]])

    assert len(one.data) == 1 and one.usage.prompt_tokens == 3
    assert len(two.data) == 2 and two.usage.prompt_tokens == 3


def test_dimensions_shorten_the_vector_and_keep_it_unit(sim_oai: openai.OpenAI) -> None:
    answer = sim_oai.embeddings.create(model=EMBEDDING_MODEL, input="hi", dimensions=8)

    vector = answer.data[0].embedding
    assert len(vector) == 8
    assert math.isclose(math.sqrt(sum(value * value for value in vector)), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize(
    "value", ["", [], ["ok", ""], ["ok", 1], [[1], []], [-1], {"text": "hi"}, None, ["x"] * 2049]
)
def test_a_malformed_input_gets_the_apis_one_message(sim: str, value: Any) -> None:
    answer = post(sim, "/v1/embeddings", {"model": EMBEDDING_MODEL, "input": value})

    assert answer.status_code == 400
    assert answer.json() == {"error": {"message": INVALID_INPUT, "type": "invalid_request_error",
                                       "param": None, "code": None}}


def test_ada_002_refuses_dimensions(sim_oai: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="does not support specifying dimensions"):
        sim_oai.embeddings.create(model="text-embedding-ada-002", input="hi", dimensions=8)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "hi"}, "model"),
        ({"model": EMBEDDING_MODEL, "input": "hi", "encoding_format": "int8"}, "encoding_format"),
        ({"model": EMBEDDING_MODEL, "input": "hi", "dimensions": 0}, "dimensions"),
        ({"model": EMBEDDING_MODEL, "input": "hi", "dimensions": 1537}, "dimensions"),
    ],
)
def test_other_mistakes_name_their_field(sim: str, body: dict[str, Any], param: str) -> None:
    answer = post(sim, "/v1/embeddings", body)

    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == param


# --- token counting --------------------------------------------------------------------------------


def test_a_count_is_the_input_tokens_the_message_would_report(sim_ant: anthropic.Anthropic) -> None:
    request: dict[str, Any] = {
        "model": "claude-3-5-haiku-20241022",
        "system": "be brief",
        "messages": [{"role": "user", "content": "one two three"}],
    }

    counted = sim_ant.messages.count_tokens(**request)
    message = sim_ant.messages.create(max_tokens=5, **request)

    assert counted.input_tokens == message.usage.input_tokens == 5


def test_a_count_takes_tools_and_tool_choice(sim_ant: anthropic.Anthropic) -> None:
    counted = sim_ant.messages.count_tokens(
        model="claude-3-5-haiku-20241022",
        messages=[{"role": "user", "content": "weather?"}],
        tools=[{"name": "weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "auto"},
    )

    assert counted.input_tokens == 1


@pytest.mark.parametrize("field", ["max_tokens", "stream", "temperature", "metadata"])
def test_what_only_generation_takes_is_refused_as_the_api_refuses_it(
    sim_ant: anthropic.Anthropic, field: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sim_ant.messages.count_tokens(
            model="claude-3-5-haiku-20241022",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={field: 1},
        )

    assert caught.value.body == {
        "type": "error",
        "error": {"type": "invalid_request_error",
                  "message": f"{field}: Extra inputs are not permitted"},
    }


def test_the_messages_rules_apply_to_a_count(sim_ant: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="messages.0.role"):
        sim_ant.messages.count_tokens(
            model="claude-3-5-haiku-20241022",
            messages=[{"role": "system", "content": "hi"}],
        )
