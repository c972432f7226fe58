"""The router's internal request, response and stream types.

Every front door (gRPC, the native HTTP API, later the OpenAI- and Anthropic-shaped APIs) translates
its wire format into these, and every provider translates these into its upstream's wire format.
They are plain frozen dataclasses: cheap to build on the hot path, and impossible to mutate by
accident once a request has been validated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Tool results travel as their own `tool` messages (OpenAI's shape); the Anthropic provider folds
# them back into a user turn of tool_result blocks.
Role = Literal["user", "assistant", "tool"]

# The router's own finish reasons, in OpenAI's vocabulary because most clients already know it.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]

# How hard a model reasons before it answers, in OpenAI's vocabulary (`reasoning_effort`), which
# Anthropic's `output_config.effort` shares from "low" up.
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str


@dataclass(frozen=True, slots=True)
class ImagePart:
    """An image by URL, or inline as base64 `data` with its `media_type`."""

    url: str = ""
    media_type: str = ""
    data: str = ""
    detail: str | None = None  # OpenAI's low | high | auto; other providers ignore it


Part = TextPart | ImagePart


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model made. `arguments` is JSON text, as OpenAI carries it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)  # a JSON schema
    strict: bool = False  # the call's arguments must match `parameters` exactly


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """The answer's text is JSON: an instance of `schema`, or any JSON object when `schema` is
    None (OpenAI's JSON mode). `name` is what OpenAI calls the format; `strict` asks for the
    schema to be followed exactly rather than as a guide."""

    schema: Mapping[str, Any] | None = None
    name: str = "output"
    strict: bool = False


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """auto: the model decides; none: no tool; required: some tool; tool: the one named."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str = ""


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. `content` is plain text or a tuple of parts (text and images). An assistant turn
    may carry `tool_calls`; a `tool` turn answers the call named by `tool_call_id`."""

    role: Role
    content: str | tuple[Part, ...]
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    is_error: bool = False  # a tool result that reports a failure

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content if isinstance(part, TextPart))


@dataclass(frozen=True, slots=True)
class Sampling:
    """Optional sampling options; None means "the provider's default"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """What a client asked for, after its front door parsed it.

    `provider` and `model` may be empty: the router resolves them (a `provider/model` name, the
    provider's default model). `max_tokens` None means the provider's `default_max_tokens`.
    `timeout` is the longest the caller can still wait, in seconds (a gRPC deadline), or None.
    """

    messages: tuple[Message, ...]
    provider: str = ""
    model: str = ""
    system: str = ""
    max_tokens: int | None = None
    sampling: Sampling = field(default_factory=Sampling)
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    user: str = ""  # an end-user id for the provider's abuse monitoring
    output_format: OutputFormat | None = None
    reasoning_effort: ReasoningEffort | None = None  # None: the model's default
    timeout: float | None = None
    request_id: str = ""


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    """A whole answer. `reasoning` is the model's visible reasoning (Anthropic's thinking, an
    OpenAI-compatible server's reasoning content); `stop_sequence` the one that ended the text,
    when the upstream says which."""

    content: str
    finish_reason: FinishReason
    usage: Usage
    provider: str
    model: str
    tool_calls: tuple[ToolCall, ...] = ()
    reasoning: str = ""
    stop_sequence: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: `index` counts tool calls (not content blocks); `id` and
    `name` come with a call's first piece, `arguments` arrives in pieces."""

    index: int
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One piece of a stream: a text delta, a reasoning delta, a tool-call piece, or the closing
    chunk that carries the finish reason, the stop sequence that ended the text (when known) and
    the usage. A stream ends with exactly one closing chunk."""

    delta: str = ""
    tool_call: ToolCallDelta | None = None
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    reasoning: str = ""
    stop_sequence: str | None = None

    @property
    def is_final(self) -> bool:
        return self.finish_reason is not None
