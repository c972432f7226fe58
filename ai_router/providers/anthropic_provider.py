"""Anthropic's Messages API (wire/anthropic_messages.py), and its token counting relayed for
Anthropic clients, with the headers of the official `anthropic` SDK's client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import anthropic
import orjson

from ai_router.errors import InvalidRequest, RouterError
from ai_router.providers.http_provider import HTTPProvider
from ai_router.providers.tool_arguments import arguments_object
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.upstream_watch import Watch
from ai_router.wire import anthropic_messages as wire

_TOOL_CHOICE_TYPES = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}


class AnthropicProvider(HTTPProvider):
    family = wire.FAMILY
    client_class = anthropic.Anthropic
    default_base_url = wire.DEFAULT_BASE_URL
    chat_path = wire.MESSAGES_PATH
    # Where the SDK's `messages.count_tokens` posts (no beta header: generally available).
    other_paths = {"count_tokens": "/v1/messages/count_tokens"}

    def complete(self, request: ChatRequest) -> ChatResponse:
        message = self.post(self._body(request), request.timeout, request.request_id)
        try:
            blocks = message["content"]
            text = "".join(block["text"] for block in blocks if block["type"] == "text")
            tool_calls = tuple(
                ToolCall(block["id"], block["name"], json.dumps(block["input"]))
                for block in blocks
                if block["type"] == "tool_use"
            )
            # Redacted thinking is encrypted: nothing in it to pass on.
            thinking = "".join(block["thinking"] for block in blocks if block["type"] == "thinking")
            usage = message["usage"]
            return ChatResponse(
                content=text,
                finish_reason=wire.finish_reason(message.get("stop_reason")),
                usage=Usage(usage["input_tokens"], usage["output_tokens"]),
                provider=self.name,
                model=request.model,
                tool_calls=tool_calls,
                reasoning=thinking,
                stop_sequence=message.get("stop_sequence"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable(exc) from exc

    def stream(self, request: ChatRequest, watch: Watch) -> Iterator[ChatChunk]:
        finish_reason: FinishReason = "stop"
        stop_sequence: str | None = None
        input_tokens = output_tokens = 0
        # Content-block index -> tool-call index: tool calls are counted apart from text blocks.
        tool_indexes: dict[int, int] = {}
        body = {**self._body(request), "stream": True}
        events = self.events(body, request, watch)
        try:
            for data in events:
                event = orjson.loads(data)
                kind = event.get("type")
                if kind == wire.CONTENT_BLOCK_DELTA:
                    delta = event["delta"]
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield ChatChunk(delta=delta["text"])
                    elif delta.get("type") == "thinking_delta" and delta.get("thinking"):
                        yield ChatChunk(reasoning=delta["thinking"])
                    elif delta.get("type") == "input_json_delta" and event["index"] in tool_indexes:
                        yield ChatChunk(
                            tool_call=ToolCallDelta(
                                tool_indexes[event["index"]], arguments=delta["partial_json"]
                            )
                        )
                elif kind == wire.CONTENT_BLOCK_START:
                    block = event["content_block"]
                    if block.get("type") == "tool_use":
                        tool_indexes[event["index"]] = len(tool_indexes)
                        yield ChatChunk(
                            tool_call=ToolCallDelta(
                                tool_indexes[event["index"]], id=block["id"], name=block["name"]
                            )
                        )
                elif kind == wire.MESSAGE_START:
                    input_tokens = event["message"]["usage"]["input_tokens"]
                elif kind == wire.MESSAGE_DELTA:
                    # Counts are cumulative, so the last message_delta holds the totals.
                    usage = event.get("usage") or {}
                    output_tokens = usage.get("output_tokens") or output_tokens
                    if usage.get("input_tokens") is not None:
                        input_tokens = usage["input_tokens"]
                    stopped = event.get("delta") or {}
                    finish_reason = wire.finish_reason(stopped.get("stop_reason"))
                    stop_sequence = stopped.get("stop_sequence")
                elif kind == wire.ERROR:
                    raise self.failed_mid_stream(event.get("error"))
        except RouterError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable(exc) from exc
        finally:
            events.close()
        yield ChatChunk(
            finish_reason=finish_reason,
            usage=Usage(input_tokens, output_tokens),
            stop_sequence=stop_sequence,
        )

    def check(self, request: ChatRequest) -> None:
        """Tool-call arguments become `input` objects: each must be a JSON object. JSON output
        needs a schema, and thinking leaves the sampling to the model."""
        for index, message in enumerate(request.messages):
            for call_index, call in enumerate(message.tool_calls):
                _arguments_object(call, f"messages[{index}].tool_calls[{call_index}]")
        if request.output_format is not None and request.output_format.schema is None:
            raise InvalidRequest(
                f"response_format cannot be translated for provider {self.name!r}: JSON mode "
                "(json_object) has no equivalent, since Anthropic's JSON outputs follow a schema; "
                'send {"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}',
                param="response_format",
            )
        if request.output_format is not None and request.output_format.schema is not None:
            _closed_schema(request.output_format.schema, "response_format.json_schema.schema", self.name)
        for index, tool in enumerate(request.tools):
            if tool.strict:
                _closed_schema(tool.parameters, f"tools[{index}].function.parameters", self.name)
        if _thinks(request):
            _check_sampling_with_thinking(request.sampling)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "messages": _messages(request.messages),
        }
        if request.system:
            body["system"] = request.system
        if sampling.stop:
            body["stop_sequences"] = list(sampling.stop)
        if request.tools:
            body["tools"] = [_tool(tool, index, self.name) for index, tool in enumerate(request.tools)]
        tool_choice = _tool_choice(request.tool_choice, request.parallel_tool_calls)
        if tool_choice is not None:
            body["tool_choice"] = tool_choice
        if request.user:
            body["metadata"] = {"user_id": request.user}
        if sampling.temperature is not None:
            body["temperature"] = min(sampling.temperature, wire.MAX_TEMPERATURE)
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.top_k is not None:
            body["top_k"] = sampling.top_k
        output_config: dict[str, Any] = {}
        if request.output_format is not None and request.output_format.schema is not None:
            schema = _closed_schema(request.output_format.schema, "response_format.json_schema.schema", self.name)
            output_config["format"] = {"type": "json_schema", "schema": schema}
        if _thinks(request):
            # Adaptive thinking steered by effort, as Anthropic's docs advise: budget_tokens is
            # deprecated from Claude 4.6 and refused from 4.7 (docs/TRANSLATION.md).
            body["thinking"] = {"type": "adaptive", "display": "summarized"}
            output_config["effort"] = wire.EFFORTS[request.reasoning_effort or "high"]
        if output_config:
            body["output_config"] = output_config
        return body


def _thinks(request: ChatRequest) -> bool:
    return request.reasoning_effort not in (None, "none")


def _check_sampling_with_thinking(sampling: Sampling) -> None:
    """Thinking takes no temperature or top_k, and top_p only from 0.95 (Anthropic answers 400);
    said here, before any attempt, in the client's terms."""
    refused = (
        ("temperature", sampling.temperature not in (None, 1.0)),
        ("top_k", sampling.top_k is not None),
        ("top_p", sampling.top_p is not None and sampling.top_p < 0.95),
    )
    for name, wrong in refused:
        if wrong:
            raise InvalidRequest(
                f"{name} cannot be combined with reasoning_effort for an Anthropic provider: its "
                "thinking sets temperature and top_k itself and takes top_p only from 0.95 to 1",
                param=name,
            )


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


