"""OpenAI Responses API JSON <-> the router's internal types.

Used when a Responses client (POST /v1/responses) reaches a provider of another family; to an
OpenAI-family provider the body is relayed instead. The request models list what can be
translated; any other field the client set is refused with a 400 naming it. What carries no
meaning elsewhere (an earlier answer's reasoning, caching hints, metadata) is let go, and what the
endpoint itself handles (`store`, `previous_response_id`) is only echoed here. docs/TRANSLATION.md
has every rule.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from ai_router.errors import InvalidRequest, RouterError
from ai_router.http_api import sse
from ai_router.http_api.errors import status_and_type
from ai_router.http_api.v1 import family, openai_chat
from ai_router.http_api.v1.responses_documents import (
    Event,
    FunctionCallOutput,
    IncompleteDetails,
    OutputItem,
    OutputMessage,
    OutputTextContent,
    ReasoningOutput,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseErrorEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInProgressEvent,
    ResponseObject,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseReasoningSummaryPartAddedEvent,
    ResponseReasoningSummaryPartDoneEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningSummaryTextDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
    ResponseUsage,
    SummaryPart,
)
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
    ToolCallDelta,
    ToolChoice,
    Usage,
)
from ai_router.wire import openai_responses as wire

_DATA_URL_PREFIX = "data:"


class _Open(BaseModel):
    """Unknown fields are kept, so that the translation can refuse them by name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _tagged_by_type(
    known: tuple[str, ...], untyped: str | Callable[[Any], str] = "other"
) -> Any:
    """A discriminator: the `type` when it is one of `known`, else "other"; `untyped` when the
    object has no `type`."""

    def tag(value: Any) -> str:
        kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
        if kind is None:
            return untyped(value) if callable(untyped) else untyped
        return kind if kind in known else "other"

    return Discriminator(tag)


# --- input content parts ---------------------------------------------------------------------


class InputText(_Open):
    type: Literal["input_text"]
    text: str
    prompt_cache_breakpoint: dict[str, Any] | None = None  # a caching hint: let go


class InputImage(_Open):
    type: Literal["input_image"]
    image_url: str | None = None
    file_id: str | None = None
    detail: str | None = None
    prompt_cache_breakpoint: dict[str, Any] | None = None


class OutputText(_Open):
    """An earlier answer's text sent back; its annotations and logprobs are let go."""

    type: Literal["output_text"]
    text: str
    annotations: list[Any] | None = None
    logprobs: list[Any] | None = None


class RefusalPart(_Open):
    type: Literal["refusal"]
    refusal: str


class OtherPart(_Open):
    """Files and future part types: accepted by the schema so that the refusal can name them."""

    type: str


ContentPart = Annotated[
    Annotated[InputText, Tag("input_text")]
    | Annotated[InputImage, Tag("input_image")]
    | Annotated[OutputText, Tag("output_text")]
    | Annotated[RefusalPart, Tag("refusal")]
    | Annotated[OtherPart, Tag("other")],
    _tagged_by_type(("input_text", "input_image", "output_text", "refusal")),
]


# --- input items -----------------------------------------------------------------------------


class MessageItem(_Open):
    type: Literal["message"] = "message"
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    phase: str | None = None  # commentary or final answer: the text is the same


class FunctionCallItem(_Open):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Open):
    type: Literal["function_call_output"]
    call_id: str | None = None
    output: str | list[ContentPart]
    id: str | None = None
    status: str | None = None
    name: str | None = None  # repeats what call_id says


class SummaryText(_Open):
    type: Literal["summary_text"] = "summary_text"
    text: str


class ReasoningItem(_Open):
    """An earlier answer's reasoning: let go, as Chat Completions' reasoning_content is."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[SummaryText] = []
    content: list[Any] | None = None
    encrypted_content: str | None = None
    status: str | None = None


class ItemReference(_Open):
    type: Literal["item_reference"] | None = None
    id: str


class OtherItem(_Open):
    """Built-in tools' calls and outputs, and future item types: named in the refusal."""

    type: str


