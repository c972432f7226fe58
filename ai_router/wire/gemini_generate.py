"""Google Gemini's generateContent API (the Gemini Developer API, v1beta): the vocabulary of the
wire format.

Spoken by the Gemini provider and faked by the simulator. No front door of the router accepts it,
so nothing is relayed in it: it needs no CONTENT_PIECE or usage_counts (wire/__init__.py).
Shapes: the REST reference of `models.generateContent` / `models.streamGenerateContent` and
googleapis/python-genai `google/genai/types.py`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final, Literal
from urllib.parse import quote

from ai_router.types import FinishReason

FAMILY: Final = "gemini"
DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com"
API_VERSION: Final = "v1beta"
API_KEY_HEADER: Final = "x-goog-api-key"
# The model is part of the path; a stream is asked for by its method and `alt=sse` (without it
# the stream is one JSON array, sent in pieces).
GENERATE: Final = "generateContent"
STREAM_GENERATE: Final = "streamGenerateContent"
SSE_QUERY: Final = "alt=sse"
# /v1beta/models/{model}:{method}, the model id without its "models/" prefix.
PATH_RE: Final = re.compile(r"^/(v1beta|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$")

USER: Final = "user"
MODEL: Final = "model"
MAX_STOP_SEQUENCES: Final = 5
JSON_MIME_TYPE: Final = "application/json"

FinishReasonName = Literal[
    "FINISH_REASON_UNSPECIFIED",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "RECITATION",
    "LANGUAGE",
    "OTHER",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "MALFORMED_FUNCTION_CALL",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
]
# What a candidate's finishReason means in the router's terms. STOP with a function call is
# "tool_calls" (the provider decides: Gemini has no reason of its own for it). The content
# filters of every kind are "content_filter"; the model's failures to call a tool properly are
# errors (FAILED_CALLS); anything else ended the text.
FINISH_REASONS: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
FAILED_CALLS: Final = frozenset(
    {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS", "MISSING_THOUGHT_SIGNATURE"}
)
# The router's finish reasons as finishReason, for the simulator's answers.
FINISH_REASON_OF: dict[FinishReason, FinishReasonName] = {
    "stop": "STOP",
    "length": "MAX_TOKENS",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
}

# google.rpc.Code names, as `error.status` carries them beside the HTTP status.
STATUSES: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# `error.details[]` entries, by their "@type".
ERROR_INFO: Final = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST: Final = "type.googleapis.com/google.rpc.BadRequest"
RETRY_INFO: Final = "type.googleapis.com/google.rpc.RetryInfo"
# ErrorInfo.reason of a key Google does not know: answered 400, not 401.
API_KEY_INVALID: Final = "API_KEY_INVALID"

# OpenAI's reasoning efforts for the two generations of thinking control: Gemini 3 takes a
# `thinkingLevel`, Gemini 2.5 a `thinkingBudget` in tokens (0: off, -1: the model decides).
THINKING_LEVELS: Final[dict[str, str]] = {
    "none": "minimal",  # Gemini 3 cannot turn thinking off; minimal is the least it does
    "minimal": "minimal",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}
THINKING_BUDGETS: Final[dict[str, int]] = {
    "none": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
    "xhigh": -1,
    "max": -1,
}


def status_name(status: int) -> str:
    return STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def finish_reason(reason: str | None, called: bool) -> FinishReason:
    """The router's reason for a candidate's finishReason; `called`: it made function calls."""
    if called and reason in (None, "STOP"):
        return "tool_calls"
    return FINISH_REASONS.get(reason or "STOP", "stop")


def path(model: str, stream: bool) -> str:
    """The path of a call to `model` (with or without its "models/" prefix). The name is the
    client's: quoted whole, so that no "/", "?" or "#" in it can aim the router's key at
    another path."""
    model = quote(model.removeprefix("models/"), safe="")
    if stream:
        return f"/{API_VERSION}/models/{model}:{STREAM_GENERATE}?{SSE_QUERY}"
    return f"/{API_VERSION}/models/{model}:{GENERATE}"


def usage(metadata: Any) -> tuple[int, int]:
    """(input, output) tokens of a usageMetadata: the prompt with any tool-use prompt, and the
    candidates with the thoughts (billed as output, and not counted in candidatesTokenCount)."""
    if not isinstance(metadata, dict):
        return 0, 0

    def count(key: str) -> int:
        value = metadata.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    return (
        count("promptTokenCount") + count("toolUsePromptTokenCount"),
        count("candidatesTokenCount") + count("thoughtsTokenCount"),
    )


# ---- tool-call ids ------------------------------------------------------------------------------
# Gemini's function calls have no ids: results are matched by name and order. The router's clients
# need one per call, and Gemini 3 needs each call's `thoughtSignature` back with the call when the
# conversation goes on (400 otherwise). So the id the router gives a call carries its signature:
# `gemini_<unique>` or `gemini_<unique>_<signature, URL-safe base64 without padding>`; ids stay in
# [A-Za-z0-9_-], which every family accepts.

CALL_ID_PREFIX: Final = "gemini_"


def call_id(unique: str, signature: str | None) -> str:
    if not signature:
        return f"{CALL_ID_PREFIX}{unique}"
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return f"{CALL_ID_PREFIX}{unique}"  # not base64: nothing that could be sent back
    return f"{CALL_ID_PREFIX}{unique}_{base64.urlsafe_b64encode(raw).decode().rstrip('=')}"


def signature_of(call_id: str) -> str | None:
    """The thoughtSignature a call id carries (standard base64, as Gemini sent it), if any."""
    if not call_id.startswith(CALL_ID_PREFIX):
        return None
    _, _, encoded = call_id.removeprefix(CALL_ID_PREFIX).partition("_")
    if not encoded:
        return None
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        return None
    return base64.b64encode(raw).decode()
