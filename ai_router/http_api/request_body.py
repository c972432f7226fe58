"""Reading a JSON request body, with errors that say what to fix."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from flask import request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected

from ai_router.errors import InvalidRequest, RequestTimeout, RequestTooLarge
from ai_router.json_nesting import check_nesting

Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body]) -> Body:
    """The body, validated by `model` in one pass (pydantic parses the JSON itself)."""
    try:
        return model.model_validate_json(_raw_body())
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)) from None


def read_json_object() -> dict[str, Any]:
    """The body as a plain JSON object, for requests relayed without a schema."""
    raw = _raw_body()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    check_nesting(data, "the request body")
    return data


def validate(model: type[Body], data: dict[str, Any]) -> Body:
    """An already-parsed object, validated by `model`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)) from None


def require_string(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"{key} is required and must be a non-empty string", param=key)
    return value


def _raw_body() -> bytes:
    try:
        raw = _read_body()
    except (OSError, ClientDisconnected) as error:
        # werkzeug reports a failed read of a sized body as a disconnect, the failure its cause.
        cause = error.__context__ if isinstance(error, ClientDisconnected) else error
        if isinstance(cause, TimeoutError):
            raise RequestTimeout(
                "the request body stopped arriving before its end (server.http_body_idle_timeout)"
            ) from None
        raise InvalidRequest(f"the request body cannot be read: {cause or error}") from None
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    return raw


def _read_body() -> bytes:
    limit = request.max_content_length
    if request.content_length is not None or limit is None:
        # Over MAX_CONTENT_LENGTH this raises werkzeug's 413, which the app turns into our error.
        raw: bytes = request.get_data(cache=False)
    else:
        # A body without a length (chunked): werkzeug would cut it at the limit without a word.
        raw = request.environ["wsgi.input"].read(limit + 1)
        if len(raw) > limit:
            raise RequestTooLarge(f"the request body is larger than the limit of {limit} bytes")
    return raw


def _invalid(problems: list[Any]) -> InvalidRequest:
    first = problems[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(f"the request body is not valid JSON: {first['ctx']['error']}")
    param = _path(first["loc"])
    if first["type"] == "model_type" and not param:
        return InvalidRequest("the request body must be a JSON object")
    if first["type"] == "model_type":
        return InvalidRequest(f"{param} must be a JSON object", param=param)
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"{param} is not a known field", param=param)
    return InvalidRequest(f"{param}: {first['msg']}", param=param)


def _path(location: tuple[Any, ...]) -> str:
    """pydantic's location as the client wrote it: messages[0].content, not messages.0.content.
    Union member names (`str`, `list[...]`, `TextBlock`) that pydantic inserts are left out."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part[:1].isupper() or "[" in part or part in ("str", "int", "float", "bool"):
            continue
        else:
            path += f".{part}" if path else part
    return path