def _untyped_item(value: Any) -> str:
    # An item without a type is a message (EasyInputMessage) if it has a role, else a reference.
    has_role = "role" in value if isinstance(value, dict) else hasattr(value, "role")
    return "message" if has_role else "item_reference"


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")]
    | Annotated[ItemReference, Tag("item_reference")]
    | Annotated[OtherItem, Tag("other")],
    _tagged_by_type(
        ("message", "function_call", "function_call_output", "reasoning", "item_reference"),
        _untyped_item,
    ),
]
_ITEMS = TypeAdapter(list[InputItem])


# --- tools and settings ----------------------------------------------------------------------


class FunctionTool(_Open):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    # None: the Responses API's default, which is strict (OpenAI normalizes the schema to it).
    strict: bool | None = None
    defer_loading: bool | None = None


class OtherTool(_Open):
    """A built-in tool (web_search, file_search, code_interpreter, mcp, ...) or a custom one."""

    type: str


ToolItem = Annotated[
    Annotated[FunctionTool, Tag("function")] | Annotated[OtherTool, Tag("other")],
    _tagged_by_type(("function",)),
]


class FunctionChoice(_Open):
    type: Literal["function"]
    name: str


class AllowedTools(_Open):
    type: Literal["allowed_tools"]
    mode: Literal["auto", "required"]
    tools: list[dict[str, Any]]


class OtherChoice(_Open):
    type: str


ToolChoiceValue = Annotated[
    Literal["none", "auto", "required"] | FunctionChoice | AllowedTools | OtherChoice,
    Field(union_mode="left_to_right"),
]


class TextFormat(_Open):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    description: str | None = None
    strict: bool | None = None


class TextConfig(_Open):
    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None  # a style hint: let go


class ReasoningConfig(_Open):
    effort: ReasoningEffort | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None
    context: str | None = None


class ResponsesRequest(BaseModel):
    """The translatable part of a Responses create body; other fields are kept as extras so
    that the refusal can name them."""

    model_config = ConfigDict(extra="allow")

    model: str
    input: str | list[InputItem] | None = None
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, strict=True)
    temperature: float | None = None
    top_p: float | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None  # obfuscation padding: the router sends none
    tools: list[ToolItem] | None = None
    tool_choice: ToolChoiceValue | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: ReasoningConfig | None = None
    user: str | None = None
    safety_identifier: str | None = None
    # Handled by the endpoint, or letting them go changes nothing in the answer: echoed only.
    metadata: dict[str, str] | None = None
    store: bool | None = None
    previous_response_id: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    include: list[str] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    prompt_cache_retention: str | None = None
    max_tool_calls: int | None = Field(default=None, strict=True)  # counts built-in tools only
    background: bool | None = None


# Why a field the router does not translate is refused, where more can be said than its name.
_REFUSED: dict[str, str] = {
    "conversation": "the router keeps no conversations; chain turns with previous_response_id",
    "prompt": "a prompt template is stored at OpenAI",
    "top_logprobs": "the provider returns no log probabilities",
    "context_management": "compaction runs at OpenAI",
}
# `include` values that ask for something the answer would then lack.
_REFUSED_INCLUDES = ("message.output_text.logprobs",)


# --- input items, for storage ----------------------------------------------------------------


def input_items(body: ResponsesRequest | Mapping[str, Any]) -> list[dict[str, Any]]:
    """This request's `input` as Responses input items (a string: one user message), each with
    an `id` (the client's, else a new one) and messages with a `status` and their content as a
    list of parts: as GET /v1/responses/{id}/input_items lists them. Takes the validated body
    or, for a relayed request, the raw one (its items are then copied, not checked)."""
    raw = body.get("input") if isinstance(body, Mapping) else _dumped_input(body)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [_stored({"role": "user", "content": raw})]
    if not isinstance(raw, list):
        raise InvalidRequest("input must be a string or a list of items", param="input")
    items = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"input[{index}] must be a JSON object", param=f"input[{index}]")
        items.append(_stored(item))
    return items


def _dumped_input(body: ResponsesRequest) -> str | list[dict[str, Any]] | None:
    if body.input is None or isinstance(body.input, str):
        return body.input
    return [_dump(item) for item in body.input]


_ID_PREFIXES = {
    "message": wire.MESSAGE_ID_PREFIX,
    "function_call": wire.FUNCTION_CALL_ID_PREFIX,
    "function_call_output": wire.FUNCTION_CALL_OUTPUT_ID_PREFIX,
    "reasoning": wire.REASONING_ID_PREFIX,
}
_HAVE_STATUS = ("message", "function_call", "function_call_output")


