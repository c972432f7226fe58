"""OpenAI Chat Completions JSON <-> the router's internal types.

Used when an OpenAI-family client reaches a provider of another family; between two OpenAI
speakers the body is relayed instead (see relay.py). The request models list exactly what
can be translated; any other field the client set is refused with a 400 naming it rather than
silently dropped. What carries no meaning elsewhere (a null refusal, a tool message's name beside
its tool_call_id, an earlier answer's reasoning) is let go: docs/TRANSLATION.md has every rule.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

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
from ai_router.wire import openai_chat as wire

_DATA_URL_PREFIX = "data:"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextContent(_Model):
    type: Literal["text"]
    text: str


class ImageURL(_Model):
    url: str
    detail: str | None = None


class ImageContent(_Model):
    type: Literal["image_url"]
    image_url: ImageURL


class RefusalContent(_Model):
    """A refusal in an assistant message sent back: what the assistant said."""

    type: Literal["refusal"]
    refusal: str


class OtherContent(BaseModel):
    """Audio, files and future part types: accepted by the schema so the error can name them."""

    model_config = ConfigDict(extra="allow")
    type: str


ContentPart = Annotated[
    TextContent | ImageContent | RefusalContent | OtherContent, Field(union_mode="left_to_right")
]


class FunctionCall(_Model):
    name: str
    arguments: str


class ToolCallModel(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Model):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallModel] | None = None
    tool_call_id: str | None = None
    # An earlier answer sent back as it came (the SDK's `messages.append(choice.message)`).
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None


class FunctionSpec(_Model):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class ToolSpec(_Model):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Model):
    name: str


class NamedToolChoice(_Model):
    type: Literal["function"]
    function: NamedFunction


class StreamOptions(_Model):
    include_usage: bool | None = None


class JSONSchemaSpec(_Model):
    name: str
    description: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaSpec | None = None


class ChatCompletionRequest(BaseModel):
    """The translatable part of a Chat Completions request; other fields are kept as extras so
    that the refusal can name them."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: StrictInt | None = None
    max_tokens: StrictInt | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: StrictInt | None = None
    stop: str | list[str] | None = None
    n: StrictInt | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str | None = None
    response_format: ResponseFormat | None = None
    reasoning_effort: ReasoningEffort | None = None


def to_chat_request(body: ChatCompletionRequest, target: str, request_id: str) -> ChatRequest:
    """Translate for provider `target`, which speaks another family (the core names the
    model)."""
    _refuse_untranslatable(body, target)
    system_parts: list[str] = []
    messages: list[Message] = []
    for index, message in enumerate(body.messages):
        where = f"messages[{index}]"
        # A tool message's name repeats what its tool_call_id already says (litellm sends it).
        if message.name is not None and message.role != "tool":
            raise _untranslatable(f"{where}.name", target)
        if message.role != "assistant":
            _refuse_answer_fields(message, where)
        if message.role in ("system", "developer"):
            system_parts.append(_text_only(message.content, f"{where}.content", target))
        elif message.role == "tool":
            if not message.tool_call_id:
                raise InvalidRequest(f"{where}.tool_call_id is required", f"{where}.tool_call_id")
            text = _text_only(message.content, f"{where}.content", target)
            messages.append(Message("tool", text, tool_call_id=message.tool_call_id))
        else:
            messages.append(_turn(message, where, target))
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    sampling = check_sampling(
        Sampling(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, stop=stop)
    )
    return ChatRequest(
        messages=tuple(messages),
        provider=target,
        system="\n".join(system_parts),
        max_tokens=_max_tokens(body),
        sampling=sampling,
        tools=tuple(_tool(tool.function) for tool in body.tools or ()),
        tool_choice=_tool_choice(body.tool_choice),
        parallel_tool_calls=body.parallel_tool_calls,
        user=body.user or "",
        output_format=_output_format(body.response_format),
        reasoning_effort=body.reasoning_effort,
        request_id=request_id,
    )


def _turn(message: ChatMessage, where: str, target: str) -> Message:
    """A user or assistant message."""
    calls = tuple(
        ToolCall(call.id, call.function.name, call.function.arguments)
        for call in message.tool_calls or ()
    )
    role: Literal["user", "assistant"] = "user" if message.role == "user" else "assistant"
    if role == "user" and calls:
        raise InvalidRequest(f"{where}.tool_calls: only assistant messages have them")
    content = _content(message.content, where, target, role == "assistant")
    if message.refusal:
        # What the assistant said when it declined: part of the conversation.
        content = _with_text(content, message.refusal)
    # An earlier answer's reasoning and annotations are let go: the answer's text stays.
    return Message(role, content, calls)


