"""pydantic-ai: a typed output (as a strict output tool and as native structured output) and a
tool, through its OpenAI chat model and its Anthropic model, against a model of each family."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import anthropic
import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, ToolOutput
from pydantic_ai.models import Model as AgentModel
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.profiles.anthropic import anthropic_model_profile
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider
from support import Simulator

from .conftest import ROUTER_KEY, Model, upstream_bodies, upstream_path


class Weather(BaseModel):
    city: str
    degrees: int


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.Runner]:
    """One event loop for the module: the async clients' connections belong to it."""
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def openai_client(http_url: str, loop: asyncio.Runner) -> Iterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=f"{http_url}/v1", api_key=ROUTER_KEY, max_retries=0)
    yield client
    loop.run(client.close())


@pytest.fixture(scope="module")
def anthropic_client(http_url: str, loop: asyncio.Runner) -> Iterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(base_url=http_url, api_key=ROUTER_KEY, max_retries=0)
    yield client
    loop.run(client.close())


@pytest.fixture(params=["openai-chat", "anthropic"])
def agent_model(
    request: pytest.FixtureRequest,
    model: Model,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> AgentModel:
    """pydantic-ai's model class of each family, naming `model`."""
    if request.param == "openai-chat":
        return OpenAIChatModel(model.name, provider=OpenAIProvider(openai_client=openai_client))
    # pydantic-ai reads what a model supports off its name, which "anthropic/..." never matches:
    # a router's user names the model's profile.
    return AnthropicModel(
        model.name,
        provider=AnthropicProvider(anthropic_client=anthropic_client),
        profile=anthropic_model_profile("claude-sonnet-4-5"),
    )


def test_a_typed_output_through_a_strict_output_tool(
    agent_model: AgentModel, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(agent_model, output_type=ToolOutput(Weather, strict=True))

    result = loop.run(agent.run("Oslo"))

    # A strict tool's simulated arguments fill every free string with the user's text.
    assert result.output == Weather(city="Oslo", degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model))
    [tool] = body["tools"]
    if model.family == "openai":
        assert (tool["function"]["name"], tool["function"]["strict"]) == ("final_result", True)
    else:
        assert (tool["name"], tool["strict"]) == ("final_result", True)


def test_a_typed_output_through_native_structured_output(
    agent_model: AgentModel, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(agent_model, output_type=NativeOutput(Weather))

    result = loop.run(agent.run("Oslo"))

    assert result.output == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        schema = body["response_format"]["json_schema"]["schema"]
    else:
        schema = body["output_config"]["format"]["schema"]
    assert sorted(schema["properties"]) == ["city", "degrees"]


def test_a_tool_round_trip(
    agent_model: AgentModel, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(agent_model, instructions="Answer with the weather.")

    @agent.tool_plain
    def lookup(query: str) -> str:
        """Look the weather up for a city."""
        return f"3 C in {query}"

    result = loop.run(agent.run("Oslo"))

    assert result.output == model.tool_said("3 C in Oslo")
    first, second = upstream_bodies(simulator, upstream_path(model))
    if model.family == "openai":
        assert first["tools"][0]["function"]["name"] == "lookup"
        assert second["messages"][-1] == {
            "role": "tool", "tool_call_id": second["messages"][-2]["tool_calls"][0]["id"], "content": "3 C in Oslo"
        }
    else:
        assert first["tools"][0]["name"] == "lookup"
        [block] = second["messages"][-1]["content"]
        assert block["type"] == "tool_result"