def _stored(item: Mapping[str, Any]) -> dict[str, Any]:
    data = dict(item)
    kind = data.get("type") or ("message" if "role" in data else "item_reference")
    data["type"] = kind
    if kind == "message" and isinstance(data.get("content"), str):
        text = data["content"]
        data["content"] = [
            {"type": "output_text", "text": text, "annotations": []}
            if data.get("role") == "assistant"
            else {"type": "input_text", "text": text}
        ]
    if kind in _HAVE_STATUS:
        data.setdefault("status", wire.COMPLETED)
    item_id = data.pop("id", None) or _new_id(_ID_PREFIXES.get(str(kind), "item_"))
    return {"id": item_id, **data}


def _new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


# --- request -> router types -----------------------------------------------------------------


def to_chat_request(
    body: ResponsesRequest, history: Sequence[Mapping[str, Any]], provider: str, request_id: str
) -> ChatRequest:
    """Translate for `provider`, which speaks another family. `history`: the items of the
    earlier turns (the endpoint expands previous_response_id into them: input and output items,
    in order); this body's `input` follows them."""
    _refuse_untranslatable(body, provider)
    turns = _Turns(provider)
    for index, item in enumerate(_earlier_items(history)):
        turns.add(item, f"previous_response_id (item {index} of the earlier turns)", earlier=True)
    if isinstance(body.input, str):
        turns.messages.append(Message("user", body.input))
    else:
        for index, item in enumerate(body.input or ()):
            turns.add(item, f"input[{index}]")
    if not turns.messages:
        raise InvalidRequest("input is required: the conversation has no message", param="input")
    system = [body.instructions] if body.instructions else []
    tools, choice = _tools_and_choice(body, provider)
    return ChatRequest(
        messages=tuple(turns.messages),
        provider=provider,
        system="\n".join(system + turns.system),
        max_tokens=check_max_tokens(body.max_output_tokens, "max_output_tokens"),
        sampling=check_sampling(Sampling(temperature=body.temperature, top_p=body.top_p)),
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=body.parallel_tool_calls,
        user=body.safety_identifier or body.user or "",
        output_format=_output_format(body.text, provider),
        reasoning_effort=body.reasoning.effort if body.reasoning else None,
        request_id=request_id,
    )


def _earlier_items(history: Sequence[Mapping[str, Any]]) -> list[Any]:
    try:
        return _ITEMS.validate_python([dict(item) for item in history])
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        raise InvalidRequest(
            f"previous_response_id: an earlier item cannot be read: {problem['msg']}",
            param="previous_response_id",
        ) from None


class _Turns:
    """The conversation as it is built: system text and the router's messages. An assistant
    message and the function calls after it are one assistant turn."""

    def __init__(self, provider: str) -> None:
        self.provider = provider
        self.system: list[str] = []
        self.messages: list[Message] = []

    def add(self, item: Any, where: str, earlier: bool = False) -> None:
        """Add one item; `where` names it in errors, whose param is the field itself, or
        previous_response_id for an item of the earlier turns."""
        if isinstance(item, ReasoningItem):
            return  # signed or summarized for OpenAI alone; other families take none back
        at = _Place(where, self.provider, earlier)
        if not isinstance(item, (ItemReference, OtherItem)):
            _refuse_extras(item, at)
        if isinstance(item, MessageItem):
            self._message(item, at)
        elif isinstance(item, FunctionCallItem):
            _arguments_object(item.arguments, at.field("arguments"))
            self._assistant("", (ToolCall(item.call_id, item.name, item.arguments),), calls=True)
        elif isinstance(item, FunctionCallOutputItem):
            if not item.call_id:
                here = at.field("call_id")
                raise InvalidRequest(f"{here.where} is required", param=here.param)
            text = _tool_output(item.output, at)
            self.messages.append(Message("tool", text, tool_call_id=item.call_id))
        elif isinstance(item, ItemReference):
            raise InvalidRequest(
                f"{where}: an item_reference names an item stored at OpenAI, which the router "
                f"cannot read for provider {self.provider!r}; send the item itself",
                param=at.param,
            )
        else:
            raise at.untranslatable(f"{item.type!r} items belong to OpenAI's built-in tools")

    def _message(self, item: MessageItem, at: _Place) -> None:
        content = item.content
        if item.role in ("system", "developer"):
            self.system.append(_text_only(content, at))
            return
        assistant = item.role == "assistant"
        if isinstance(content, str):
            parts: tuple[Part, ...] | str = content
        else:
            parts = tuple(
                _part(part, at.field(f"content[{index}]"), assistant)
                for index, part in enumerate(content)
            )
        if assistant:
            self._assistant(parts, (), calls=False)
        else:
            self.messages.append(Message("user", parts))

    def _assistant(
        self, content: str | tuple[Part, ...], tool_calls: tuple[ToolCall, ...], calls: bool
    ) -> None:
        last = self.messages[-1] if self.messages else None
        # Calls join the assistant turn before them; so does text after a turn without calls.
        if last is not None and last.role == "assistant" and (calls or not last.tool_calls):
            merged = _joined(last.content, content)
            self.messages[-1] = Message("assistant", merged, last.tool_calls + tool_calls)
        else:
            self.messages.append(Message("assistant", content, tool_calls))


