"""The simulator's structured output, thinking and stream usage, driven by the real openai and
anthropic SDKs (their parse helpers included), and the JSON instances it answers with."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from pydantic import BaseModel

from ai_router.simulator.json_instance import instance

USER: Any = [{"role": "user", "content": "hello there world"}]
TEXT = "Simulated reply from m: hello there world"


class City(BaseModel):
    name: str
    population: int
    tags: list[str]


# --- JSON instances ------------------------------------------------------------------------------


def test_an_instance_fills_every_property_and_each_free_string_with_the_text() -> None:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "size": {"type": ["number", "null"]},
            "kind": {"enum": ["big", "small"]},
            "when": {"type": "string", "format": "date-time"},
            "child": {"$ref": "#/$defs/Child"},
            "either": {"anyOf": [{"type": "boolean"}, {"type": "string"}]},
        },
        "$defs": {
            "Child": {"type": "object", "properties": {"n": {"type": "integer"}, "xs": {"type": "array", "items": {"const": 7}}}}
        },
    }

    assert instance(schema, "t") == {
        "name": "t",
        "size": 1.5,
        "kind": "big",
        "when": "2024-01-01T00:00:00Z",
        "child": {"n": 1, "xs": [7]},
        "either": True,
    }


def test_a_recursive_schema_ends_in_null() -> None:
    node = {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}
    schema = {"$ref": "#/$defs/Node", "$defs": {"Node": node}}

    value = instance(schema, "t")

    depth = 0
    while isinstance(value, dict):
        value, depth = value["next"], depth + 1
    assert value is None and depth > 1


# --- OpenAI --------------------------------------------------------------------------------------


def test_openai_structured_output_parses_into_the_model(sim_oai: openai.OpenAI) -> None:
    completion = sim_oai.chat.completions.parse(model="m", messages=USER, response_format=City)

    assert completion.choices[0].message.parsed == City(name=TEXT, population=1, tags=[TEXT])


def test_openai_json_mode_is_a_json_object(sim_oai: openai.OpenAI) -> None:
    completion = sim_oai.chat.completions.create(model="m", messages=USER, response_format={"type": "json_object"})

    assert json.loads(completion.choices[0].message.content or "") == {"reply": TEXT}


@pytest.mark.parametrize(
    ("changes", "param"),
    [
        ({"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}}, "response_format.json_schema.name"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        # Strict mode: every object closed, every property required.
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "o", "strict": True, "schema": {
            "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}}}},
         "response_format"),
        ({"tools": [{"type": "function", "function": {"name": "w", "strict": True, "parameters": {
            "type": "object", "properties": {}}}}]}, "tools[0].function.parameters"),
    ],
)
def test_openai_bad_formats_and_efforts_are_refused(sim_oai: openai.OpenAI, changes: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sim_oai.chat.completions.create(model="m", messages=USER, extra_body=changes)

    assert caught.value.param == param


# --- Anthropic -----------------------------------------------------------------------------------


def test_anthropic_json_outputs_parse_into_the_model(sim_ant: anthropic.Anthropic) -> None:
    message = sim_ant.messages.parse(model="m", max_tokens=200, messages=USER, output_format=City)

    assert message.parsed_output == City(name=TEXT, population=1, tags=[TEXT])


def test_anthropic_thinking_comes_first_signed_and_counts_as_output(sim_ant: anthropic.Anthropic) -> None:
    message = sim_ant.messages.create(
        model="m", max_tokens=2000, messages=USER, thinking={"type": "enabled", "budget_tokens": 1024}
    )

    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.thinking == "Simulated thinking about: hello there world"
    assert thinking.signature
    assert text.type == "text" and text.text == TEXT
    # 6 words of thinking and 7 of text.
    assert message.usage.output_tokens == 13


def test_anthropic_thinking_streams_as_its_own_block_with_a_signature(sim_ant: anthropic.Anthropic) -> None:
    with sim_ant.messages.stream(
        model="m", max_tokens=100, messages=USER, thinking={"type": "adaptive"}, output_config={"effort": "low"}
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()

    thinking, text = final.content
    assert thinking.type == "thinking" and thinking.thinking == "Simulated thinking about: hello there world"
    assert text.type == "text"
    deltas = [(event.index, event.delta.type) for event in events if event.type == "content_block_delta"]
    assert deltas == [*[(0, "thinking_delta")] * 6, (0, "signature_delta"), *[(1, "text_delta")] * 7]
    assert (final.stop_reason, final.usage.output_tokens) == ("end_turn", 13)


def test_omitted_thinking_is_an_empty_block_that_still_costs(sim_ant: anthropic.Anthropic) -> None:
    message = sim_ant.messages.create(
        model="m", max_tokens=100, messages=USER, thinking={"type": "adaptive", "display": "omitted"}
    )

    assert message.content[0].type == "thinking" and message.content[0].thinking == ""
    assert message.usage.output_tokens == 13


def test_thinking_takes_the_token_limit_first(sim_ant: anthropic.Anthropic) -> None:
    with sim_ant.messages.stream(model="m", max_tokens=6, messages=USER, thinking={"type": "adaptive"}) as stream:
        final = stream.get_final_message()

    thinking, text = final.content
    assert thinking.type == "thinking" and text.type == "text"
    assert (text.text, final.stop_reason) == ("", "max_tokens")


def test_anthropic_stream_usage_has_input_tokens_in_message_delta(sim: str) -> None:
    body = {"model": "m", "max_tokens": 50, "messages": USER, "stream": True}

    text = httpx2.post(f"{sim}/v1/messages", json=body, headers={"x-api-key": "k"}).text

    [delta] = [line for line in text.splitlines() if line.startswith('data: {"type":"message_delta"')]
    assert json.loads(delta[len("data: "):])["usage"] == {"input_tokens": 3, "output_tokens": 7}


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"thinking": {"type": "enabled", "budget_tokens": 1000}}, "thinking.budget_tokens"),
        ({"max_tokens": 1024, "thinking": {"type": "enabled", "budget_tokens": 1024}}, "max_tokens"),
        ({"thinking": {"type": "adaptive"}, "temperature": 0.5}, "temperature"),
        ({"thinking": {"type": "adaptive"}, "top_k": 5}, "top_k"),
        ({"thinking": {"type": "disabled", "display": "omitted"}}, "thinking.display"),
        ({"thinking": {"type": "enabled", "budget_tokens": 1024},
          "tools": [{"name": "w", "input_schema": {"type": "object"}}], "tool_choice": {"type": "any"}}, "tool_choice"),
        ({"output_config": {"format": {"type": "json_object"}}}, "output_config.format.type"),
        ({"output_config": {"format": {"type": "json_schema"}}}, "output_config.format.schema"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort"),
        # JSON outputs and strict tools take closed objects only.
        ({"output_config": {"format": {"type": "json_schema", "schema": {"type": "object", "properties": {}}}}},
         "output_config.format.schema: For 'object' type, 'additionalProperties' must be explicitly set to false"),
        ({"tools": [{"name": "w", "strict": True, "input_schema": {
            "type": "object", "properties": {"at": {"type": "object", "additionalProperties": True}},
            "additionalProperties": False}}]}, "tools.0.input_schema: For 'object' type"),
    ],
)
def test_anthropic_refuses_what_the_real_api_refuses(
    sim_ant: anthropic.Anthropic, changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        # The SDK takes temperature and top_k only in extra_body; it overrides max_tokens too.
        sim_ant.messages.create(model="m", max_tokens=2000, messages=USER, extra_body=changes)

    assert fragment in str(caught.value)


def test_thinking_blocks_of_earlier_answers_are_taken_back(sim_ant: anthropic.Anthropic) -> None:
    first = sim_ant.messages.create(model="m", max_tokens=100, messages=USER, thinking={"type": "adaptive"})
    turns: Any = [*USER, {"role": "assistant", "content": first.content}, {"role": "user", "content": "again"}]

    again = sim_ant.messages.create(model="m", max_tokens=100, messages=turns, thinking={"type": "adaptive"})

    text = again.content[1]
    assert text.type == "text" and text.text == "Simulated reply from m: again"


def test_a_forced_tool_without_a_query_is_called_with_its_own_schema(sim_oai: openai.OpenAI) -> None:
    """A typed output through a forced tool (langchain's and pydantic-ai's default) gets arguments that
    match the tool, as a model would give; a tool that takes a `query` still gets only that."""
    weather = {"type": "object", "properties": {"city": {"type": "string"}, "degrees": {"type": "integer"}}}
    tools: Any = [{"type": "function", "function": {"name": "Weather", "parameters": weather}}]

    answer = sim_oai.chat.completions.create(model="m", messages=USER, tools=tools)

    [call] = answer.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert json.loads(call.function.arguments) == {"city": USER[0]["content"], "degrees": 1}