def _tool(function: FunctionSpec) -> Tool:
    return Tool(
        function.name,
        function.description or "",
        function.parameters or {},
        strict=bool(function.strict),
    )


def _output_format(value: ResponseFormat | None) -> OutputFormat | None:
    if value is None or value.type == "text":
        return None
    if value.type == "json_object":
        return OutputFormat()
    spec = value.json_schema
    if spec is None:
        raise InvalidRequest(
            "response_format.json_schema is required when response_format.type is json_schema",
            param="response_format.json_schema",
        )
    # OpenAI takes a json_schema without a schema as "any JSON object", as JSON mode does.
    return OutputFormat(spec.schema_, spec.name, bool(spec.strict))


def _refuse_answer_fields(message: ChatMessage, where: str) -> None:
    """Fields of an assistant's answer are the client's mistake on any other message."""
    for name in ("refusal", "annotations", "reasoning_content", "reasoning"):
        if getattr(message, name) is not None:
            raise InvalidRequest(
                f"{where}.{name}: only assistant messages have it", param=f"{where}.{name}"
            )


def _with_text(content: str | tuple[Part, ...], text: str) -> str | tuple[Part, ...]:
    if isinstance(content, str):
        return f"{content}\n{text}" if content else text
    return (*content, TextPart(text))


def _refuse_untranslatable(body: ChatCompletionRequest, target: str) -> None:
    for name, value in (body.model_extra or {}).items():
        if value is not None:
            raise _untranslatable(name, target)
    if body.n not in (None, 1):
        raise _untranslatable("n", target, "only n=1 can be translated")


def _untranslatable(param: str, target: str, why: str = "") -> InvalidRequest:
    reason = f": {why}" if why else ""
    return InvalidRequest(
        f"{param} cannot be translated for provider {target!r}{reason}; remove it, or use a "
        "provider of the OpenAI family",
        param=param,
    )


def _max_tokens(body: ChatCompletionRequest) -> int | None:
    if body.max_completion_tokens is not None:
        return check_max_tokens(body.max_completion_tokens, "max_completion_tokens")
    return check_max_tokens(body.max_tokens)


def _text_only(content: str | list[Any] | None, where: str, target: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, TextContent):
            raise _untranslatable(f"{where}[{index}]", target, "only text parts go here")
        texts.append(part.text)
    return "".join(texts)


def _content(
    content: str | list[Any] | None, where: str, target: str, assistant: bool
) -> str | tuple[Part, ...]:
    if content is None or isinstance(content, str):
        return content or ""
    parts: list[Part] = []
    for index, part in enumerate(content):
        if isinstance(part, TextContent):
            parts.append(TextPart(part.text))
        elif isinstance(part, RefusalContent) and assistant:
            parts.append(TextPart(part.refusal))
        elif isinstance(part, ImageContent):
            parts.append(_image(part.image_url, f"{where}.content[{index}]"))
        else:
            raise _untranslatable(
                f"{where}.content[{index}]", target, f"{part.type!r} parts have no equivalent"
            )
    return tuple(parts)


def _image(image: ImageURL, where: str) -> ImagePart:
    if not image.url.startswith(_DATA_URL_PREFIX):
        return ImagePart(url=image.url, detail=image.detail)
    header, comma, data = image.url.partition(",")
    media_type, _, encoding = header.removeprefix(_DATA_URL_PREFIX).partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise InvalidRequest(
            f"{where}.image_url.url: a data URL must read data:<media type>;base64,<data>",
            f"{where}.image_url.url",
        )
    return ImagePart(media_type=media_type, data=data, detail=image.detail)


def _tool_choice(choice: str | NamedToolChoice | None) -> ToolChoice | None:
    if choice is None:
        return None
    if isinstance(choice, NamedToolChoice):
        return ToolChoice("tool", choice.function.name)
    return ToolChoice(choice)  # type: ignore[arg-type]


# --- responses -----------------------------------------------------------------------------------
# Relayed answers (an OpenAI-family provider) are the upstream's own JSON, which has these shapes
# too, with more fields: the schemas allow properties beyond those listed.