def _joined(first: str | tuple[Part, ...], then: str | tuple[Part, ...]) -> str | tuple[Part, ...]:
    if isinstance(first, str) and isinstance(then, str):
        return "\n".join(text for text in (first, then) if text)
    return _as_parts(first) + _as_parts(then)


def _as_parts(content: str | tuple[Part, ...]) -> tuple[Part, ...]:
    if isinstance(content, str):
        return (TextPart(content),) if content else ()
    return content


@dataclass(frozen=True)
class _Place:
    """Where an item or part is, for errors: `where` in the message; the param is that path,
    or previous_response_id for the earlier turns (the client did not write those items)."""

    where: str
    provider: str
    earlier: bool = False

    @property
    def param(self) -> str:
        return "previous_response_id" if self.earlier else self.where

    def field(self, name: str) -> _Place:
        return _Place(f"{self.where}.{name}", self.provider, self.earlier)

    def untranslatable(self, why: str = "") -> InvalidRequest:
        return _untranslatable(self.where, self.provider, why, self.param)


def _part(part: Any, at: _Place, assistant: bool) -> Part:
    if isinstance(part, OtherPart):
        raise at.untranslatable(f"{part.type!r} parts have no equivalent")
    _refuse_extras(part, at)
    if isinstance(part, (InputText, OutputText)):
        return TextPart(part.text)
    if isinstance(part, RefusalPart):
        if not assistant:
            raise InvalidRequest(f"{at.where}: only assistant messages have refusals", at.param)
        return TextPart(part.refusal)  # what the assistant said when it declined
    return _image(part, at)


def _image(part: InputImage, at: _Place) -> ImagePart:
    if part.file_id is not None:
        raise at.field("file_id").untranslatable(
            "the file is stored at OpenAI; send the image as image_url (a URL or a data URL)"
        )
    url = part.image_url or ""
    here = at.field("image_url")
    if not url:
        raise InvalidRequest(f"{here.where} is required", here.param)
    if not url.startswith(_DATA_URL_PREFIX):
        return ImagePart(url=url, detail=part.detail)
    header, comma, data = url.partition(",")
    media_type, _, encoding = header.removeprefix(_DATA_URL_PREFIX).partition(";")
    if not comma or encoding != "base64" or not media_type:
        raise InvalidRequest(
            f"{here.where}: a data URL must read data:<media type>;base64,<data>", here.param
        )
    return ImagePart(media_type=media_type, data=data, detail=part.detail)


def _arguments_object(arguments: str, at: _Place) -> None:
    """Other families take a call's arguments as an object (Anthropic's tool_use `input`): any
    other JSON is refused here, named as the client wrote it, rather than by the provider,
    whose check names the Chat Completions field. Empty arguments are an empty object."""
    try:
        value = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{at.where} must be a JSON object to be sent to provider {at.provider!r}; got "
            f"{arguments!r}",
            param=at.param,
        )


def _text_only(content: str | list[Any], at: _Place) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for index, part in enumerate(content):
        if not isinstance(part, (InputText, OutputText)):
            raise at.field(f"content[{index}]").untranslatable("only text parts go here")
        texts.append(part.text)
    return "".join(texts)


