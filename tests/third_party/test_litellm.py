"""litellm's `completion` with `api_base` at the router, through its `openai/` and its `anthropic/`
prefix (so through each family's wire), unary and streamed, plain and with a tool round trip in
which litellm names the tool beside its call id, against a model of each family."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, cast

import pytest
from support import Simulator

# litellm fetches its model price map from the internet on import unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402
from openai.types.responses import ResponseOutputMessage, ResponseOutputText  # noqa: E402
from litellm import ChatCompletionMessageToolCall, Choices, Message, ModelResponse, Usage  # noqa: E402
from litellm.responses.streaming_iterator import BaseResponsesAPIStreamingIterator  # noqa: E402
from litellm.types.llms.openai import ResponseCompletedEvent, ResponsesAPIResponse  # noqa: E402

from .conftest import ROUTER_KEY, Model, upstream_bodies, upstream_path  # noqa: E402

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look the weather up for a city.",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
    },
}


def message_of(response: object) -> Message:
    assert isinstance(response, ModelResponse)
    choice = response.choices[0]
    assert isinstance(choice, Choices)
    return choice.message


def usage_of(response: object) -> Usage:
    usage = getattr(response, "usage", None)  # set on the response, not declared by its class
    assert isinstance(usage, Usage)
    return usage


@pytest.fixture(params=["openai", "anthropic"], ids=["openai-prefix", "anthropic-prefix"])
def call(request: pytest.FixtureRequest, http_url: str, model: Model) -> dict[str, Any]:
    """The arguments that send `model` through litellm's provider `prefix`, at the router."""
    base = f"{http_url}/v1" if request.param == "openai" else http_url
    return {"model": f"{request.param}/{model.name}", "api_base": base, "api_key": ROUTER_KEY, "max_tokens": 50}


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_completion(call: dict[str, Any], model: Model, simulator: Simulator, stream: bool) -> None:
    messages = [{"role": "user", "content": "Oslo"}]

    if stream:
        chunks = list(litellm.completion(messages=messages, stream=True, stream_options={"include_usage": True}, **call))
        response = litellm.stream_chunk_builder(chunks, messages=messages)
    else:
        response = litellm.completion(messages=messages, **call)

    assert message_of(response).content == model.reply("Oslo")
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens) == (1, 5)
    [body] = upstream_bodies(simulator, upstream_path(model))
    assert body["model"] == model.upstream


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_a_tool_round_trip(call: dict[str, Any], model: Model, simulator: Simulator, stream: bool) -> None:
    messages: list[Any] = [{"role": "user", "content": "Oslo"}]

    if stream:
        chunks = list(litellm.completion(messages=messages, tools=[LOOKUP], stream=True, **call))
        message = message_of(litellm.stream_chunk_builder(chunks, messages=messages))
    else:
        message = message_of(litellm.completion(messages=messages, tools=[LOOKUP], **call))
    [tool_call] = message.tool_calls or []
    assert isinstance(tool_call, ChatCompletionMessageToolCall)
    assert (tool_call.function.name, tool_call.function.arguments) == ("lookup", '{"query": "Oslo"}')
    messages += [
        message.model_dump(),
        # litellm's documented loop names the tool beside its call id.
        {"role": "tool", "tool_call_id": tool_call.id, "name": "lookup", "content": "3 C in Oslo"},
    ]
    answer = litellm.completion(messages=messages, tools=[LOOKUP], **call)

    assert message_of(answer).content == model.tool_said("3 C in Oslo")
    *_, last = upstream_bodies(simulator, upstream_path(model))
    if model.family == "anthropic":
        [result] = last["messages"][-1]["content"]
        assert (result["type"], result["tool_use_id"]) == ("tool_result", tool_call.id)
    else:
        assert last["messages"][-1]["tool_call_id"] == tool_call.id


# --- litellm.responses: the Responses API, through its openai/ prefix ----------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
def test_responses(http_url: str, model: Model, simulator: Simulator, stream: bool) -> None:
    call: dict[str, Any] = {"model": f"openai/{model.name}", "api_base": f"{http_url}/v1", "api_key": ROUTER_KEY}

    answer = litellm.responses(input="Oslo", stream=stream, **call)
    if isinstance(answer, BaseResponsesAPIStreamingIterator):
        *_, completed = list(cast(Iterator[object], answer))  # its subclasses iterate, untyped
        assert isinstance(completed, ResponseCompletedEvent)
        answer = completed.response
    assert isinstance(answer, ResponsesAPIResponse)
    response = answer

    [message] = response.output
    assert isinstance(message, ResponseOutputMessage)
    [part] = message.content
    assert isinstance(part, ResponseOutputText) and part.text == model.reply("Oslo")
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (1, 5)
    [body] = upstream_bodies(simulator, upstream_path(model, responses=True))
    assert body["model"] == model.upstream
    # litellm fakes a stream (one unary request, its answer replayed as events) for a model its
    # price map says does not stream natively, as it says of "anthropic/claude-3-5-haiku-...".
    assert body.get("stream", False) is (stream and model.family == "openai")
