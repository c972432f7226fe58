"""A deterministic JSON value that matches a JSON schema: what the simulator answers when a
request asks for structured output (OpenAI's response_format, Anthropic's output_config.format).

Covers what both APIs' structured outputs accept: types (a list of types takes its first),
`enum` and `const` (their first value), `anyOf`/`oneOf` (the first branch), `allOf` (merged),
local `$ref` into `$defs` or `definitions`, every listed property of an object, one item of an
array, and the string formats both document. Every free string is `text`, so a test can still
find the reply in it.
"""

from __future__ import annotations

from typing import Any

# A value of each documented string format, so that clients that parse them (pydantic's
# datetime, EmailStr...) accept the answer.
FORMATS: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "P1D",
    "email": "sim@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
# Deep enough for any schema a client writes; a recursive one stops here with null.
MAX_DEPTH = 16


def instance(schema: dict[str, Any], text: str) -> Any:
    """A value of `schema`, its free strings `text`."""
    return _value(schema, schema, text, 0)


def _value(schema: Any, root: dict[str, Any], text: str, depth: int) -> Any:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return None
    if "$ref" in schema:
        return _value(_resolve(schema["$ref"], root), root, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        if schema.get(union):
            return _value(schema[union][0], root, text, depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for part in schema["allOf"]:
            value = _value(part, root, text, depth + 1)
            if isinstance(value, dict):
                merged.update(value)
        return merged
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = kind[0] if kind else None
    if kind is None:
        kind = "object" if "properties" in schema else "string"
    return _typed(kind, schema, root, text, depth)


def _typed(kind: str, schema: dict[str, Any], root: dict[str, Any], text: str, depth: int) -> Any:
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _value(sub, root, text, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        return [_value(schema.get("items") or {}, root, text, depth + 1)]
    if kind == "string":
        return FORMATS.get(str(schema.get("format")), text)
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return None


def _resolve(ref: object, root: dict[str, Any]) -> Any:
    """A local reference, `#/$defs/Name` or `#/definitions/Name`; anything else is unknown."""
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return None
    found: Any = root
    for key in ref[2:].split("/"):
        if not isinstance(found, dict):
            return None
        found = found.get(key.replace("~1", "/").replace("~0", "~"))
    return found