def _tool_output(output: str | list[Any], at: _Place) -> str:
    if isinstance(output, str):
        return output
    texts = []
    for index, part in enumerate(output):
        if not isinstance(part, InputText):
            raise at.field(f"output[{index}]").untranslatable(
                "a function's output reaches it as text only"
            )
        texts.append(part.text)
    return "".join(texts)


def _tools_and_choice(
    body: ResponsesRequest, provider: str
) -> tuple[tuple[Tool, ...], ToolChoice | None]:
    tools = tuple(
        _tool(tool, f"tools[{index}]", provider) for index, tool in enumerate(body.tools or ())
    )
    choice = body.tool_choice
    if choice is None:
        return tools, None
    if isinstance(choice, str):
        return tools, ToolChoice(choice)
    if isinstance(choice, FunctionChoice):
        return tools, ToolChoice("tool", choice.name)
    if isinstance(choice, AllowedTools):
        return _allowed(tools, choice), ToolChoice(choice.mode)
    raise _untranslatable(
        "tool_choice", provider, f"{choice.type!r} names one of OpenAI's built-in tools"
    )


def _allowed(tools: tuple[Tool, ...], choice: AllowedTools) -> tuple[Tool, ...]:
    """tool_choice allowed_tools: the model sees only the functions it names."""
    names = []
    for index, allowed in enumerate(choice.tools):
        where = f"tool_choice.tools[{index}]"
        if allowed.get("type") != "function" or not isinstance(allowed.get("name"), str):
            raise InvalidRequest(f"{where}: only function tools can be allowed here", param=where)
        if not any(tool.name == allowed["name"] for tool in tools):
            raise InvalidRequest(f"{where}: no function named {allowed['name']!r} in tools", where)
        names.append(allowed["name"])
    return tuple(tool for tool in tools if tool.name in names)


def _tool(tool: Any, where: str, provider: str) -> Tool:
    if isinstance(tool, OtherTool):
        why = (
            "custom tools take free-form text, which other families' tools do not"
            if tool.type == "custom"
            else f"{tool.type!r} is one of OpenAI's built-in tools, which run at OpenAI"
        )
        raise _untranslatable(f"{where}.type", provider, why)
    _refuse_extras(tool, _Place(where, provider))
    if tool.defer_loading:
        raise _untranslatable(
            f"{where}.defer_loading", provider, "deferred tools are found by OpenAI's tool search"
        )
    return Tool(
        tool.name,
        tool.description or "",
        tool.parameters or {},
        strict=tool.strict is not False,
    )


def _output_format(text: TextConfig | None, provider: str) -> OutputFormat | None:
    spec = text.format if text else None
    if spec is None or spec.type == "text":
        return None
    if spec.type == "json_object":
        # Refused here, by its own name, rather than by the provider's check, which names
        # Chat Completions' response_format.
        raise _untranslatable(
            "text.format",
            provider,
            "JSON mode (json_object) has no equivalent: other families' JSON outputs follow a "
            'schema, so send {"type": "json_schema", "name": ..., "schema": ...}',
        )
    return OutputFormat(spec.schema_, spec.name or "output", bool(spec.strict))


def _refuse_untranslatable(body: ResponsesRequest, provider: str) -> None:
    for name, value in (body.model_extra or {}).items():
        if value is not None:
            raise _untranslatable(name, provider, _REFUSED.get(name, ""))
    if body.background:
        raise _untranslatable(
            "background", provider, "the router does not run responses in the background"
        )
    for value in body.include or ():
        if value in _REFUSED_INCLUDES:
            raise _untranslatable("include", provider, f"{value!r}: {_REFUSED['top_logprobs']}")
    for name, config in (("text", body.text), ("reasoning", body.reasoning)):
        if config is not None:
            _refuse_extras(config, _Place(name, provider))
    if body.text and body.text.format:
        _refuse_extras(body.text.format, _Place("text.format", provider))


def _refuse_extras(model: BaseModel, at: _Place) -> None:
    for name, value in (model.model_extra or {}).items():
        if value is not None:
            raise at.field(name).untranslatable()


def _untranslatable(
    field: str, provider: str, why: str = "", param: str | None = None
) -> InvalidRequest:
    reason = f": {why}" if why else ""
    return InvalidRequest(
        f"{field} cannot be translated for provider {provider!r}{reason}; remove it, or use a "
        "provider of the OpenAI family",
        param=param or field,
    )


# --- router types -> the Response object (its models: responses_documents.py) ----------------


