"""OpenAI and any OpenAI-compatible server: Chat Completions (wire/openai_chat.py), and the
embeddings endpoint relayed for OpenAI clients, with the headers of the official `openai` SDK's
client. What a compatible server takes differently in a chat body is its config's
(field_rules.py): applied to the bodies built here and to those relayed alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import openai
import orjson

from ai_router.call import Relayable
from ai_router.config import ProviderSettings
from ai_router.errors import RouterError
from ai_router.providers.base import RelayRequest, RelayResponse
from ai_router.providers.field_rules import FieldRules
from ai_router.providers.http_provider import HTTPProvider
from ai_router.providers.transport import TransportFactory, transport_for
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    OutputFormat,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.upstream_watch import Watch
from ai_router.wire import openai_chat as wire
from ai_router.wire import openai_responses as responses_wire
from ai_router.wire.sse import DONE_DATA


class OpenAIProvider(HTTPProvider):
    family = wire.FAMILY
    client_class = openai.OpenAI
    default_base_url = wire.DEFAULT_BASE_URL
    chat_path = wire.CHAT_PATH
    # Where the SDK's `embeddings.create` posts, beside chat under the base URL's /v1.
    other_paths = {"embeddings": "/embeddings", "responses": responses_wire.PATH}

    def __init__(self, settings: ProviderSettings, connect: TransportFactory = transport_for) -> None:
        self.rules = FieldRules(settings.name, settings.unsupported, settings.renamed)
        super().__init__(settings, connect)

    def sdk_headers(self) -> dict[str, Any]:
        # A server that takes no key (a local Ollama or vLLM) gets no credential at all.
        return {"authorization": openai.Omit()} if self.api_key is None else {}

    def check(self, request: ChatRequest) -> None:
        if self.rules:
            self.rules.check(self._wire_body(request))

    def check_relay(self, relay: Relayable) -> None:
        if self.rules and relay.endpoint == "chat":
            self.rules.check(relay.body)

    def relay(self, request: RelayRequest, watch: Watch) -> RelayResponse:
        if self.rules and request.endpoint == "chat":
            request = replace(request, body=self.rules.apply(request.body))
        return super().relay(request, watch)

    def complete(self, request: ChatRequest) -> ChatResponse:
        completion = self.post(self._body(request), request.timeout, request.request_id)
        try:
            choice = completion["choices"][0]
            message = choice.get("message") or {}
            tool_calls = tuple(
                ToolCall(call["id"], call["function"]["name"], call["function"]["arguments"])
                for call in message.get("tool_calls") or ()
                if call.get("type") == "function"
            )
            return ChatResponse(
                content=message.get("content") or "",
                finish_reason=wire.finish_reason(choice.get("finish_reason")),
                usage=wire.usage(completion),
                provider=self.name,
                model=request.model,
                tool_calls=tool_calls,
                reasoning=wire.reasoning(message),
                stop_sequence=wire.matched_stop(choice, request.sampling.stop),
            )
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise self.unreadable(exc) from exc

    def stream(self, request: ChatRequest, watch: Watch) -> Iterator[ChatChunk]:
        finish_reason: FinishReason = "stop"
        stop_sequence: str | None = None
        usage = Usage()
        body = self._body(request, stream=True)
        events = self.events(body, request, watch)
        done = False  # [DONE] came: all that may follow is the end of the body
        try:
            for data in events:
                if done:
                    continue
                if data.startswith(DONE_DATA):
                    # Read on to the end of the body, which follows at once, instead of leaving:
                    # a body read to its end gives its connection back to the pool, and one
                    # left unread takes it down, so the next call would pay for a new one (a
                    # TLS handshake, with a real provider).
                    done = True
                    continue
                chunk = orjson.loads(data)
                if chunk.get("error"):
                    raise self.failed_mid_stream(chunk["error"])
                # With include_usage the usage arrives in its own last chunk, after the one
                # carrying finish_reason: both are folded into our single closing chunk.
                if chunk.get("usage"):
                    usage = wire.usage(chunk)
                for choice in chunk.get("choices") or ():
                    delta = choice.get("delta") or {}
                    reasoning = wire.reasoning(delta)
                    if reasoning:
                        yield ChatChunk(reasoning=reasoning)
                    if delta.get("content"):
                        yield ChatChunk(delta=delta["content"])
                    for call in delta.get("tool_calls") or ():
                        function = call.get("function") or {}
                        yield ChatChunk(
                            tool_call=ToolCallDelta(
                                index=call.get("index") or 0,
                                id=call.get("id") or "",
                                name=function.get("name") or "",
                                arguments=function.get("arguments") or "",
                            )
                        )
                    if choice.get("finish_reason"):
                        finish_reason = wire.finish_reason(choice["finish_reason"])
                        stop_sequence = wire.matched_stop(choice, request.sampling.stop)
        except RouterError:
            if not done:  # after [DONE] the answer is whole, however the body ends
                raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise self.unreadable(exc) from exc
        finally:
            events.close()
        yield ChatChunk(finish_reason=finish_reason, usage=usage, stop_sequence=stop_sequence)

    def _body(self, request: ChatRequest, stream: bool = False) -> dict[str, Any]:
        body = self._wire_body(request)
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        return self.rules.apply(body) if self.rules else body

    def _wire_body(self, request: ChatRequest) -> dict[str, Any]:
        """The Chat Completions body of `request`, as OpenAI's API takes it."""
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend(_message(message) for message in request.messages)
        sampling = request.sampling
        body: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            # max_completion_tokens supersedes max_tokens, which reasoning models reject.
            "max_completion_tokens": request.max_tokens,
        }
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        if sampling.top_k is not None:
            # Not in OpenAI's API, but many compatible servers take it; OpenAI itself answers
            # 400, which reaches the client naming the parameter.
            body["top_k"] = sampling.top_k
        if request.tools:
            body["tools"] = [_tool(tool) for tool in request.tools]
        if request.tool_choice is not None:
            body["tool_choice"] = _tool_choice(request.tool_choice)
        if request.parallel_tool_calls is not None:
            body["parallel_tool_calls"] = request.parallel_tool_calls
        if request.user:
            body["user"] = request.user
        if request.output_format is not None:
            body["response_format"] = _response_format(request.output_format)
        if request.reasoning_effort is not None:
            body["reasoning_effort"] = request.reasoning_effort
        return body


