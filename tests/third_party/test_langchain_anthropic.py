"""langchain-anthropic's ChatAnthropic: `with_structured_output`, `bind_tools` with a tool round
trip, and a stream with usage, against a model of each family through the router."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import tool
from pydantic import BaseModel, SecretStr
from support import Simulator

from .conftest import ROUTER_KEY, Model, upstream_bodies, upstream_path


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    degrees: int


@tool
def lookup(query: str) -> str:
    """Look the weather up for a city."""
    return f"3 C in {query}"


@pytest.fixture
def chat(http_url: str, model: Model) -> Iterator[ChatAnthropic]:
    yield ChatAnthropic(
        model_name=model.name, base_url=http_url, api_key=SecretStr(ROUTER_KEY), max_retries=0, timeout=60, stop=None
    )


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_with_structured_output(chat: ChatAnthropic, model: Model, simulator: Simulator, stream: bool) -> None:
    # langchain-anthropic's default: a forced tool named after the model, whose input is the output.
    structured = chat.with_structured_output(Weather)

    weather = list(structured.stream("Oslo"))[-1] if stream else structured.invoke("Oslo")

    assert weather == Weather(city="Oslo", degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
    else:
        assert body["tool_choice"] == {"type": "tool", "name": "Weather"}


def test_with_structured_output_as_json_schema(chat: ChatAnthropic, model: Model, simulator: Simulator) -> None:
    weather = chat.with_structured_output(Weather, method="json_schema").invoke("Oslo")

    assert weather == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        assert body["response_format"]["json_schema"]["strict"] is True
    else:
        assert body["output_config"]["format"]["type"] == "json_schema"


class Forecast(BaseModel):
    """A forecast, its note optional."""

    city: str
    note: str | None = None


def test_an_optional_field_in_a_json_schema_output(chat: ChatAnthropic, model: Model, simulator: Simulator) -> None:
    # Anthropic's strict outputs allow optional properties; OpenAI's strict mode refuses them.
    forecast = chat.with_structured_output(Forecast, method="json_schema").invoke("Oslo")

    assert forecast == Forecast(city=model.reply("Oslo"), note=model.reply("Oslo"))
    [body] = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        sent = body["response_format"]["json_schema"]
        assert (sent["schema"]["required"], "strict" in sent) == (["city"], False)


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_bind_tools_round_trip(chat: ChatAnthropic, model: Model, simulator: Simulator, stream: bool) -> None:
    bound = chat.bind_tools([lookup])
    messages: list[BaseMessage] = [HumanMessage("Oslo")]

    if stream:
        chunks = list(bound.stream(messages))
        call: AIMessage = sum(chunks[1:], chunks[0])
    else:
        call = bound.invoke(messages)
    [tool_call] = call.tool_calls
    assert (tool_call["name"], tool_call["args"]) == ("lookup", {"query": "Oslo"})
    messages += [call, lookup.invoke(tool_call)]
    answer = bound.invoke(messages)

    assert answer.content == model.tool_said("3 C in Oslo")
    if model.family == "openai":
        *_, last = upstream_bodies(simulator, "/v1/chat/completions")
        assert last["messages"][-1] == {"role": "tool", "tool_call_id": tool_call["id"], "content": "3 C in Oslo"}


def test_a_stream_reports_usage(chat: ChatAnthropic, model: Model, simulator: Simulator) -> None:
    chunks = list(chat.stream("Oslo"))

    assert "".join(str(chunk.content) for chunk in chunks if isinstance(chunk.content, str)) == model.reply("Oslo")
    total: AIMessageChunk = sum(chunks[1:], chunks[0])
    assert total.usage_metadata is not None
    # langchain-anthropic reads usage from message_start and message_delta; the simulator counts words.
    assert (total.usage_metadata["input_tokens"], total.usage_metadata["output_tokens"]) == (1, 5)
