"""instructor's typed answers (`response_model=`) at the router: through the openai SDK in its
TOOLS and JSON_SCHEMA modes, and through the anthropic SDK in TOOLS mode, against a
model of each family. The simulator answers a JSON schema with an instance of it whose free
strings are its reply text, and a call to a forced tool with one whose free strings are the last
user text, so the typed object is predictable."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import instructor
import openai
import pytest
from pydantic import BaseModel
from support import Simulator

from .conftest import ROUTER_KEY, Model, upstream_bodies, upstream_path


class Weather(BaseModel):
    city: str
    sunny: bool


@pytest.fixture
def openai_client(http_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{http_url}/v1", api_key=ROUTER_KEY, max_retries=0) as client:
        yield client


@pytest.fixture
def anthropic_client(http_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=http_url, api_key=ROUTER_KEY, max_retries=0) as client:
        yield client


def asked(model: Model, simulator: Simulator) -> dict[str, Any]:
    [body] = upstream_bodies(simulator, upstream_path(model))
    return body


@pytest.mark.parametrize("mode", [instructor.Mode.TOOLS, instructor.Mode.JSON_SCHEMA], ids=["tools", "json-schema"])
def test_a_typed_answer_through_the_openai_sdk(
    openai_client: openai.OpenAI, model: Model, simulator: Simulator, mode: instructor.Mode
) -> None:
    client = instructor.from_openai(openai_client, mode=mode)

    weather = client.chat.completions.create(
        model=model.name,
        response_model=Weather,
        messages=[{"role": "user", "content": "Oslo"}],
        max_retries=0,
    )

    assert isinstance(weather, Weather)
    assert weather.city == ("Oslo" if mode is instructor.Mode.TOOLS else model.reply("Oslo"))
    body = asked(model, simulator)
    if model.family == "openai":  # relayed: instructor's own request
        if mode is instructor.Mode.TOOLS:
            assert body["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
        else:
            assert body["response_format"]["json_schema"]["schema"]["required"] == ["city", "sunny"]
    elif mode is instructor.Mode.TOOLS:  # translated: a forced tool
        assert body["tool_choice"] == {"type": "tool", "name": "Weather"}
    else:  # translated: Anthropic's JSON outputs
        assert body["output_config"]["format"]["schema"]["required"] == ["city", "sunny"]


def test_a_typed_answer_through_the_anthropic_sdk(
    anthropic_client: anthropic.Anthropic, model: Model, simulator: Simulator
) -> None:
    client = instructor.from_anthropic(anthropic_client, mode=instructor.Mode.TOOLS)

    weather = client.messages.create(
        model=model.name,
        response_model=Weather,
        messages=[{"role": "user", "content": "Oslo"}],
        max_tokens=200,
        max_retries=0,
    )

    assert isinstance(weather, Weather)
    assert weather.city == "Oslo"
    body = asked(model, simulator)
    if model.family == "anthropic":  # relayed: instructor's own request
        assert body["tool_choice"] == {"type": "tool", "name": "Weather", "disable_parallel_tool_use": True}
    else:  # translated: the tool forced in OpenAI's words
        assert body["tool_choice"] == {"type": "function", "function": {"name": "Weather"}}
