"""Anthropic's Messages API, through the official `anthropic` SDK."""

from __future__ import annotations

import json
import time
from collections.abc import Generator, Sequence
from typing import Any

import anthropic

from ai_router.errors import InvalidRequest
from ai_router.providers.base import Provider, translate_sdk_error
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.watchdog import Watch

DEFAULT_BASE_URL = "https://api.anthropic.com"
MESSAGES_PATH = "/v1/messages"
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
_TOOL_CHOICE_TYPES = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}


class AnthropicProvider(Provider[anthropic.Anthropic]):
    family = "anthropic"

    sdk = anthropic
    client_class = anthropic.Anthropic
    default_base_url = DEFAULT_BASE_URL
    relay_path = MESSAGES_PATH

    def complete(self, request: ChatRequest) -> ChatResponse:
        client = self.client()
        arguments = self._arguments(request)
        try:
            message = client.messages.create(**arguments)
        except Exception as exc:
            raise translate_sdk_error(exc, anthropic, self) from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        tool_calls = tuple(
            ToolCall(block.id, block.name, json.dumps(block.input))
            for block in message.content
            if block.type == "tool_use"
        )
        return ChatResponse(
            content=text,
            finish_reason=_finish_reason(message.stop_reason),
            usage=Usage(message.usage.input_tokens, message.usage.output_tokens),
            provider=self.name,
            model=request.model,
            tool_calls=tool_calls,
        )

    def stream(self, request: ChatRequest, watch: Watch) -> Generator[ChatChunk, None, None]:
        client = self.client()
        arguments = self._arguments(request)
        finish_reason: FinishReason = "stop"
        input_tokens = output_tokens = 0
        # Content-block index -> tool-call index: tool calls are counted apart from text blocks.
        tool_indexes: dict[int, int] = {}
        deadline = time.monotonic() + (request.timeout or self.settings.timeout)
        try:
            with client.messages.create(**arguments, stream=True) as upstream:
                first_seconds = deadline - time.monotonic()
                for event in self.watched(upstream, upstream.response, watch, first_seconds):
                    if event.type == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta" and delta.text:
                            yield ChatChunk(delta=delta.text)
                        elif delta.type == "input_json_delta" and event.index in tool_indexes:
                            yield ChatChunk(
                                tool_call=ToolCallDelta(
                                    tool_indexes[event.index], arguments=delta.partial_json
                                )
                            )
                    elif event.type == "content_block_start":
                        block = event.content_block
                        if block.type == "tool_use":
                            tool_indexes[event.index] = len(tool_indexes)
                            yield ChatChunk(
                                tool_call=ToolCallDelta(
                                    tool_indexes[event.index], id=block.id, name=block.name
                                )
                            )
                    elif event.type == "message_start":
                        input_tokens = event.message.usage.input_tokens
                    elif event.type == "message_delta":
                        # Counts are cumulative, so the last message_delta holds the totals.
                        output_tokens = event.usage.output_tokens
                        if event.usage.input_tokens is not None:
                            input_tokens = event.usage.input_tokens
                        finish_reason = _finish_reason(event.delta.stop_reason)
        except Exception as exc:
            raise self.stream_error(exc, anthropic, watch) from exc
        yield ChatChunk(finish_reason=finish_reason, usage=Usage(input_tokens, output_tokens))

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        sampling = request.sampling
        arguments: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": _messages(request.messages),
            "timeout": self.timeout_for(request.timeout),
        }
        if request.system:
            arguments["system"] = request.system
        if sampling.stop:
            arguments["stop_sequences"] = list(sampling.stop)
        if request.tools:
            arguments["tools"] = [
                {
                    "name": tool.name,
                    "description": tool.description,
                    "input_schema": dict(tool.parameters) or {"type": "object", "properties": {}},
                }
                for tool in request.tools
            ]
        tool_choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
        if tool_choice is not None:
            arguments["tool_choice"] = tool_choice
        if request.user:
            arguments["metadata"] = {"user_id": request.user}
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


def _messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Anthropic turns: tool results become tool_result blocks of a user turn, and consecutive
    turns of one role are merged, since the API wants user and assistant to alternate."""
    turns: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        role = "user" if message.role == "tool" else message.role
        blocks = _blocks(message, index)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message, index: int) -> list[dict[str, Any]]:
    if message.role == "tool":
        result: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": message.tool_call_id,
            "content": message.text,
        }
        if message.is_error:
            result["is_error"] = True
        return [result]
    parts = (TextPart(message.content),) if isinstance(message.content, str) else message.content
    blocks = [_block(part) for part in parts if not (isinstance(part, TextPart) and not part.text)]
    for call_index, call in enumerate(message.tool_calls):
        blocks.append(
            {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": _arguments_object(call, f"messages[{index}].tool_calls[{call_index}]"),
            }
        )
    return blocks


def _block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": part.media_type, "data": part.data},
    }


def _arguments_object(call: ToolCall, where: str) -> Any:
    try:
        value = json.loads(call.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{where}.function.arguments must be a JSON object to be sent to an Anthropic "
            f"provider; got {call.arguments!r}",
            param=f"{where}.function.arguments",
        )
    return value


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    out: dict[str, Any] = {"type": _TOOL_CHOICE_TYPES[choice.mode] if choice else "auto"}
    if choice is not None and choice.mode == "tool":
        out["name"] = choice.name
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _finish_reason(reason: str | None) -> FinishReason:
    return _FINISH_REASONS.get(reason or "end_turn", "stop")
