"""simonw's llm, through its Python API: OpenAI-compatible models declared in
`extra-openai-models.yaml` (in a private `LLM_USER_PATH`) pointing at the router, on chat
completions and on the Responses API (`responses: true`), for a model of each family: a prompt
unary and streamed, a schema, and a tool that has no docstring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import llm
import pytest
import yaml
from pydantic import BaseModel
from support import Simulator

from .conftest import ANTHROPIC, OPENAI, Model, upstream_bodies, upstream_path


class Weather(BaseModel):
    city: str
    degrees: int


@pytest.fixture(scope="module")
def user_path(http_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """llm's configuration directory, naming one router model of each family."""
    path = tmp_path_factory.mktemp("llm")
    models = [
        {"model_id": f"router-{model.family}-{api}", "model_name": model.name, "api_base": f"{http_url}/v1",
         "supports_tools": True, "supports_schema": True, "responses": api == "responses"}
        for model in (OPENAI, ANTHROPIC) for api in ("chat", "responses")
    ]  # fmt: skip
    (path / "extra-openai-models.yaml").write_text(yaml.safe_dump(models))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LLM_USER_PATH", str(path))
        yield path


@pytest.fixture(params=[False, True], ids=["chat", "responses"])
def responses(request: pytest.FixtureRequest) -> bool:
    """Whether the model is declared to speak the Responses API."""
    chosen: bool = request.param
    return chosen


@pytest.fixture
def chat(user_path: Path, model: Model, responses: bool) -> llm.Model:
    return llm.get_model(f"router-{model.family}-{'responses' if responses else 'chat'}")


def test_a_prompt(chat: llm.Model, model: Model, simulator: Simulator) -> None:
    response = chat.prompt("Oslo", stream=False)

    assert response.text() == model.reply("Oslo")
    usage = response.usage()
    assert (usage.input, usage.output) == (1, 5)


def test_a_streamed_prompt(chat: llm.Model, model: Model, responses: bool, simulator: Simulator) -> None:
    pieces = list(chat.prompt("Oslo"))

    assert pieces == ["Simulated", " reply", " from", f" {model.upstream}:", " Oslo"]
    [body] = upstream_bodies(simulator, upstream_path(model, responses))
    assert body.get("stream") is True


def test_a_schema(chat: llm.Model, model: Model, responses: bool, simulator: Simulator) -> None:
    text = chat.prompt("Oslo", schema=Weather).text()

    assert Weather.model_validate_json(text) == Weather(city=model.reply("Oslo"), degrees=1)
    [body] = upstream_bodies(simulator, upstream_path(model, responses))
    if model.family == "openai":
        # llm's format is not strict, and OpenAI takes its schema as it is.
        format_ = body["text"]["format"] if responses else body["response_format"]["json_schema"]
        assert "additionalProperties" not in format_["schema"]
    else:
        # Anthropic refuses an object that is not closed; the router closes it.
        assert body["output_config"]["format"]["schema"]["additionalProperties"] is False


def lookup(query: str) -> str:
    return f"3 C in {query}"


def test_a_tool_without_a_docstring(chat: llm.Model, model: Model, responses: bool, simulator: Simulator) -> None:
    # llm sends `"description": null` for a function without a docstring.
    answer = chat.chain("Oslo", tools=[lookup]).text()

    assert answer == model.tool_said("3 C in Oslo")
    first, second = upstream_bodies(simulator, upstream_path(model, responses))
    if model.family == "openai":
        tool = first["tools"][0] if responses else first["tools"][0]["function"]
        assert (tool["name"], tool["description"]) == ("lookup", None)
    else:
        assert (first["tools"][0]["name"], first["tools"][0]["description"]) == ("lookup", "")
        [result] = second["messages"][-1]["content"]
        assert (result["type"], result["content"]) == ("tool_result", "3 C in Oslo")
