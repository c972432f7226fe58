"""Anthropic's Messages API, through the official `anthropic` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic

from ai_router.config import ProviderSettings
from ai_router.providers.base import Provider, translate_sdk_error
from ai_router.types import ChatChunk, ChatRequest, ChatResponse, FinishReason, Usage

DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_TEMPERATURE = 1.0  # Anthropic's range is 0-1; OpenAI's 0-2 is clamped, as clients expect

_FINISH_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider(Provider):
    def __init__(self, settings: ProviderSettings) -> None:
        super().__init__(settings)
        self._client: anthropic.Anthropic | None = None
        if self.api_key is not None:
            self._client = anthropic.Anthropic(
                api_key=self.api_key,
                base_url=settings.base_url or DEFAULT_BASE_URL,
                max_retries=settings.max_retries,
            )

    def complete(self, request: ChatRequest) -> ChatResponse:
        client = self._require_client()
        try:
            message = client.messages.create(**self._arguments(request))
        except Exception as exc:
            raise translate_sdk_error(exc, anthropic, self) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        return ChatResponse(
            content=text,
            finish_reason=_finish_reason(message.stop_reason),
            usage=Usage(message.usage.input_tokens, message.usage.output_tokens),
            provider=self.name,
            model=request.model,
        )

    def stream(self, request: ChatRequest) -> Iterator[ChatChunk]:
        client = self._require_client()
        finish_reason: FinishReason = "stop"
        input_tokens = output_tokens = 0
        try:
            with client.messages.create(**self._arguments(request), stream=True) as upstream:
                for event in upstream:
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        if event.delta.text:
                            yield ChatChunk(delta=event.delta.text)
                    elif event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens
                    elif event.type == "message_delta":
                        # output_tokens is cumulative, so the last message_delta holds the total.
                        output_tokens = event.usage.output_tokens
                        finish_reason = _finish_reason(event.delta.stop_reason)
        except Exception as exc:
            raise translate_sdk_error(exc, anthropic, self) from exc
        yield ChatChunk(finish_reason=finish_reason, usage=Usage(input_tokens, output_tokens))

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def _require_client(self) -> anthropic.Anthropic:
        self.require_key()
        assert self._client is not None  # built whenever a key is set
        return self._client

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        sampling = request.sampling
        arguments: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "timeout": self.timeout_for(request),
        }
        if request.system:
            arguments["system"] = request.system
        if sampling.stop:
            arguments["stop_sequences"] = list(sampling.stop)
        # The SDK (1.0 and later) no longer takes sampling options as arguments.
        extra_body: dict[str, Any] = {}
        if sampling.temperature is not None:
            extra_body["temperature"] = min(sampling.temperature, MAX_TEMPERATURE)
        if sampling.top_p is not None:
            extra_body["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            extra_body["top_k"] = sampling.top_k
        if extra_body:
            arguments["extra_body"] = extra_body
        if request.request_id:
            arguments["extra_headers"] = {"x-request-id": request.request_id}
        return arguments


def _finish_reason(reason: str | None) -> FinishReason:
    return _FINISH_REASONS.get(reason or "end_turn", "stop")
