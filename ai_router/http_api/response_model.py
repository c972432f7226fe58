"""The base of the models the HTTP API builds its JSON answers through.

Every JSON document the router writes itself (answers, stream events, errors) is made by
constructing one of these and dumping it, and the OpenAPI document (openapi.py) is generated from
the same classes, so what is documented is what is sent.

In the document a field is required unless it may be left out: a field declared with `omitted()`
is absent from the JSON when it is None; every other field, defaults included, is always there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def _is_none(value: object) -> bool:
    return value is None


class ResponseModel(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON object, ready for jsonify or an event (no second validation pass)."""
        return self.model_dump(mode="json")


def omitted() -> Any:
    """A field absent from the JSON when it is None (not `null`), and optional in the schema."""
    return Field(default=None, exclude_if=_is_none)