def render(
    response: ChatResponse, model: str, response_id: str, body: ResponsesRequest, created_at: int
) -> dict[str, Any]:
    """The whole Response object for a translated answer."""
    status, reason = _status(response.finish_reason)
    output: list[OutputItem] = []
    if response.reasoning:
        output.append(_reasoning_item(_new_id(wire.REASONING_ID_PREFIX), response.reasoning))
    if response.content or not response.tool_calls:
        output.append(_message_item(_new_id(wire.MESSAGE_ID_PREFIX), response.content))
    for call in response.tool_calls:
        item_id = _new_id(wire.FUNCTION_CALL_ID_PREFIX)
        output.append(_call_item(item_id, call.id, call.name, call.arguments))
    _mark_last(output, status)
    document = _response(
        body, model, response_id, created_at, status, reason, output, response.usage
    )
    return document.to_json()


def _status(finish: FinishReason) -> tuple[str, IncompleteDetails | None]:
    if finish == "length":
        return wire.INCOMPLETE, IncompleteDetails(reason="max_output_tokens")
    if finish == "content_filter":
        return wire.INCOMPLETE, IncompleteDetails(reason="content_filter")
    return wire.COMPLETED, None


def _mark_last(output: list[OutputItem], status: str) -> None:
    # The item that was being written when the answer was cut is incomplete too.
    if output and status == wire.INCOMPLETE:
        output[-1].status = wire.INCOMPLETE


def _reasoning_item(item_id: str, text: str, status: str = wire.COMPLETED) -> ReasoningOutput:
    return ReasoningOutput(id=item_id, summary=[SummaryPart(text=text)], status=status)


def _message_item(item_id: str, text: str, status: str = wire.COMPLETED) -> OutputMessage:
    return OutputMessage(id=item_id, status=status, content=[OutputTextContent(text=text)])


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = wire.COMPLETED
) -> FunctionCallOutput:
    return FunctionCallOutput(
        id=item_id, call_id=call_id, name=name, arguments=arguments, status=status
    )


def _response(
    body: ResponsesRequest,
    model: str,
    response_id: str,
    created_at: int,
    status: str,
    incomplete: IncompleteDetails | None,
    output: list[OutputItem],
    usage: Usage | None,
) -> ResponseObject:
    return ResponseObject(
        id=response_id,
        created_at=created_at,
        completed_at=int(time.time()) if status == wire.COMPLETED else None,
        status=status,
        incomplete_details=incomplete,
        model=model,
        output=output,
        usage=_usage(usage) if usage is not None else None,
        instructions=body.instructions,
        max_output_tokens=body.max_output_tokens,
        max_tool_calls=body.max_tool_calls,
        previous_response_id=body.previous_response_id,
        reasoning=_echo_reasoning(body.reasoning),
        store=body.store is not False,
        temperature=body.temperature,
        top_p=body.top_p,
        text=_echo_text(body.text),
        tool_choice=_echo_choice(body.tool_choice),
        tools=[_echo_tool(tool) for tool in body.tools or ()],
        parallel_tool_calls=body.parallel_tool_calls is not False,
        truncation=body.truncation or "disabled",
        metadata=body.metadata or {},
        user=body.user,
        safety_identifier=body.safety_identifier,
        prompt_cache_key=body.prompt_cache_key,
    )


def _usage(usage: Usage) -> ResponseUsage:
    return ResponseUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


def _echo_reasoning(reasoning: ReasoningConfig | None) -> dict[str, Any]:
    if reasoning is None:
        return {"effort": None, "summary": None}
    return {"effort": reasoning.effort, "summary": reasoning.summary or reasoning.generate_summary}


def _echo_text(text: TextConfig | None) -> dict[str, Any]:
    spec = text.format if text else None
    return {
        "format": _dump(spec) if spec else {"type": "text"},
        "verbosity": (text.verbosity if text else None) or "medium",
    }


def _echo_choice(choice: Any) -> str | dict[str, Any]:
    if choice is None:
        return "auto"
    return choice if isinstance(choice, str) else _dump(choice)


def _echo_tool(tool: Any) -> dict[str, Any]:
    data = _dump(tool)
    if isinstance(tool, FunctionTool):
        data.setdefault("description", None)
        data.setdefault("parameters", None)
        data["strict"] = tool.strict is not False
    return data


