"""The drop-in /v1 endpoints beyond the conformance matrix: relaying, refusals, errors, models."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest
from anthropic.types import MessageParam
from openai.types.chat import ChatCompletionMessageParam
from support import ANTHROPIC_TEST_KEY, OPENAI_TEST_KEY, Simulator

OPENAI_MODEL = "openai/gpt-4o-mini"
ANTHROPIC_MODEL = "anthropic/claude-3-5-haiku-20241022"
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello"}]
ANTHROPIC_HELLO: list[MessageParam] = [{"role": "user", "content": "hello"}]


# --- relaying within a family --------------------------------------------------------------------


def test_a_same_family_request_reaches_the_upstream_untouched_but_for_the_model(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    extra = {"logprobs": False, "seed": 7, "metadata": {"team": "a"}, "service_tier": "auto"}

    oai.chat.completions.create(
        model=OPENAI_MODEL, messages=HELLO, max_completion_tokens=9, extra_body=extra
    )

    sent = simulator.last_request()
    assert sent["body"] == {
        "model": "gpt-4o-mini",
        "messages": HELLO,
        "max_completion_tokens": 9,
        **extra,
    }
    # The provider's key is used; the client's own key never travels upstream.
    assert sent["headers"]["authorization"] == f"Bearer {OPENAI_TEST_KEY}"
    assert "client-key" not in str(sent["headers"])


def test_an_anthropic_relay_keeps_fields_the_router_does_not_know(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    message = ant.messages.create(
        model=ANTHROPIC_MODEL,
        max_tokens=20,
        messages=ANTHROPIC_HELLO,
        extra_body={"service_tier": "auto", "future_field": {"x": 1}},
    )

    assert message.model == ANTHROPIC_MODEL
    sent = simulator.last_request()
    assert sent["body"]["future_field"] == {"x": 1}
    assert sent["body"]["model"] == "claude-3-5-haiku-20241022"
    assert ANTHROPIC_TEST_KEY in sent["headers"].get("x-api-key", "") + sent["headers"].get(
        "authorization", ""
    )


def test_the_relayed_stream_names_the_model_as_the_client_can_send_it_back(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    chunks = list(
        oai.chat.completions.create(model=OPENAI_MODEL, messages=HELLO, stream=True)
    )

    assert {chunk.model for chunk in chunks} == {OPENAI_MODEL}


# --- what cannot be translated -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_openai_features_with_no_anthropic_equivalent_are_a_400_naming_them(
    oai: openai.OpenAI, simulator: Simulator, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model=ANTHROPIC_MODEL, messages=HELLO, extra_body=extra)

    assert caught.value.param == param
    assert f"{param} cannot be translated for provider 'anthropic'" in caught.value.message
    assert simulator.requests() == []


def test_an_audio_part_is_a_400_naming_the_part(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    audio: Any = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}

    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model=ANTHROPIC_MODEL,
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, audio]}],
        )

    assert caught.value.param == "messages[0].content[1]"
    assert "'input_audio' parts have no equivalent" in caught.value.message


def test_anthropic_thinking_reaches_an_openai_provider_as_a_reasoning_effort(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    ant.messages.create(
        model=OPENAI_MODEL,
        max_tokens=2048,
        messages=ANTHROPIC_HELLO,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )

    assert simulator.requests()[0]["body"]["reasoning_effort"] == "low"


def test_an_anthropic_server_tool_is_a_400_for_an_openai_provider(
    ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        ant.messages.create(
            model=OPENAI_MODEL,
            max_tokens=50,
            messages=ANTHROPIC_HELLO,
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )

    assert "tools[0].type cannot be translated for provider 'openai'" in str(caught.value)
    assert simulator.requests() == []


# --- errors in each family's format --------------------------------------------------------------


def test_an_unknown_model_is_not_found_in_each_sdk(
    oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    with pytest.raises(openai.NotFoundError) as openai_error:
        oai.chat.completions.create(model="nowhere/model", messages=HELLO)
    with pytest.raises(anthropic.NotFoundError) as anthropic_error:
        ant.messages.create(model="gpt-4o", max_tokens=5, messages=ANTHROPIC_HELLO)

    assert "neither an alias nor provider/model" in openai_error.value.message
    assert anthropic_error.value.body["type"] == "error"  # type: ignore[index]
    assert anthropic_error.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


def test_malformed_bodies_get_each_familys_error_shape(http_url: str) -> None:
    openai_reply = httpx2.post(f"{http_url}/v1/chat/completions", content=b"{oops")
    anthropic_reply = httpx2.post(f"{http_url}/v1/messages", content=b"[]")

    assert openai_reply.status_code == 400
    assert set(openai_reply.json()["error"]) == {"message", "type", "param", "code"}
    assert anthropic_reply.status_code == 400
    assert anthropic_reply.json()["error"]["type"] == "invalid_request_error"
    assert "must be a JSON object" in anthropic_reply.json()["error"]["message"]


def test_a_translated_request_missing_a_field_names_it(
    http_url: str, simulator: Simulator
) -> None:
    reply = httpx2.post(
        f"{http_url}/v1/messages",
        json={"model": OPENAI_MODEL, "messages": HELLO},  # no max_tokens
    )

    assert reply.status_code == 400
    assert reply.json()["error"]["message"].startswith("max_tokens: Field required")


def test_an_upstream_rate_limit_reaches_the_openai_sdk_as_rate_limit_error(
    oai: openai.OpenAI, simulator: Simulator
) -> None:
    simulator.fail_next({"status": 429, "retry_after": 4})

    with pytest.raises(openai.RateLimitError) as caught:
        oai.chat.completions.create(model=ANTHROPIC_MODEL, messages=HELLO)

    assert caught.value.response.headers["retry-after"] == "4"


def test_the_request_id_reaches_each_sdk(
    oai: openai.OpenAI, ant: anthropic.Anthropic, simulator: Simulator
) -> None:
    openai_reply = oai.chat.completions.with_raw_response.create(
        model=OPENAI_MODEL, messages=HELLO, extra_headers={"X-Request-ID": "rid-1"}
    )
    anthropic_reply = ant.messages.with_raw_response.create(
        model=ANTHROPIC_MODEL, max_tokens=5, messages=ANTHROPIC_HELLO, extra_headers={"X-Request-ID": "rid-2"}
    )

    assert openai_reply.request_id == "rid-1"
    assert anthropic_reply.request_id == "rid-2"


# --- models --------------------------------------------------------------------------------------


def test_models_lists_every_configured_model_as_provider_slash_model(
    oai: openai.OpenAI,
) -> None:
    ids = [model.id for model in oai.models.list()]

    assert sorted(ids) == [ANTHROPIC_MODEL, OPENAI_MODEL, "spare/spare-model"]
    assert oai.models.retrieve(ANTHROPIC_MODEL).owned_by == "anthropic"
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("openai/unknown")
