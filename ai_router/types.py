"""The router's internal request, response and stream types.

Every front door (gRPC, the native HTTP API, later the OpenAI- and Anthropic-shaped APIs) translates
its wire format into these, and every provider translates these into its upstream's wire format.
They are plain frozen dataclasses: cheap to build on the hot path, and impossible to mutate by
accident once a request has been validated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

Role = Literal["user", "assistant"]

# The router's own finish reasons, in OpenAI's vocabulary because most clients already know it.
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str


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
    timeout: float | None = None
    request_id: str = ""

    def with_target(self, provider: str, model: str, max_tokens: int) -> ChatRequest:
        return replace(self, provider=provider, model=model, max_tokens=max_tokens)


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class ChatResponse:
    content: str
    finish_reason: FinishReason
    usage: Usage
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class ChatChunk:
    """One piece of a stream: a text delta, or the closing chunk that carries the finish reason
    and usage (`delta` empty). A stream ends with exactly one closing chunk."""

    delta: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None

    @property
    def is_final(self) -> bool:
        return self.finish_reason is not None
