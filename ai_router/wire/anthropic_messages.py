"""Anthropic Messages: the vocabulary of the wire format.

Spoken by the Anthropic provider, accepted by the router's /v1/messages, and faked by the
simulator. Shapes: ../shared/PROVIDER_WIRE.md.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from ai_router.types import FinishReason
from ai_router.wire.usage import token_counts

FAMILY: Final = "anthropic"
DEFAULT_BASE_URL: Final = "https://api.anthropic.com"
MESSAGES_PATH: Final = "/v1/messages"
REQUEST_ID_HEADER: Final = "request-id"
MAX_TEMPERATURE: Final = 1.0  # the API's range is 0-1 (OpenAI's 0-2)
MIN_THINKING_BUDGET: Final = 1024  # thinking.budget_tokens, which must also be under max_tokens
# OpenAI's reasoning efforts as `output_config.effort`, which has no "minimal"; "none" is no
# thinking at all.
EFFORTS: Final[dict[str, str]] = {
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "xhigh",
    "max": "max",
}

StopReason = Literal[
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
]
STOP_REASONS: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
# The router's finish reasons as stop reasons, for answers translated from another family.
STOP_REASON_OF: dict[FinishReason, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}

# Stream events, each sent as `event: <name>` with the same name as its data's `type`.
MESSAGE_START: Final = "message_start"
CONTENT_BLOCK_START: Final = "content_block_start"
CONTENT_BLOCK_DELTA: Final = "content_block_delta"
CONTENT_BLOCK_STOP: Final = "content_block_stop"
MESSAGE_DELTA: Final = "message_delta"
MESSAGE_STOP: Final = "message_stop"
PING: Final = "ping"
ERROR: Final = "error"

ErrorType = Literal[
    "invalid_request_error",
    "authentication_error",
    "permission_error",
    "not_found_error",
    "request_too_large",
    "rate_limit_error",
    "api_error",
    "overloaded_error",
    "timeout_error",
]
_ERROR_TYPES: dict[int, ErrorType] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

# A stream event that carries generated content, matched on the bytes without parsing it.
CONTENT_PIECE = re.compile(rb'"type":\s*"content_block_delta"')


def finish_reason(reason: str | None) -> FinishReason:
    return STOP_REASONS.get(reason or "end_turn", "stop")


def error_type(status: int) -> ErrorType:
    """The `error.type` of an error answered with `status`."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def usage_counts(document: Any) -> tuple[int | None, int | None] | None:
    """(input, output) tokens of a document that has a usage: a message, a stream's
    message_start (in its message) or message_delta (cumulative counts; input_tokens may be
    missing there, hence None)."""
    if not isinstance(document, dict):
        return None
    found = document.get("usage")
    if found is None and isinstance(document.get("message"), dict):
        found = document["message"].get("usage")
    if not isinstance(found, dict):
        return None
    return token_counts(found, "input_tokens", "output_tokens")