class CompletionUsage(ResponseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(ResponseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None  # null when the answer is tool calls only
    refusal: str | None = None
    tool_calls: list[ToolCallModel] | None = omitted()
    # The model's reasoning (Anthropic's thinking), where OpenAI-compatible servers put it.
    reasoning_content: str | None = omitted()


class CompletionChoice(ResponseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: dict[str, Any] | None = None


class ChatCompletion(ResponseModel):
    """A `chat.completion`: the answer of a request without `stream`."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage


class FunctionDelta(ResponseModel):
    arguments: str
    name: str | None = omitted()  # in a call's first piece


class ToolCallDelta(ResponseModel):
    """A piece of a tool call; `id` and `type` come with its first piece."""

    index: int
    id: str | None = omitted()
    type: Literal["function"] | None = omitted()
    function: FunctionDelta


class ChunkDelta(ResponseModel):
    role: Literal["assistant"] | None = omitted()
    content: str | None = omitted()
    reasoning_content: str | None = omitted()
    tool_calls: list[ToolCallDelta] | None = omitted()


class ChunkChoice(ResponseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: FinishReason | None
    logprobs: dict[str, Any] | None = None


class ChatCompletionChunk(ResponseModel):
    """A `chat.completion.chunk`: one event of a streamed answer. The last one, when the request
    set `stream_options.include_usage`, has no choices and the usage."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = omitted()


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def completion(response: ChatResponse, model: str, request_id: str) -> dict[str, Any]:
    calls = [
        ToolCallModel(id=call.id, function=FunctionCall(name=call.name, arguments=call.arguments))
        for call in response.tool_calls
    ]
    message = AssistantMessage(
        content=response.content if response.content or not calls else None,
        tool_calls=calls or None,
        reasoning_content=response.reasoning or None,
    )
    return ChatCompletion(
        id=completion_id(request_id),
        created=int(time.time()),
        model=model,
        choices=[CompletionChoice(message=message, finish_reason=response.finish_reason)],
        usage=usage(response.usage),
    ).to_json()


def usage(value: Usage) -> CompletionUsage:
    return CompletionUsage(
        prompt_tokens=value.input_tokens,
        completion_tokens=value.output_tokens,
        total_tokens=value.total_tokens,
    )


class ChunkEncoder:
    """Internal chunks -> `chat.completion.chunk` JSON objects, in OpenAI's order: a role delta
    first, then content and tool-call deltas, a finish chunk, and the usage chunk if asked."""

    def __init__(self, model: str, request_id: str, include_usage: bool) -> None:
        self._id = completion_id(request_id)
        self._created = int(time.time())
        self._model = model
        self._include_usage = include_usage

    def start(self) -> dict[str, Any]:
        return self._chunk(ChunkDelta(role="assistant", content=""))

    def encode(self, chunk: ChatChunk) -> Iterator[dict[str, Any]]:
        if chunk.reasoning:
            yield self._chunk(ChunkDelta(reasoning_content=chunk.reasoning))
        if chunk.delta:
            yield self._chunk(ChunkDelta(content=chunk.delta))
        if chunk.tool_call is not None:
            call = chunk.tool_call
            piece = ToolCallDelta(
                index=call.index,
                id=call.id or None,
                type="function" if call.id else None,
                function=FunctionDelta(arguments=call.arguments, name=call.name or None),
            )
            yield self._chunk(ChunkDelta(tool_calls=[piece]))
        if chunk.finish_reason is not None:
            yield self._chunk(ChunkDelta(), chunk.finish_reason)
            if self._include_usage:
                yield self._document([], usage(chunk.usage or Usage()))

    def _chunk(self, delta: ChunkDelta, finish: FinishReason | None = None) -> dict[str, Any]:
        return self._document([ChunkChoice(delta=delta, finish_reason=finish)])

    def _document(
        self, choices: list[ChunkChoice], usage: CompletionUsage | None = None
    ) -> dict[str, Any]:
        return ChatCompletionChunk(
            id=self._id, created=self._created, model=self._model, choices=choices, usage=usage
        ).to_json()


# --- errors --------------------------------------------------------------------------------------

class OpenAIErrorDetail(ResponseModel):
    message: str
    type: wire.ErrorType
    param: str | None
    code: str | None


class OpenAIError(ResponseModel):
    """OpenAI's error object, all four keys always: the body of a failed request under /v1/
    (but /v1/messages), and the event that ends a stream failing after its first byte."""

    error: OpenAIErrorDetail


class ChatCompletionStreamEvent(RootModel[ChatCompletionChunk | OpenAIError]):
    """The JSON of one event of a streamed answer; `data: [DONE]` follows the last chunk of a
    stream that succeeded."""


def error_body(error: RouterError, status: int) -> dict[str, Any]:
    detail = OpenAIErrorDetail(
        message=error.message,
        type=wire.error_type(status),
        param=getattr(error, "param", None),
        code=getattr(error, "code", None),
    )
    return OpenAIError(error=detail).to_json()
