"""openai-agents: a Runner with a `@function_tool`, on chat completions and on the Responses API
(its default), against a model of each family through the router."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled
from pydantic import BaseModel
from support import Simulator

from .conftest import ROUTER_KEY, Model, upstream_bodies, upstream_path


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.Runner]:
    """One event loop for the module: the async client's connections belong to it."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def client(http_url: str, loop: asyncio.Runner) -> Iterator[openai.AsyncOpenAI]:
    # Traces would otherwise be sent to OpenAI's own servers.
    set_tracing_disabled(True)
    client = openai.AsyncOpenAI(base_url=f"{http_url}/v1", api_key=ROUTER_KEY, max_retries=0)
    yield client
    loop.run(client.close())


@function_tool
def lookup(query: str) -> str:
    """Look the weather up for a city."""
    return f"3 C in {query}"


class Weather(BaseModel):
    city: str
    degrees: int


def test_a_runner_calls_a_function_tool_on_chat_completions(
    client: openai.AsyncOpenAI, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(
        name="weather",
        instructions="Answer with the weather.",
        model=OpenAIChatCompletionsModel(model=model.name, openai_client=client),
        tools=[lookup],
    )

    result = loop.run(Runner.run(agent, "Oslo"))

    assert result.final_output == model.tool_said("3 C in Oslo")
    first, second = upstream_bodies(simulator, upstream_path(model))
    [tool] = first["tools"]
    if model.family == "openai":
        assert tool["function"]["name"] == "lookup" and tool["function"]["strict"] is True
        assert second["messages"][-1]["role"] == "tool"
    else:
        assert (tool["name"], tool["strict"]) == ("lookup", True)
        assert first["system"] == "Answer with the weather."
        [block] = second["messages"][-1]["content"]
        assert (block["type"], block["content"]) == ("tool_result", "3 C in Oslo")


def test_a_runner_streams_a_typed_output_on_chat_completions(
    client: openai.AsyncOpenAI, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(
        name="weather",
        model=OpenAIChatCompletionsModel(model=model.name, openai_client=client),
        output_type=Weather,
    )

    async def run() -> object:
        streamed = Runner.run_streamed(agent, "Oslo")
        async for _ in streamed.stream_events():
            pass
        return streamed.final_output

    assert loop.run(run()) == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        assert body["response_format"]["json_schema"]["strict"] is True
    else:
        assert body["output_config"]["format"]["type"] == "json_schema"