def _tool(tool: Tool, index: int, provider: str) -> dict[str, Any]:
    schema = dict(tool.parameters) or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"name": tool.name, "description": tool.description, "input_schema": schema}
    if tool.strict:
        out["input_schema"] = _closed_schema(schema, f"tools[{index}].function.parameters", provider)
        out["strict"] = True
    return out


# Where a JSON schema nests schemas: one under a key, a list of them, or a map of them.
_SUBSCHEMA = ("items", "additionalItems", "not", "if", "then", "else", "contains")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")


def _closed_schema(schema: Any, param: str, provider: str) -> Any:
    """`schema` with every object closed (`additionalProperties: false`), as Anthropic's JSON
    outputs and strict tools require (a 400 otherwise), where OpenAI's non-strict schemas leave it
    out. An object that is open on purpose (`additionalProperties` true or a schema: a map) has no
    equivalent there and is refused."""
    if isinstance(schema, list):
        return [_closed_schema(item, param, provider) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = dict(schema)
    kinds = schema.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        extra = schema.get("additionalProperties", False)
        if extra is not False:
            raise InvalidRequest(
                f"{param} cannot be translated for provider {provider!r}: an object with "
                "additionalProperties other than false (a map) has no equivalent in Anthropic's "
                "structured outputs, whose objects are closed",
                param=param,
            )
        closed["additionalProperties"] = False
    for key in _SUBSCHEMA + _SUBSCHEMA_LISTS:
        if key in schema:
            closed[key] = _closed_schema(schema[key], param, provider)
    for key in _SUBSCHEMA_MAPS:
        if isinstance(schema.get(key), dict):
            closed[key] = {name: _closed_schema(sub, param, provider) for name, sub in schema[key].items()}
    return closed


def _block(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if part.url:
        return {"type": "image", "source": {"type": "url", "url": part.url}}
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": part.media_type, "data": part.data},
    }


def _arguments_object(call: ToolCall, where: str) -> dict[str, Any]:
    return arguments_object(call, where, "an Anthropic")


def _tool_choice(choice: ToolChoice | None, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None and parallel is not False:
        return None
    out: dict[str, Any] = {"type": _TOOL_CHOICE_TYPES[choice.mode] if choice else "auto"}
    if choice is not None and choice.mode == "tool":
        out["name"] = choice.name
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out
