"""The core, with an injected fake provider: name resolution, defaults and streams."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import pytest
from support import Simulator, free_port

from ai_router.answers import Account, Completion, RelayedStream
from ai_router.call import Call, Relayable
from ai_router.config import ProviderSettings, settings_from_mapping
from ai_router.errors import (
    InvalidRequest,
    NotFound,
    ProviderNotConfigured,
    StateUnavailable,
    UpstreamTimeout,
)
from ai_router.providers.base import Provider
from ai_router.providers.fake_transport import FakeAnswer, FakeRequest, FakeUpstream
from ai_router.router import Router
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, Message, ToolCall, Usage
from ai_router.upstream_watch import Watch

HELLO = (Message("user", "hello"),)


class FakeProvider(Provider):
    """Answers with the model it was asked for and records every request: the whole contract
    a provider has to meet is `complete` and `stream`."""

    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self.requests: list[ChatRequest] = []
        self.closed_streams = 0

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse("ok", "stop", Usage(1, 1), self.name, request.model)

    def stream(self, request: ChatRequest, watch: Watch) -> Generator[ChatChunk, None, None]:
        self.requests.append(request)
        try:
            yield ChatChunk(delta="a")
            yield ChatChunk(delta="b")
            yield ChatChunk(finish_reason="stop", usage=Usage(1, 2))
        finally:
            self.closed_streams += 1


def fake_router(**provider_overrides: object) -> tuple[Router, dict[str, FakeProvider]]:
    settings = settings_from_mapping(
        {
            "providers": {
                "openai": {"default_model": "gpt-4o-mini", "default_max_tokens": 100},
                "local": {
                    "type": "openai",
                    "default_model": "meta-llama/Llama-3.1-8B",
                    **provider_overrides,
                },
            }
        },
        {"OPENAI_API_KEY": "k", "LOCAL_API_KEY": "k"},
    )
    providers = {name: FakeProvider(p) for name, p in settings.providers.items()}
    return Router(settings, providers), providers


def test_a_provider_with_no_model_gets_its_default_model_and_max_tokens() -> None:
    router, providers = fake_router()

    router.complete(ChatRequest(messages=HELLO, provider="openai"))

    sent = providers["openai"].requests[-1]
    assert (sent.provider, sent.model, sent.max_tokens) == ("openai", "gpt-4o-mini", 100)


def test_a_model_written_provider_slash_model_selects_the_provider() -> None:
    router, providers = fake_router()

    response = router.complete(ChatRequest(messages=HELLO, model="openai/gpt-4o", max_tokens=7))

    assert (response.provider, response.model) == ("openai", "gpt-4o")
    assert providers["openai"].requests[-1].max_tokens == 7


def test_a_model_id_with_its_own_slash_is_kept_whole() -> None:
    router, providers = fake_router()

    router.complete(ChatRequest(messages=HELLO, provider="local", model="qwen/Qwen2.5-7B"))
    router.complete(ChatRequest(messages=HELLO, model="local/qwen/Qwen2.5-7B"))

    assert [r.model for r in providers["local"].requests] == ["qwen/Qwen2.5-7B"] * 2


def test_conflicting_provider_and_model_prefix_is_invalid() -> None:
    router, _ = fake_router()

    with pytest.raises(InvalidRequest, match="name different providers"):
        router.complete(ChatRequest(messages=HELLO, provider="local", model="openai/gpt-4o"))


def test_unknown_providers_and_unprefixed_models_are_not_found() -> None:
    router, _ = fake_router()

    with pytest.raises(NotFound, match="unknown provider 'nope'; configured providers: openai"):
        router.complete(ChatRequest(messages=HELLO, provider="nope"))
    with pytest.raises(NotFound, match="neither an alias nor provider/model"):
        router.complete(ChatRequest(messages=HELLO, model="gpt-4o"))
    with pytest.raises(InvalidRequest, match="set `provider`"):
        router.complete(ChatRequest(messages=HELLO))


def test_a_models_list_limits_what_a_provider_offers() -> None:
    router, _ = fake_router(models=["meta-llama/Llama-3.1-8B", "qwen/Qwen2.5-7B"])

    router.complete(ChatRequest(messages=HELLO, provider="local", model="qwen/Qwen2.5-7B"))
    with pytest.raises(NotFound, match="offered: meta-llama/Llama-3.1-8B, qwen/Qwen2.5-7B"):
        router.complete(ChatRequest(messages=HELLO, provider="local", model="other"))


def test_a_stream_resolves_at_once_and_closing_it_closes_the_provider_stream() -> None:
    router, providers = fake_router()

    with pytest.raises(NotFound):
        router.stream(ChatRequest(messages=HELLO, provider="nope"))
    stream = router.stream(ChatRequest(messages=HELLO, provider="openai"))
    assert stream.request.model == "gpt-4o-mini"
    assert next(iter(stream)).delta == "a"
    stream.close()

    assert providers["openai"].closed_streams == 1


def test_a_provider_without_a_key_is_not_ready_and_names_the_variable() -> None:
    settings = settings_from_mapping(
        {"providers": {"openai": {"default_model": "m"}, "anthropic": {"default_model": "m"}}},
        {"OPENAI_API_KEY": "k"},
    )
    router = Router.from_settings(settings)

    assert router.readiness() == {"openai": None, "anthropic": "ANTHROPIC_API_KEY is not set"}
    with pytest.raises(ProviderNotConfigured, match="set the environment variable ANTHROPIC_API_KEY"):
        router.complete(ChatRequest(messages=HELLO, provider="anthropic"))


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_callers_remaining_time_bounds_the_upstream_call(
    simulator: Simulator, provider: str
) -> None:
    settings = settings_from_mapping(
        {"providers": {provider: {"default_model": "m", "timeout": 30, "max_retries": 0}}},
        {
            f"{provider.upper()}_API_KEY": "sk-test-key",
            f"{provider.upper()}_BASE_URL": simulator.url + ("/v1" if provider == "openai" else ""),
        },
    )
    router = Router.from_settings(settings)
    simulator.fail_next({"delay": 3})
    started = time.monotonic()

    with pytest.raises(UpstreamTimeout):
        router.complete(ChatRequest(messages=HELLO, provider=provider, timeout=0.5))

    assert time.monotonic() - started < 2.0
    router.close()


# --- the one call, on a fake upstream ----------------------------------------------------------

OPENAI_ANSWER = {
    "object": "chat.completion", "model": "gpt-4o", "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
}  # fmt: skip
OPENAI_CHUNKS = (
    ("", {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": "one"}}]}),
    ("", {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {"content": " two"}}]}),
    ("", {"object": "chat.completion.chunk", "model": "gpt-4o", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
)


def routed(handler: Callable[[FakeRequest], FakeAnswer], **aliases: object) -> tuple[Router, FakeUpstream]:
    settings = settings_from_mapping(
        {
            "providers": {
                "openai": {"default_model": "gpt-4o", "max_retries": 0},
                "anthropic": {"default_model": "claude", "max_retries": 0},
            },
            "models": aliases,
            "prices": {"openai/gpt-4o": {"input": 1e6, "output": 2e6}},  # $1 and $2 a token
        },
        {"OPENAI_API_KEY": "k", "ANTHROPIC_API_KEY": "k"},
    )
    upstream = FakeUpstream(handler)
    return Router.from_settings(settings, connect=upstream.connect), upstream


def openai_call(body: dict[str, object], chat: Callable[[str], ChatRequest] | None = None) -> Call:
    def refuse(provider: str) -> ChatRequest:
        raise InvalidRequest(f"cannot be translated for provider {provider!r}", "tools")

    return Call(
        model=str(body["model"]),
        chat=chat or refuse,
        stream=body.get("stream") is True,
        input_tokens=3,
        relay=Relayable("openai", body),
    )


def test_a_same_family_stream_is_relayed_and_billed_for_what_it_relayed() -> None:
    router, upstream = routed(lambda request: FakeAnswer.of_events(*OPENAI_CHUNKS))
    body = {"model": "openai/gpt-4o", "stream": True, "messages": [], "seed": 7}

    answer = router.call(openai_call(body))
    assert isinstance(answer, RelayedStream)
    relayed = [event for batch in answer.events() for event in batch]
    answer.close()

    assert upstream.requests[0].json() == {**body, "model": "gpt-4o"}  # only the model changed
    assert len(relayed) == 3
    # No usage from the upstream (no include_usage): the input estimate, and a token a piece.
    assert answer.account.usage == Usage(3, 2)
    assert answer.account.cost_usd == pytest.approx(3 * 1 + 2 * 2)
    assert (answer.account.provider, answer.account.model) == ("openai", "gpt-4o")


def test_a_request_one_target_cannot_take_is_refused_before_any_upstream_is_tried() -> None:
    router, upstream = routed(
        lambda request: FakeAnswer.of_events(*OPENAI_CHUNKS),
        mixed={"targets": ["openai/gpt-4o", "anthropic/claude"]},
    )

    with pytest.raises(InvalidRequest, match="cannot be translated for provider 'anthropic'"):
        router.call(openai_call({"model": "mixed", "stream": True}))

    assert upstream.requests == []


def test_a_translated_answer_is_settled_before_it_is_returned() -> None:
    answer_json = {
        "type": "message", "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
        "usage": {"input_tokens": 4, "output_tokens": 1},
    }  # fmt: skip
    router, upstream = routed(lambda request: FakeAnswer.of_json(answer_json))
    request = ChatRequest(messages=HELLO)
    account = Account()

    answer = router.call(openai_call({"model": "anthropic/claude"}, lambda provider: request), account=account)

    assert isinstance(answer, Completion) and answer.response.content == "hi"
    assert answer.account is account and account.usage == Usage(4, 1)
    assert account.cost_usd is not None
    assert upstream.requests[0].url.endswith("/v1/messages")


def test_the_clients_own_error_leaves_a_cooling_targets_probe_to_the_next_request() -> None:
    router, _ = routed(lambda request: FakeAnswer.of_json({}), solo={"targets": ["anthropic/claude"]})
    cooldowns = router.executor.cooldowns
    key = "anthropic/claude"
    for _ in range(3):  # enough failures to cool it down
        cooldowns.failed(key)
    cooldowns._states[key].cooling_until = 0.0  # its rest is over: the next attempt is the probe
    broken = ChatRequest(messages=(Message("assistant", "", (ToolCall("c", "w", "[]"),)),))

    with pytest.raises(InvalidRequest):
        router.call(Call(model="solo", chat=lambda provider: broken))

    assert cooldowns.admits(key), "a request the client got wrong kept the probe"


@pytest.mark.parametrize("when_unavailable", ["fail_closed", "fail_open"])
def test_a_store_that_cannot_be_reached_refuses_keyed_calls_or_serves_them_uncounted(
    when_unavailable: str,
) -> None:
    settings = settings_from_mapping(
        {
            "providers": {"openai": {"default_model": "gpt-4o", "max_retries": 0}},
            "auth": {"keys": [{"name": "k", "key_sha256": "0" * 64, "rpm": 10}]},
            "state": {"backend": "redis", "url": f"redis://127.0.0.1:{free_port()}/0",
                      "timeout_seconds": 0.2, "when_unavailable": when_unavailable},
        },
        {"OPENAI_API_KEY": "k"},
    )
    upstream = FakeUpstream(lambda request: FakeAnswer.of_json(OPENAI_ANSWER))
    router = Router.from_settings(settings, connect=upstream.connect)
    call = openai_call({"model": "openai/gpt-4o", "messages": []})
    try:
        if when_unavailable == "fail_closed":
            with pytest.raises(StateUnavailable, match="Redis at 127.0.0.1"):
                router.call(call, settings.auth.keys[0])
            assert upstream.requests == []
        else:
            answer = router.call(call, settings.auth.keys[0])
            assert answer.account.cost_usd is not None and len(upstream.requests) == 1
        assert router.state_problem() is not None  # and /readyz says so
    finally:
        router.close()
