"""OpenAI and any OpenAI-compatible server, through the official `openai` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai

from ai_router.config import ProviderSettings
from ai_router.providers.base import Provider, translate_sdk_error
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, FinishReason, Usage

DEFAULT_BASE_URL = "https://api.openai.com/v1"

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


class OpenAIProvider(Provider):
    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._client: openai.OpenAI | None = None
        if self.api_key is not None:
            self._client = openai.OpenAI(
                api_key=self.api_key,
                # Always explicit: the SDK would otherwise read OPENAI_BASE_URL for every
                # OpenAI-compatible provider, not just the one named `openai`.
                base_url=settings.base_url or DEFAULT_BASE_URL,
                max_retries=settings.max_retries,
            )

    def complete(self, request: ChatRequest) -> ChatResponse:
        client = self._require_client()
        try:
            completion = client.chat.completions.create(**self._arguments(request))
        except Exception as exc:
            raise translate_sdk_error(exc, openai, self) from exc
        choice = completion.choices[0]
        return ChatResponse(
            content=choice.message.content or "",
            finish_reason=_finish_reason(choice.finish_reason),
            usage=_usage(completion.usage),
            provider=self.name,
            model=request.model,
        )

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        client = self._require_client()
        finish_reason: FinishReason = "stop"
        usage = Usage()
        try:
            with client.chat.completions.create(
                **self._arguments(request), stream=True, stream_options={"include_usage": True}
            ) as upstream:
                for chunk in upstream:
                    # With include_usage the usage arrives in its own last chunk, after the one
                    # carrying finish_reason: both are folded into our single closing chunk.
                    if chunk.usage is not None:
                        usage = _usage(chunk.usage)
                    for choice in chunk.choices:
                        if choice.delta.content:
                            yield ChatChunk(delta=choice.delta.content)
                        if choice.finish_reason:
                            finish_reason = _finish_reason(choice.finish_reason)
        except Exception as exc:
            raise translate_sdk_error(exc, openai, self) from exc
        yield ChatChunk(finish_reason=finish_reason, usage=usage)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _require_client(self) -> openai.OpenAI:
        self.require_key()
        assert self._client is not None  # built whenever a key is set
        return self._client

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        sampling = request.sampling
        arguments: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            # max_completion_tokens supersedes max_tokens, which reasoning models reject.
            "max_completion_tokens": request.max_tokens,
            "timeout": self.timeout_for(request),
        }
        if sampling.temperature is not None:
            arguments["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            arguments["top_p"] = sampling.top_p
        if sampling.stop:
            arguments["stop"] = list(sampling.stop)
        if sampling.top_k is not None:
            # Not in OpenAI's API, but many compatible servers take it; OpenAI itself answers
            # 400, which reaches the client naming the parameter.
            arguments["extra_body"] = {"top_k": sampling.top_k}
        if request.request_id:
            arguments["extra_headers"] = {"x-request-id": request.request_id}
        return arguments


def _finish_reason(reason: str | None) -> FinishReason:
    return _FINISH_REASONS.get(reason or "stop", "stop")


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(input_tokens=usage.prompt_tokens or 0, output_tokens=usage.completion_tokens or 0)