def _tool(tool: Tool) -> dict[str, Any]:
    function: dict[str, Any] = {
        "name": tool.name,
        "description": tool.description,
        "parameters": dict(tool.parameters),
    }
    if tool.strict and _strict_takes(tool.parameters):
        function["strict"] = True
    return {"type": "function", "function": function}


def _response_format(output: OutputFormat) -> dict[str, Any]:
    if output.schema is None:
        return {"type": "json_object"}
    spec: dict[str, Any] = {"name": output.name, "schema": dict(output.schema)}
    if output.strict and _strict_takes(output.schema):
        spec["strict"] = True
    return {"type": "json_schema", "json_schema": spec}


def _strict_takes(schema: Any) -> bool:
    """Whether OpenAI's strict mode takes `schema`: every object closed and every one of its
    properties required. An Anthropic client's schema may have optional properties, which
    Anthropic's strict mode allows and OpenAI's answers with a 400; such a schema is sent
    without `strict`, for the model to follow as it can (docs/TRANSLATION.md)."""
    if isinstance(schema, list):
        return all(_strict_takes(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    kinds = schema.get("type")
    if kinds == "object" or (isinstance(kinds, list) and "object" in kinds):
        listed = schema.get("required")
        required: list[Any] = listed if isinstance(listed, list) else []
        if schema.get("additionalProperties") is not False:
            return False
        if any(name not in required for name in schema.get("properties") or {}):
            return False
    nested = [schema[key] for key in ("items", "anyOf", "oneOf", "allOf", "not") if key in schema]
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            nested.extend(schema[key].values())
    return all(_strict_takes(sub) for sub in nested)


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        # OpenAI has no error flag on tool results: say it in the content instead of losing it.
        text = f"Error: {message.text}" if message.is_error else message.text
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": text}
    if message.role == "assistant":
        out: dict[str, Any] = {"role": "assistant", "content": message.text or None}
        if message.tool_calls:
            out["tool_calls"] = [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for call in message.tool_calls
            ]
        return out
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    return {"role": message.role, "content": [_part(part) for part in message.content]}


def _part(part: TextPart | ImagePart) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    url = part.url or f"data:{part.media_type};base64,{part.data}"
    image_url: dict[str, Any] = {"url": url}
    if part.detail:
        image_url["detail"] = part.detail
    return {"type": "image_url", "image_url": image_url}


def _tool_choice(choice: ToolChoice) -> Any:
    if choice.mode == "tool":
        return {"type": "function", "function": {"name": choice.name}}
    return choice.mode
