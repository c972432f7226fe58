"""A tool call's arguments as the object that the Anthropic and Gemini APIs carry (`input`,
`functionCall.args`), where OpenAI carries them as JSON text of any value."""

from __future__ import annotations

from typing import Any

import orjson

from ai_router.errors import InvalidRequest
from ai_router.types import ToolCall


def arguments_object(call: ToolCall, where: str, provider_kind: str) -> dict[str, Any]:
    """The call's arguments (empty: {}), or InvalidRequest naming `where` when they are not a
    JSON object, which an `provider_kind` provider cannot be sent."""
    try:
        value = orjson.loads(call.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            f"{where}.function.arguments must be a JSON object to be sent to {provider_kind} "
            f"provider; got {call.arguments!r}",
            param=f"{where}.function.arguments",
        )
    return value
