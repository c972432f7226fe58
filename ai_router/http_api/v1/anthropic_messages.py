"""Anthropic Messages JSON <-> the router's internal types.

Used when an Anthropic-family client reaches a provider of another family; between two Anthropic
speakers the body is relayed instead (see relay.py). Fields with no equivalent elsewhere are
refused with a 400 naming them, except what carries no meaning there: `cache_control`, a caching
hint that the other family applies on its own (OpenAI caches long prompts automatically), and
the thinking blocks of earlier answers, whose signatures only Anthropic can read. Every rule is in
docs/TRANSLATION.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, RootModel, StrictInt

from ai_router.errors import InvalidRequest, RouterError
from ai_router.http_api.response_model import ResponseModel, omitted
from ai_router.native_request import check_max_tokens, check_sampling
from ai_router.types import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    FinishReason,
    ImagePart,
    Message,
    OutputFormat,
    Part,
    ReasoningEffort,
    Sampling,
    TextPart,
    Tool,
    ToolCall,
    ToolChoice,
    Usage,
)
from ai_router.wire import anthropic_messages as wire


class _Block(BaseModel):
    # Blocks may carry cache_control (and citations on text); see the module docstring.
    model_config = ConfigDict(extra="forbid")
    cache_control: dict[str, Any] | None = None


class TextBlock(_Block):
    type: Literal["text"]
    text: str


class Base64Source(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["base64"]
    media_type: str
    data: str


class URLSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["url"]
    url: str


class ImageBlock(_Block):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ToolUseBlock(_Block):
    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(_Block):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] | None = None
    is_error: bool | None = None


class ThinkingBlock(_Block):
    """An earlier answer's thinking, sent back as it came."""

    type: Literal["thinking"]
    thinking: str
    signature: str


class RedactedThinkingBlock(_Block):
    type: Literal["redacted_thinking"]
    data: str


class OtherBlock(BaseModel):
    """Documents and future block types: accepted by the schema so the error can name them."""

    model_config = ConfigDict(extra="allow")
    type: str


Block = Annotated[
    TextBlock
    | ImageBlock
    | ToolUseBlock
    | ToolResultBlock
    | ThinkingBlock
    | RedactedThinkingBlock
    | OtherBlock,
    Field(union_mode="left_to_right"),
]


class InputMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str | list[Block]


class ToolDefinition(BaseModel):
    """A custom tool. Server tools (web search, code execution...) and fields with no equivalent
    are accepted by the schema so the error can name them."""

    model_config = ConfigDict(extra="allow")
    type: str | None = None  # "custom", or a server tool's versioned type
    name: str
    description: str | None = None
    input_schema: dict[str, Any] = Field(default_factory=dict)
    strict: bool | None = None
    cache_control: dict[str, Any] | None = None


class ToolChoiceModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["auto", "any", "none", "tool"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str | None = None


class ThinkingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["enabled", "adaptive", "disabled"]
    budget_tokens: StrictInt | None = None
    display: Literal["summarized", "omitted"] | None = None


class JSONOutputFormat(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JSONOutputFormat | None = None


class MessagesRequest(BaseModel):
    """The translatable part of a Messages request; other fields are kept as extras so that the
    refusal can name them."""

    model_config = ConfigDict(extra="allow")

    model: str
    max_tokens: StrictInt
    messages: list[InputMessage] = Field(min_length=1)
    system: str | list[TextBlock] | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: StrictInt | None = None
    stream: bool | None = None
    tools: list[ToolDefinition] | None = None
    tool_choice: ToolChoiceModel | None = None
    metadata: Metadata | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None


_TOOL_CHOICE_MODES: dict[str, Literal["auto", "none", "required", "tool"]] = {
    "auto": "auto",
    "any": "required",
    "none": "none",
    "tool": "tool",
}


def to_chat_request(body: MessagesRequest, target: str, request_id: str) -> ChatRequest:
    """Translate for provider `target`, which speaks another family (the core names the
    model)."""
    for name, value in (body.model_extra or {}).items():
        if value is not None:
            raise _untranslatable(name, target)
    check_max_tokens(body.max_tokens)
    messages: list[Message] = []
    for index, message in enumerate(body.messages):
        messages.extend(_messages(message, f"messages[{index}]", target))
    system = body.system if isinstance(body.system, str) else "".join(
        block.text for block in body.system or ()
    )
    sampling = check_sampling(
        Sampling(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            stop=tuple(body.stop_sequences or ()),
        )
    )
    choice = body.tool_choice
    output = body.output_config or OutputConfig()
    return ChatRequest(
        messages=tuple(messages),
        provider=target,
        system=system,
        max_tokens=body.max_tokens,
        sampling=sampling,
        tools=tuple(_tool(tool, f"tools[{i}]", target) for i, tool in enumerate(body.tools or ())),
        tool_choice=ToolChoice(_TOOL_CHOICE_MODES[choice.type], choice.name or "")
        if choice
        else None,
        parallel_tool_calls=False if choice and choice.disable_parallel_tool_use else None,
        user=(body.metadata.user_id if body.metadata else None) or "",
        # Anthropic's JSON outputs always hold to the schema: OpenAI's strict mode.
        output_format=OutputFormat(output.format.schema_, strict=True) if output.format else None,
        reasoning_effort=output.effort or _effort_of(body.thinking, body.max_tokens),
        request_id=request_id,
    )


def _tool(tool: ToolDefinition, where: str, target: str) -> Tool:
    if tool.type not in (None, "custom"):
        raise _untranslatable(f"{where}.type", target, f"{tool.type!r} tools run at Anthropic")
    for name in tool.model_extra or {}:
        raise _untranslatable(f"{where}.{name}", target)
    return Tool(tool.name, tool.description or "", tool.input_schema, strict=bool(tool.strict))


# A thinking budget as OpenAI's effort: Anthropic advises starting near the 1,024 minimum for
# simple tasks and at 16,000 or more for complex ones.
_BUDGET_EFFORTS: tuple[tuple[int, ReasoningEffort], ...] = ((4096, "low"), (16384, "medium"))


def _effort_of(thinking: ThinkingConfig | None, max_tokens: int) -> ReasoningEffort | None:
    """The effort a `thinking` setting asks for; None: the model's default (adaptive thinking,
    which the model applies as it sees fit, or none asked)."""
    if thinking is None or thinking.type != "enabled":
        return None
    budget = thinking.budget_tokens
    if budget is None or not wire.MIN_THINKING_BUDGET <= budget < max_tokens:
        raise InvalidRequest(
            f"thinking.budget_tokens must be at least {wire.MIN_THINKING_BUDGET} and less than "
            f"max_tokens ({max_tokens}); got {budget}",
            param="thinking.budget_tokens",
        )
    return next((effort for limit, effort in _BUDGET_EFFORTS if budget < limit), "high")


def _untranslatable(param: str, target: str, why: str = "") -> InvalidRequest:
    reason = f": {why}" if why else ""
    return InvalidRequest(
        f"{param} cannot be translated for provider {target!r}{reason}; remove it, or use a "
        "provider of the Anthropic family",
        param=param,
    )


_THINKING = (ThinkingBlock, RedactedThinkingBlock)


def _messages(message: InputMessage, where: str, target: str) -> Iterator[Message]:
    """One Anthropic turn -> internal messages: tool results become `tool` messages, which come
    first (they answer the previous turn's calls), then the rest of the turn."""
    if isinstance(message.content, str):
        yield Message(message.role, message.content)
        return
    parts: list[Part] = []
    calls: list[ToolCall] = []
    for index, block in enumerate(message.content):
        here = f"{where}.content[{index}]"
        if isinstance(block, TextBlock):
            parts.append(TextPart(block.text))
        elif isinstance(block, ImageBlock):
            parts.append(_image(block))
        elif isinstance(block, ToolUseBlock) and message.role == "assistant":
            calls.append(ToolCall(block.id, block.name, _arguments(block.input, f"{here}.input")))
        elif isinstance(block, ToolResultBlock) and message.role == "user":
            yield Message(
                "tool",
                _result_text(block, here, target),
                tool_call_id=block.tool_use_id,
                is_error=bool(block.is_error),
            )
        elif isinstance(block, _THINKING) and message.role == "assistant":
            continue  # signed for Anthropic alone; the other family takes no reasoning back
        else:
            raise _untranslatable(here, target, f"{block.type!r} blocks in a {message.role} turn")
    if parts or calls:
        yield Message(message.role, tuple(parts), tuple(calls))


def _arguments(value: dict[str, Any], where: str) -> str:
    """A tool call's input as the JSON text OpenAI carries it."""
    try:
        return json.dumps(value)
    except RecursionError:
        raise InvalidRequest(f"{where} nests too deeply", param=where) from None


def _image(block: ImageBlock) -> ImagePart:
    if isinstance(block.source, URLSource):
        return ImagePart(url=block.source.url)
    return ImagePart(media_type=block.source.media_type, data=block.source.data)


def _result_text(block: ToolResultBlock, where: str, target: str) -> str:
    if block.content is None or isinstance(block.content, str):
        return block.content or ""
    texts = []
    for index, item in enumerate(block.content):
        if not isinstance(item, TextBlock):
            raise _untranslatable(f"{where}.content[{index}]", target, "tool results carry text")
        texts.append(item.text)
    return "".join(texts)


# --- responses -----------------------------------------------------------------------------------
# Relayed answers (an Anthropic-family provider) are the upstream's own JSON, which has these
# shapes too, with more fields: the schemas allow properties beyond those listed.

StopReason = wire.StopReason


class TextContentBlock(ResponseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseContentBlock(ResponseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ThinkingContentBlock(ResponseModel):
    """Reasoning from a provider of another family. Its signature is empty: only Anthropic signs
    thinking, and a translated answer's thinking is let go when it comes back."""

    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str = ""


ContentBlock = Annotated[
    TextContentBlock | ToolUseContentBlock | ThinkingContentBlock, Field(discriminator="type")
]


class MessageUsage(ResponseModel):
    input_tokens: int
    output_tokens: int


class MessageResponse(ResponseModel):
    """A `message`: the answer of a request without `stream` (and, empty, in `message_start`)."""

    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason | None  # null in message_start
    stop_sequence: str | None = None
    usage: MessageUsage


def message_id(request_id: str) -> str:
    return f"msg_{request_id}"


def message(response: ChatResponse, model: str, request_id: str) -> dict[str, Any]:
    content: list[TextContentBlock | ToolUseContentBlock | ThinkingContentBlock] = []
    if response.reasoning:
        content.append(ThinkingContentBlock(thinking=response.reasoning))
    if response.content:
        content.append(TextContentBlock(text=response.content))
    for call in response.tool_calls:
        content.append(ToolUseContentBlock(id=call.id, name=call.name, input=_input(call)))
    return MessageResponse(
        id=message_id(request_id),
        model=model,
        content=content,
        stop_reason=_stop_reason(response.finish_reason, response.stop_sequence),
        stop_sequence=response.stop_sequence,
        usage=usage(response.usage),
    ).to_json()


def _stop_reason(finish: FinishReason, stop_sequence: str | None) -> StopReason:
    return "stop_sequence" if stop_sequence is not None else wire.STOP_REASON_OF[finish]


def usage(value: Usage) -> MessageUsage:
    return MessageUsage(input_tokens=value.input_tokens, output_tokens=value.output_tokens)


def _input(call: ToolCall) -> dict[str, Any]:
    try:
        parsed = orjson.loads(call.arguments or "{}")
    except ValueError:
        parsed = None
    # A model that produced broken JSON, or JSON that is not an object: hand it over rather than
    # lose it (Anthropic's `input` is always an object).
    return parsed if isinstance(parsed, dict) else {"arguments": call.arguments}


# --- stream events: each is sent as `event: <its type>` and `data: <its JSON>` ------------------


class MessageStart(ResponseModel):
    type: Literal["message_start"] = "message_start"
    message: MessageResponse


class Ping(ResponseModel):
    type: Literal["ping"] = "ping"


class ContentBlockStart(ResponseModel):
    type: Literal["content_block_start"] = "content_block_start"
    index: int
    content_block: ContentBlock


class TextDelta(ResponseModel):
    type: Literal["text_delta"] = "text_delta"
    text: str


class InputJSONDelta(ResponseModel):
    type: Literal["input_json_delta"] = "input_json_delta"
    partial_json: str


class ThinkingDelta(ResponseModel):
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


BlockDelta = TextDelta | InputJSONDelta | ThinkingDelta


class ContentBlockDelta(ResponseModel):
    type: Literal["content_block_delta"] = "content_block_delta"
    index: int
    delta: Annotated[BlockDelta, Field(discriminator="type")]


class ContentBlockStop(ResponseModel):
    type: Literal["content_block_stop"] = "content_block_stop"
    index: int


class StopDelta(ResponseModel):
    stop_reason: StopReason
    stop_sequence: str | None = None


class DeltaUsage(ResponseModel):
    """Cumulative counts. Translated streams carry input_tokens here (an OpenAI upstream reports
    usage only at the end); relayed ones may not."""

    input_tokens: int | None = omitted()
    output_tokens: int


class MessageDelta(ResponseModel):
    type: Literal["message_delta"] = "message_delta"
    delta: StopDelta
    usage: DeltaUsage


class MessageStop(ResponseModel):
    type: Literal["message_stop"] = "message_stop"


Event = (
    MessageStart | Ping | ContentBlockStart | ContentBlockDelta | ContentBlockStop | MessageDelta
    | MessageStop
)


def _named(event: Event) -> tuple[str, dict[str, Any]]:
    """An event as it is sent: named by its type."""
    return event.type, event.to_json()


class EventEncoder:
    """Internal chunks -> Anthropic stream events `(name, data)`, in the API's order:
    message_start, then per block content_block_start / _delta... / _stop, then message_delta
    and message_stop. A thinking block opens on the first reasoning, a text block on the first
    text; each tool call opens its own block."""

    def __init__(self, model: str, request_id: str) -> None:
        self._model = model
        self._request_id = request_id
        self._block = -1  # index of the open content block, -1 before the first
        self._open: str | None = None  # "thinking", "text", or "tool:<tool index>"

    def start(self) -> Iterator[tuple[str, dict[str, Any]]]:
        message = MessageResponse(
            id=message_id(self._request_id),
            model=self._model,
            content=[],
            stop_reason=None,
            # Known only at the end when the upstream is of another family: message_delta
            # carries the final counts, which the SDKs take over.
            usage=MessageUsage(input_tokens=0, output_tokens=0),
        )
        yield _named(MessageStart(message=message))
        yield _named(Ping())

    def encode(self, chunk: ChatChunk) -> Iterator[tuple[str, dict[str, Any]]]:
        if chunk.reasoning:
            if self._open != "thinking":
                yield from self._open_block("thinking", ThinkingContentBlock(thinking=""))
            yield self._delta(ThinkingDelta(thinking=chunk.reasoning))
        if chunk.delta:
            if self._open != "text":
                yield from self._open_block("text", TextContentBlock(text=""))
            yield self._delta(TextDelta(text=chunk.delta))
        if chunk.tool_call is not None:
            call = chunk.tool_call
            key = f"tool:{call.index}"
            if self._open != key:
                block = ToolUseContentBlock(id=call.id, name=call.name, input={})
                yield from self._open_block(key, block)
            if call.arguments:
                yield self._delta(InputJSONDelta(partial_json=call.arguments))
        if chunk.finish_reason is not None:
            yield from self._close_block()
            final = chunk.usage or Usage()
            yield _named(
                MessageDelta(
                    delta=StopDelta(
                        stop_reason=_stop_reason(chunk.finish_reason, chunk.stop_sequence),
                        stop_sequence=chunk.stop_sequence,
                    ),
                    usage=DeltaUsage(
                        input_tokens=final.input_tokens, output_tokens=final.output_tokens
                    ),
                )
            )
            yield _named(MessageStop())

    def _open_block(
        self, key: str, block: TextContentBlock | ToolUseContentBlock | ThinkingContentBlock
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        yield from self._close_block()
        self._block += 1
        self._open = key
        yield _named(ContentBlockStart(index=self._block, content_block=block))

    def _close_block(self) -> Iterator[tuple[str, dict[str, Any]]]:
        if self._open is not None:
            yield _named(ContentBlockStop(index=self._block))
            self._open = None

    def _delta(self, delta: BlockDelta) -> tuple[str, dict[str, Any]]:
        return _named(ContentBlockDelta(index=self._block, delta=delta))


# --- errors --------------------------------------------------------------------------------------

class AnthropicErrorDetail(ResponseModel):
    type: wire.ErrorType
    message: str


class AnthropicError(ResponseModel):
    """Anthropic's error: the body of a failed /v1/messages, and the data of the `error` event
    that ends a stream failing after its first byte."""

    type: Literal["error"] = "error"
    error: AnthropicErrorDetail


class MessageStreamEvent(
    RootModel[
        Annotated[
            MessageStart
            | Ping
            | ContentBlockStart
            | ContentBlockDelta
            | ContentBlockStop
            | MessageDelta
            | MessageStop
            | AnthropicError,
            Field(discriminator="type"),
        ]
    ]
):
    """The data of one event of a streamed answer, sent as `event: <its type>`."""


def error_body(error: RouterError, status: int) -> dict[str, Any]:
    detail = AnthropicErrorDetail(type=wire.error_type(status), message=error.message)
    return AnthropicError(error=detail).to_json()
