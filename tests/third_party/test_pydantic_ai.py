"""pydantic-ai: a typed output (as a strict output tool and as native structured output) and a
tool, through its OpenAI chat model, its OpenAI Responses model and its Anthropic model, against
a model of each family."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from pydantic import BaseModel
from pydantic_ai import Agent, NativeOutput, ToolOutput
from pydantic_ai.models import Model as AgentModel
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
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


@dataclass(frozen=True)
class Client:
    """One of pydantic-ai's model classes naming a model through the router, and the upstream
    endpoint that model's requests reach."""

    model: AgentModel
    path: str


@pytest.fixture(params=["openai-chat", "openai-responses", "anthropic"])
def client(
    request: pytest.FixtureRequest,
    model: Model,
    openai_client: openai.AsyncOpenAI,
    anthropic_client: anthropic.AsyncAnthropic,
) -> Client:
    """pydantic-ai's model class of each wire, naming `model`."""
    if request.param == "openai-chat":
        chat = OpenAIChatModel(model.name, provider=OpenAIProvider(openai_client=openai_client))
        return Client(chat, upstream_path(model))
    if request.param == "openai-responses":
        responses = OpenAIResponsesModel(model.name, provider=OpenAIProvider(openai_client=openai_client))
        return Client(responses, upstream_path(model, responses=True))
    # pydantic-ai reads what a model supports off its name, which "anthropic/..." never matches:
    # a router's user names the model's profile.
    messages = AnthropicModel(
        model.name,
        provider=AnthropicProvider(anthropic_client=anthropic_client),
        profile=anthropic_model_profile("claude-sonnet-4-5"),
    )
    return Client(messages, upstream_path(model))


def sent_tool(body: dict[str, Any]) -> tuple[str, bool]:
    """The name and strictness of the one tool an upstream request declares, in any of the wires."""
    [tool] = body["tools"]
    declared = tool.get("function", tool)  # Chat Completions nests it; Responses and Messages don't
    return declared["name"], declared.get("strict", False)


def sent_schema(body: dict[str, Any]) -> dict[str, Any]:
    """The structured-output schema of an upstream request, in any of the wires."""
    if "response_format" in body:
        schema: dict[str, Any] = body["response_format"]["json_schema"]["schema"]
    elif "text" in body:
        schema = body["text"]["format"]["schema"]
    else:
        schema = body["output_config"]["format"]["schema"]
    return schema


def test_a_typed_output_through_a_strict_output_tool(
    client: Client, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(client.model, output_type=ToolOutput(Weather, strict=True))

    result = loop.run(agent.run("Oslo"))

    # A strict tool's simulated arguments fill every free string with the user's text.
    assert result.output == Weather(city="Oslo", degrees=1)
    [body] = upstream_bodies(simulator, client.path)
    assert sent_tool(body) == ("final_result", True)


def test_a_typed_output_through_native_structured_output(
    client: Client, loop: asyncio.Runner, model: Model, simulator: Simulator
) -> None:
    agent = Agent(client.model, output_type=NativeOutput(Weather))

    result = loop.run(agent.run("Oslo"))

    assert result.output == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, client.path)
    schema = sent_schema(body)
    assert (sorted(schema["properties"]), schema["additionalProperties"]) == (["city", "degrees"], False)


def test_a_tool_round_trip(client: Client, loop: asyncio.Runner, model: Model, simulator: Simulator) -> None:
    agent = Agent(client.model, instructions="Answer with the weather.")

    @agent.tool_plain
    def lookup(query: str) -> str:
        """Look the weather up for a city."""
        return f"3 C in {query}"

    result = loop.run(agent.run("Oslo"))

    assert result.output == model.tool_said("3 C in Oslo")
    first, second = upstream_bodies(simulator, client.path)
    assert sent_tool(first)[0] == "lookup"
    last = (second.get("input") or second["messages"])[-1]
    if client.path == "/v1/messages":
        [block] = last["content"]
        # Relayed from pydantic-ai as text blocks; translated from the others as a string.
        content = block["content"] if isinstance(block["content"], str) else block["content"][0]["text"]
        assert (block["type"], content) == ("tool_result", "3 C in Oslo")
    elif client.path == "/v1/responses":
        assert (last["type"], last["output"]) == ("function_call_output", "3 C in Oslo")
    else:
        assert (last["role"], last["content"]) == ("tool", "3 C in Oslo")
