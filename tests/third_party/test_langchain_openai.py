"""langchain-openai's ChatOpenAI, on chat completions and on the Responses API
(`use_responses_api=True`): `with_structured_output`, `bind_tools` with a tool round trip, and a
stream with usage, against a model of each family through the router."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
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


@pytest.fixture(params=[False, True], ids=["chat", "responses"])
def responses(request: pytest.FixtureRequest) -> bool:
    """Whether ChatOpenAI speaks the Responses API."""
    chosen: bool = request.param
    return chosen


@pytest.fixture
def chat(http_url: str, model: Model, responses: bool) -> Iterator[ChatOpenAI]:
    yield ChatOpenAI(
        model=model.name,
        base_url=f"{http_url}/v1",
        api_key=SecretStr(ROUTER_KEY),
        max_retries=0,
        use_responses_api=responses,
        stream_usage=True,
    )


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_with_structured_output(
    chat: ChatOpenAI, model: Model, responses: bool, simulator: Simulator, stream: bool
) -> None:
    structured = chat.with_structured_output(Weather)

    weather = list(structured.stream("Oslo"))[-1] if stream else structured.invoke("Oslo")

    assert weather == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model, responses))
    if model.family == "openai":
        named = body["text"]["format"] if responses else body["response_format"]["json_schema"]
        assert named["name"] == "Weather"
    else:
        assert sorted(body["output_config"]["format"]["schema"]["properties"]) == ["city", "degrees"]


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_bind_tools_round_trip(
    chat: ChatOpenAI, model: Model, responses: bool, simulator: Simulator, stream: bool
) -> None:
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

    assert answer.text == model.tool_said("3 C in Oslo")
    *_, last = upstream_bodies(simulator, upstream_path(model, responses))
    if model.family == "anthropic":
        [result] = last["messages"][-1]["content"]
        assert (result["type"], result["tool_use_id"], result["content"]) == (
            "tool_result", tool_call["id"], "3 C in Oslo"
        )
    elif responses:
        output = last["input"][-1]
        assert (output["type"], output["call_id"], output["output"]) == (
            "function_call_output", tool_call["id"], "3 C in Oslo"
        )
    else:
        assert last["messages"][-1] == {"role": "tool", "tool_call_id": tool_call["id"], "content": "3 C in Oslo"}


def test_a_stream_reports_usage(chat: ChatOpenAI, model: Model, simulator: Simulator) -> None:
    chunks = list(chat.stream("Oslo"))

    total: AIMessageChunk = sum(chunks[1:], chunks[0])
    assert total.text == model.reply("Oslo")
    assert total.usage_metadata is not None
    # The simulator counts words: one in, five out.
    assert (total.usage_metadata["input_tokens"], total.usage_metadata["output_tokens"]) == (1, 5)
