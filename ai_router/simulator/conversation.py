"""What the simulator's reply depends on, read off a request of either family, plus shared checks.

Each family's request module (openai_request.py, anthropic_request.py) validates a body the way the
real API does and boils it down to one `Conversation`; reply.py turns that into the reply. A
`BadRequest` raised anywhere on the way is answered as a 400 in the family's error format.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

WORD_RE = re.compile(r"\S+")
# Tool names, as both APIs constrain them.
TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
HTTP_URL_RE = re.compile(r"^https?://[^\s/?#]+\S*$")


class BadRequest(Exception):
    """The request is invalid; answered as a 400 in the family's error format."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True, slots=True)
class Conversation:
    """A validated request, reduced to what the deterministic reply needs."""

    model: str
    limit: int | None  # the output token limit, if any
    stops: tuple[str, ...]
    stream: bool
    include_usage: bool  # OpenAI's stream_options.include_usage
    input_tokens: int
    user_text: str  # text of the last user message
    images: int  # image parts in the last user message
    tool_results: tuple[str, ...] | None  # set when the last turn carries tool results
    tool: str | None  # the tool to call: tools are declared and the tool choice is not "none"
    # Structured output: the text is an instance of this schema (JSON mode: JSON_MODE_SCHEMA).
    json_schema: dict[str, Any] | None = None
    # Anthropic's thinking: a thinking block first, its text shown (summarized) or not (omitted).
    thinking: Literal["summarized", "omitted"] | None = None
    # The schema of the tool to call, when that tool is strict: its arguments must match it.
    tool_schema: dict[str, Any] | None = None


# What JSON mode (OpenAI's json_object, which names no schema) answers: an object.
JSON_MODE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"reply": {"type": "string"}}}


def fail(message: str, param: str | None = None) -> NoReturn:
    raise BadRequest(f"{param}: {message}" if param else message, param)


def content_text(content: object) -> str:
    """Text of a message content: a string, or the concatenated `text` parts of a block list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def word_count(texts: list[str]) -> int:
    return sum(len(WORD_RE.findall(t)) for t in texts)


def input_token_count(texts: list[str], images: int) -> int:
    """Words of every text the model reads, plus 1 per image.

    At least 1: a real tokenizer never reports an empty prompt, and routers divide by it.
    """
    return max(1, word_count(texts) + images)


# ---- field checks -------------------------------------------------------------------------------
# `param` is the field's path in the family's own notation; it leads the error message.


def require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def require_model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: field required (a non-empty string)", "model")
    return model


def require_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise BadRequest("messages: field required (a non-empty list of message objects)", "messages")
    return messages


def optional_limit(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"{name}: must be an integer >= 1", name)
    return value


def stop_list(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise BadRequest(f"{name}: must be a string or a list of strings", name)
    return tuple(s for s in value if s)  # an empty stop would match at 0 and end every reply at once


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if stream is None:
        return False
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", "stream")
    return stream


def require_dict(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        fail("must be an object", param)
    return value


def require_list(value: object, param: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        fail("must be a non-empty array", param)
    return value


def require_str(value: object, param: str, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        fail("must be a string", param)
    if nonempty and not value:
        fail("must not be empty", param)
    return value


def optional_str(value: object, param: str) -> None:
    if value is not None and not isinstance(value, str):
        fail("must be a string", param)


def optional_bool(value: object, param: str) -> None:
    if value is not None and not isinstance(value, bool):
        fail("must be a boolean", param)


def require_tool_name(value: object, param: str) -> str:
    name = require_str(value, param)
    if not TOOL_NAME_RE.match(name):
        fail("must match ^[a-zA-Z0-9_-]{1,64}$", param)
    return name


def require_http_url(value: object, param: str) -> str:
    url = require_str(value, param)
    if not HTTP_URL_RE.match(url):
        fail("must be an http(s) URL", param)
    return url


def require_base64(value: object, param: str) -> str:
    data = require_str(value, param, nonempty=True)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        fail("is not valid base64 data", param)
    return data