# --- the event stream ------------------------------------------------------------------------


@dataclass
class _Writing:
    """The output item being streamed: its kind, id, place and what it holds so far."""

    kind: Literal["reasoning", "message", "call"]
    id: str
    output_index: int
    text: str = ""
    call_index: int = -1
    call_id: str = ""
    name: str = ""


class EventStream(family.StreamEncoder):
    """Router chunks -> the Responses API's named events, in OpenAI's order: response.created
    and response.in_progress, then per output item (reasoning, the message, each function call)
    its added event, its deltas and its done events, then response.completed (or
    response.incomplete) carrying the whole Response. The stream has no [DONE]."""

    done = b""

    def __init__(self, body: ResponsesRequest, model: str, response_id: str, created_at: int):
        self._body, self._model, self._id, self._created_at = body, model, response_id, created_at
        self._sequence = 0
        self._output: list[OutputItem] = []  # the items done, by output index
        self._writing: _Writing | None = None
        self._calls: dict[int, int] = {}  # a call's index -> its output index
        self._has_message = False
        self._final: dict[str, Any] | None = None
        start = _response(body, model, response_id, created_at, wire.IN_PROGRESS, None, [], None)
        self.head = self._send(
            ResponseCreatedEvent(sequence_number=self._next(), response=start)
        ) + self._send(ResponseInProgressEvent(sequence_number=self._next(), response=start))

    @property
    def response(self) -> dict[str, Any] | None:
        """The final Response once the stream ended, for storage; None before."""
        return self._final

    def encode(self, chunk: ChatChunk) -> Iterator[bytes]:
        if chunk.reasoning:
            yield from self._reasoning(chunk.reasoning)
        if chunk.delta:
            yield from self._text(chunk.delta)
        if chunk.tool_call is not None:
            yield from self._call(chunk.tool_call)
        if chunk.finish_reason is not None:
            yield from self._finish(chunk.finish_reason, chunk.usage or Usage())

    def error_event(self, error: RouterError) -> bytes:
        """A failure after the first byte, numbered in this stream's sequence."""
        return error_event(error, self._next())

    def _reasoning(self, text: str) -> Iterator[bytes]:
        writing = self._writing
        if writing is None or writing.kind != "reasoning":
            yield from self._close()
            writing = yield from self._open("reasoning", wire.REASONING_ID_PREFIX)
            yield self._send(
                ResponseReasoningSummaryPartAddedEvent(
                    sequence_number=self._next(), **self._at(writing), summary_index=0,
                    part=SummaryPart(text=""),
                )
            )
        writing.text += text
        yield self._send(
            ResponseReasoningSummaryTextDeltaEvent(
                sequence_number=self._next(), **self._at(writing), summary_index=0, delta=text
            )
        )

    def _text(self, text: str) -> Iterator[bytes]:
        writing = self._writing
        if writing is None or writing.kind != "message":
            writing = yield from self._open_message()
        writing.text += text
        yield self._send(
            ResponseTextDeltaEvent(
                sequence_number=self._next(), **self._at(writing), content_index=0, delta=text
            )
        )

    def _open_message(self) -> Generator[bytes, None, _Writing]:
        yield from self._close()
        writing = yield from self._open("message", wire.MESSAGE_ID_PREFIX)
        self._has_message = True
        yield self._send(
            ResponseContentPartAddedEvent(
                sequence_number=self._next(), **self._at(writing), content_index=0,
                part=OutputTextContent(text=""),
            )
        )
        return writing

    def _call(self, piece: ToolCallDelta) -> Iterator[bytes]:
        writing = self._writing
        if writing is None or writing.kind != "call" or writing.call_index != piece.index:
            done_at = self._calls.get(piece.index)
            if done_at is not None:
                # A late piece of a call already done: it still belongs to that call.
                item = self._output[done_at]
                assert isinstance(item, FunctionCallOutput)
                item.arguments += piece.arguments
                if piece.arguments:
                    yield self._send(
                        ResponseFunctionCallArgumentsDeltaEvent(
                            sequence_number=self._next(), item_id=item.id,
                            output_index=done_at, delta=piece.arguments,
                        )
                    )
                return
            yield from self._close()
            writing = yield from self._open(
                "call", wire.FUNCTION_CALL_ID_PREFIX, call_index=piece.index,
                call_id=piece.id, name=piece.name,
            )
            self._calls[piece.index] = writing.output_index
        if piece.arguments:
            writing.text += piece.arguments
            yield self._send(
                ResponseFunctionCallArgumentsDeltaEvent(
                    sequence_number=self._next(), **self._at(writing), delta=piece.arguments
                )
            )

    def _finish(self, finish: FinishReason, usage: Usage) -> Iterator[bytes]:
        status, reason = _status(finish)
        if not self._has_message and not self._calls:
            yield from self._open_message()  # an answer always has a message, if only empty
        yield from self._close(status)
        response = _response(
            self._body, self._model, self._id, self._created_at, status, reason, self._output, usage
        )
        self._final = response.to_json()
        final = ResponseCompletedEvent if status == wire.COMPLETED else ResponseIncompleteEvent
        yield self._send(final(sequence_number=self._next(), response=response))

    def _open(
        self, kind: Literal["reasoning", "message", "call"], prefix: str, **fields: Any
    ) -> Generator[bytes, None, _Writing]:
        writing = _Writing(kind, _new_id(prefix), len(self._output), **fields)
        self._writing = writing
        item = self._item(writing, wire.IN_PROGRESS)
        if isinstance(item, ReasoningOutput):
            item.summary = []
        elif isinstance(item, OutputMessage):
            item.content = []
        yield self._send(
            ResponseOutputItemAddedEvent(
                sequence_number=self._next(), output_index=writing.output_index, item=item
            )
        )
        return writing

    def _close(self, status: str = wire.COMPLETED) -> Iterator[bytes]:
        """The done events of the item being written, if any."""
        writing = self._writing
        if writing is None:
            return
        self._writing = None
        at = self._at(writing)
        if writing.kind == "reasoning":
            yield self._send(
                ResponseReasoningSummaryTextDoneEvent(
                    sequence_number=self._next(), **at, summary_index=0, text=writing.text
                )
            )
            yield self._send(
                ResponseReasoningSummaryPartDoneEvent(
                    sequence_number=self._next(), **at, summary_index=0,
                    part=SummaryPart(text=writing.text),
                )
            )
        elif writing.kind == "message":
            yield self._send(
                ResponseTextDoneEvent(
                    sequence_number=self._next(), **at, content_index=0, text=writing.text
                )
            )
            yield self._send(
                ResponseContentPartDoneEvent(
                    sequence_number=self._next(), **at, content_index=0,
                    part=OutputTextContent(text=writing.text),
                )
            )
        else:
            yield self._send(
                ResponseFunctionCallArgumentsDoneEvent(
                    sequence_number=self._next(), **at, arguments=writing.text
                )
            )
        item = self._item(writing, status)
        self._output.append(item)
        yield self._send(
            ResponseOutputItemDoneEvent(
                sequence_number=self._next(), output_index=writing.output_index, item=item
            )
        )

    @staticmethod
    def _item(writing: _Writing, status: str) -> OutputItem:
        if writing.kind == "reasoning":
            return _reasoning_item(writing.id, writing.text, status)
        if writing.kind == "message":
            return _message_item(writing.id, writing.text, status)
        return _call_item(writing.id, writing.call_id, writing.name, writing.text, status)

    @staticmethod
    def _at(writing: _Writing) -> dict[str, Any]:
        return {"item_id": writing.id, "output_index": writing.output_index}

    def _next(self) -> int:
        """The next event's sequence number."""
        self._sequence += 1
        return self._sequence - 1

    @staticmethod
    def _send(event: Event) -> bytes:
        # Dumped when sent: a later event may change an item an earlier one carried.
        return sse.encode(event.to_json(), event=event.type)


def error_event(error: RouterError, sequence_number: int = 0) -> bytes:
    """A failure after the first byte: an `error` event (ResponseErrorEvent says why its
    fields are there twice)."""
    status, _ = status_and_type(error)
    # The error as a failed request's body has it, read back from the one place that makes it.
    detail = openai_chat.OpenAIError.model_validate(openai_chat.error_body(error, status)).error
    event = ResponseErrorEvent(
        sequence_number=sequence_number,
        code=detail.code or detail.type,
        message=detail.message,
        param=detail.param,
        error=detail,
    )
    return sse.encode(event.to_json(), event=event.type)
