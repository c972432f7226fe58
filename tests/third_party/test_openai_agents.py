"""openai-agents: a Runner with a `@function_tool`, on chat completions and on the Responses API
(its default), against a model of each family through the router."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from agents import (
    Agent,
    MultiProvider,
    OpenAIChatCompletionsModel,
    RunConfig,
    Runner,
    function_tool,
    set_tracing_disabled,
)
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


@pytest.fixture(scope="module")
def default_models(client: openai.AsyncOpenAI) -> RunConfig:
    """The SDK's default for a model named by a string: the Responses API, through this client.
    The router's names are `provider/model`, and the SDK would read `openai/` as its own prefix
    (stripped) and `anthropic/` as an unknown one (an error): its `model_id` modes send them as
    they are, as its docs advise for OpenAI-compatible endpoints with namespaced ids."""
    provider = MultiProvider(openai_client=client, openai_prefix_mode="model_id", unknown_prefix_mode="model_id")
    return RunConfig(model_provider=provider)


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


# --- the Responses API, the Agents SDK's default ------------------------------------------------


def test_a_runner_calls_a_function_tool_on_the_responses_api(
    default_models: RunConfig, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(name="weather", instructions="Answer with the weather.", model=model.name, tools=[lookup])

    result = loop.run(Runner.run(agent, "Oslo", run_config=default_models))

    assert result.final_output == model.tool_said("3 C in Oslo")
    if model.family == "openai":
        # Relayed as the client sent it: Responses items, a strict function tool.
        first, second = upstream_bodies(simulator, "/v1/responses")
        [tool] = first["tools"]
        assert (tool["type"], tool["name"], tool["strict"]) == ("function", "lookup", True)
        assert first["instructions"] == "Answer with the weather."
        assert second["input"][-1]["type"] == "function_call_output"
    else:
        first, second = upstream_bodies(simulator, "/v1/messages")
        [tool] = first["tools"]
        assert (tool["name"], tool["strict"]) == ("lookup", True)
        assert first["system"] == "Answer with the weather."
        [block] = second["messages"][-1]["content"]
        assert (block["type"], block["content"]) == ("tool_result", "3 C in Oslo")


def test_a_runner_streams_a_tool_call_and_a_typed_output_on_the_responses_api(
    default_models: RunConfig, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    async def run(agent: Agent[None]) -> object:
        streamed = Runner.run_streamed(agent, "Oslo", run_config=default_models)
        async for _ in streamed.stream_events():
            pass
        return streamed.final_output

    assert loop.run(run(Agent(name="weather", model=model.name, tools=[lookup]))) == model.tool_said("3 C in Oslo")
    typed = loop.run(run(Agent(name="weather", model=model.name, output_type=Weather)))

    assert typed == Weather(city=model.reply("Oslo"), degrees=1)
    body = upstream_bodies(simulator, upstream_path(model, responses=True))[-1]
    if model.family == "openai":
        assert body["text"]["format"]["type"] == "json_schema"
    else:
        assert body["output_config"]["format"]["schema"]["additionalProperties"] is False
