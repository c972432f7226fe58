"""Issue 20's translation findings, each as the client that met it does it, through the real
router and simulator: what the SDK got, and what the upstream of the other family received.
The rules themselves: docs/TRANSLATION.md."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel
from support import Simulator

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"


class Weather(BaseModel):
    city: str
    degrees: int


# --- an OpenAI client, an Anthropic model --------------------------------------------------------


def test_the_sdks_own_loop_appends_each_answer_and_goes_on(oai: openai.OpenAI, simulator: Simulator) -> None:
    messages: list[Any] = [{"role": "user", "content": "hello"}]
    for question in ("and again", "once more"):
        choice = oai.chat.completions.create(model=ANTHROPIC_MODEL, messages=messages).choices[0]
        messages.append(choice.message)  # carries "refusal": null
        messages.append({"role": "user", "content": question})

    last = oai.chat.completions.create(model=ANTHROPIC_MODEL, messages=messages)

    assert last.choices[0].message.content == "Simulated reply from claude-3-5-haiku-20241022: once more"
    sent = simulator.last_request()["body"]["messages"]
    assert [turn["role"] for turn in sent] == ["user", "assistant"] * 2 + ["user"]


def test_a_strict_pydantic_tool_and_a_named_tool_result_reach_anthropic(oai: openai.OpenAI, simulator: Simulator) -> None:
    tool = openai.pydantic_function_tool(Weather)
    first = oai.chat.completions.create(
        model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "Oslo"}], tools=[tool]
    )
    [call] = first.choices[0].message.tool_calls or []
    assert call.type == "function"
    # A strict tool's arguments match its schema.
    assert json.loads(call.function.arguments) == {"city": "Oslo", "degrees": 1}
    followed: list[Any] = [
        {"role": "user", "content": "Oslo"},
        {"role": "assistant", "tool_calls": [call.model_dump(exclude_unset=True)]},
        # litellm and instructor name the tool beside the call id.
        {"role": "tool", "tool_call_id": call.id, "content": "3 C", "name": "Weather"},
    ]

    answer = oai.chat.completions.create(model=ANTHROPIC_MODEL, messages=followed, tools=[tool])

    assert answer.choices[0].message.content == "Simulated reply from claude-3-5-haiku-20241022: tool said: 3 C"
    [sent] = simulator.last_request()["body"]["tools"]
    assert (sent["name"], sent["strict"]) == ("Weather", True)
    assert sent["input_schema"]["additionalProperties"] is False


def test_structured_output_parses_from_an_anthropic_model(oai: openai.OpenAI, simulator: Simulator) -> None:
    completion = oai.chat.completions.parse(
        model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "Oslo"}], response_format=Weather
    )

    assert completion.choices[0].message.parsed == Weather(
        city="Simulated reply from claude-3-5-haiku-20241022: Oslo", degrees=1
    )
    body = simulator.last_request()["body"]
    output = body["output_config"]["format"]
    assert (output["type"], sorted(output["schema"]["properties"])) == ("json_schema", ["city", "degrees"])
    assert "response_format" not in body


def test_reasoning_effort_is_adaptive_thinking_and_comes_back_as_reasoning_content(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    completion = oai.chat.completions.create(
        model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "think"}], reasoning_effort="medium"
    )

    message = completion.choices[0].message
    assert (message.model_extra or {})["reasoning_content"] == "Simulated thinking about: think"
    assert message.content == "Simulated reply from claude-3-5-haiku-20241022: think"
    body = simulator.last_request()["body"]
    assert body["thinking"] == {"type": "adaptive", "display": "summarized"}
    assert body["output_config"] == {"effort": "medium"}

    chunks = list(oai.chat.completions.create(
        model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "think"}], reasoning_effort="low", stream=True
    ))
    deltas = [chunk.choices[0].delta.model_extra or {} for chunk in chunks if chunk.choices]
    reasoning = "".join(delta.get("reasoning_content", "") for delta in deltas)
    assert reasoning == "Simulated thinking about: think"


def test_json_mode_is_refused_for_anthropic_naming_the_way_that_works(oai: openai.OpenAI, simulator: Simulator) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model=ANTHROPIC_MODEL, messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
        )

    assert caught.value.param == "response_format"
    assert "json_schema" in caught.value.message
    assert simulator.requests() == []


# --- an Anthropic client, an OpenAI model --------------------------------------------------------


def test_anthropic_structured_output_parses_from_an_openai_model(ant: anthropic.Anthropic, simulator: Simulator) -> None:
    message = ant.messages.parse(
        model=OPENAI_MODEL, max_tokens=200, messages=[{"role": "user", "content": "Oslo"}], output_format=Weather
    )

    assert message.parsed_output == Weather(city="Simulated reply from gpt-4o-mini: Oslo", degrees=1)
    sent = simulator.last_request()["body"]["response_format"]
    assert (sent["type"], sent["json_schema"]["name"], sent["json_schema"]["strict"]) == ("json_schema", "output", True)


def test_custom_strict_tools_without_a_description_reach_openai(ant: anthropic.Anthropic, simulator: Simulator) -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"], "additionalProperties": False}

    message = ant.messages.create(
        model=OPENAI_MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": "find"}],
        # llm sends a null description for a function without a docstring.
        extra_body={"tools": [
            {"type": "custom", "name": "lookup", "description": None, "input_schema": schema, "strict": True}
        ]},
    )

    assert message.stop_reason == "tool_use"
    [call] = message.content
    assert call.type == "tool_use" and call.input == {"q": "find"}
    [tool] = simulator.last_request()["body"]["tools"]
    function = {"name": "lookup", "description": "", "parameters": schema, "strict": True}
    assert tool == {"type": "function", "function": function}


def test_a_thinking_conversation_reaches_openai_as_a_reasoning_effort(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    with ant.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=2000, messages=[{"role": "user", "content": "hi"}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        first = stream.get_final_message()
    turns: Any = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": "and?"},
    ]

    with ant.messages.stream(
        model=OPENAI_MODEL, max_tokens=20000, messages=turns, thinking={"type": "enabled", "budget_tokens": 16384}
    ) as stream:
        final = stream.get_final_message()

    assert final.content[0].type == "text"
    body = simulator.last_request()["body"]
    assert body["reasoning_effort"] == "high"
    # The thinking block, signed by Anthropic, is let go; the answer's text stays.
    assert body["messages"][1] == {"role": "assistant", "content": "Simulated reply from claude-3-5-haiku-20241022: hi"}
    assert json.dumps(body).count("signature") == 0
    # An OpenAI upstream reports usage only at the end: message_delta carries input tokens too.
    assert final.usage.input_tokens > 0
