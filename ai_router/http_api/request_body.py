"""Reading a JSON request body into a pydantic model, with errors that say what to fix."""

from __future__ import annotations

from typing import Any, TypeVar

from flask import request
from pydantic import BaseModel, ValidationError

from ai_router.errors import InvalidRequest

Body = TypeVar("Body", bound=BaseModel)


def parse_body(model: type[Body]) -> Body:
    # Over MAX_CONTENT_LENGTH this raises werkzeug's 413, which the app turns into our error.
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise InvalidRequest("the request body is empty; send a JSON object")
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise _invalid(exc.errors(include_url=False)) from None


def _invalid(problems: list[Any]) -> InvalidRequest:
    first = problems[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(f"the request body is not valid JSON: {first['ctx']['error']}")
    if first["type"] == "model_type":
        return InvalidRequest("the request body must be a JSON object")
    param = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return InvalidRequest(f"{param} is not a known field", param=param)
    return InvalidRequest(f"{param}: {first['msg']}", param=param)
