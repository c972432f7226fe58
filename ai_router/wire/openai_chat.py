"""OpenAI Chat Completions: the vocabulary of the wire format.

Spoken by the OpenAI provider (and any OpenAI-compatible server), accepted by the router's
/v1/chat/completions, and faked by the simulator. Shapes: ../shared/PROVIDER_WIRE.md.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from ai_router.types import FinishReason, Usage
from ai_router.wire.usage import token_counts

FAMILY: Final = "openai"
DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"
CHAT_PATH: Final = "/chat/completions"
REQUEST_ID_HEADER: Final = "x-request-id"

# The API's finish reasons; the router's own are OpenAI's, so translating is mostly the identity.
STOP: Final = "stop"
LENGTH: Final = "length"
TOOL_CALLS: Final = "tool_calls"
CONTENT_FILTER: Final = "content_filter"
FINISH_REASONS: dict[str, FinishReason] = {
    STOP: "stop",
    LENGTH: "length",
    TOOL_CALLS: "tool_calls",
    "function_call": "tool_calls",  # the deprecated functions API
    CONTENT_FILTER: "content_filter",
}

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "rate_limit_error",
    "server_error",
]
_ERROR_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
}

# A stream event that carries generated content: a chunk whose delta has content or tool-call
# arguments. Matched on the bytes, without parsing the event.
CONTENT_PIECE = re.compile(rb'"delta":\s*\{\s*"(?:content"\s*:\s*"[^"]|tool_calls")')


# Where OpenAI-compatible servers put a reasoning model's reasoning, in a message or a stream
# delta: `reasoning_content` (DeepSeek, llama.cpp, vLLM before 0.11) or `reasoning` (vLLM now,
# OpenRouter, Ollama). OpenAI itself sends none in Chat Completions.
REASONING_FIELDS: Final = ("reasoning_content", "reasoning")


def finish_reason(reason: str | None) -> FinishReason:
    return FINISH_REASONS.get(reason or STOP, "stop")


def reasoning(message: Any) -> str:
    """The reasoning text of a message or delta; empty when it has none."""
    for name in REASONING_FIELDS:
        value = message.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def matched_stop(choice: Any, stops: tuple[str, ...]) -> str | None:
    """The stop sequence that ended a choice. OpenAI's finish_reason "stop" does not tell a stop
    sequence from the model's own end; vLLM and servers like it name the match in `stop_reason`."""
    found = choice.get("stop_reason")
    return found if isinstance(found, str) and found in stops else None


def error_type(status: int) -> ErrorType:
    """The `error.type` of an error answered with `status`."""
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def usage_counts(document: Any) -> tuple[int | None, int | None] | None:
    """(input, output) tokens of a document that has a usage: a chat.completion, or a stream's
    last chunk (with include_usage)."""
    found = document.get("usage") if isinstance(document, dict) else None
    if not isinstance(found, dict):
        return None
    return token_counts(found, "prompt_tokens", "completion_tokens")


def usage(document: Any) -> Usage:
    """The usage of a chat.completion or chunk; zeros where it has none."""
    counts = usage_counts(document) or (None, None)
    return Usage(counts[0] or 0, counts[1] or 0)
