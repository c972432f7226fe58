"""OpenAI's embeddings endpoint as the simulator answers it (POST /v1/embeddings).

The request is checked as the real API checks it: `input` a non-empty string, or a list (at
most 2048) of non-empty strings, of token ids, or of non-empty token-id lists, else its one
message for them all; `encoding_format` float or base64; `dimensions` a positive number, and
refused by text-embedding-ada-002.

Each vector is a pure function of the model and the input: drawn from a generator seeded with
both, cut to `dimensions` and scaled to length 1 (as OpenAI's are), then rounded to float32, so
that the float and base64 encodings carry the same numbers. base64 is the vector's little-endian
float32 bytes, which the openai SDK (asking for base64 unless told) decodes. The prompt tokens
are the words of text inputs and the ids of token inputs, as the simulator counts elsewhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import struct
from typing import Any

from .conversation import BadRequest, fail, require_model, require_object, word_count

NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
DEFAULT_DIMENSIONS = 1536  # any other model
FIXED_DIMENSIONS = ("text-embedding-ada-002",)  # older than `dimensions`
MAX_INPUTS = 2048
ENCODINGS = ("float", "base64")
# What the API says of any malformed `input`, with no param.
INVALID_INPUT = (
    "'$.input' is invalid. Please check the API reference: "
    "https://platform.openai.com/docs/api-reference."
)


def embeddings(body: object) -> dict[str, Any]:
    """Validate an embeddings request and compute its answer."""
    body = require_object(body)
    model = require_model(body)
    inputs = _inputs(body.get("input"))
    encoding = body.get("encoding_format") or "float"
    if encoding not in ENCODINGS:
        fail(f"Invalid value {encoding!r}: supported values are 'float' and 'base64'",
             "encoding_format")
    size = _dimensions(body.get("dimensions"), model)
    data = [
        {"object": "embedding", "index": index, "embedding": _encode(_vector(model, item, size), encoding)}
        for index, item in enumerate(inputs)
    ]
    tokens = sum(word_count([item]) if isinstance(item, str) else len(item) for item in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _inputs(value: object) -> list[str | list[int]]:
    """Each input: a string, or a list of token ids."""
    if isinstance(value, str) and value:
        return [value]
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        raise BadRequest(INVALID_INPUT)
    if all(_token_id(item) for item in value):
        return [value]  # one input, as token ids
    if all(isinstance(item, str) and item for item in value):
        return list(value)
    if all(isinstance(item, list) and item and all(map(_token_id, item)) for item in value):
        return list(value)
    raise BadRequest(INVALID_INPUT)


def _token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _dimensions(value: object, model: str) -> int:
    native = NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    if value is None:
        return native
    if model in FIXED_DIMENSIONS:
        raise BadRequest("This model does not support specifying dimensions.")
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= native:
        fail(f"must be a whole number from 1 to {native} for {model}", "dimensions")
    return value


def _vector(model: str, item: str | list[int], size: int) -> list[float]:
    seed = hashlib.sha256(json.dumps([model, item]).encode()).digest()
    generator = random.Random(seed)
    native = NATIVE_DIMENSIONS.get(model, DEFAULT_DIMENSIONS)
    values = [generator.gauss(0.0, 1.0) for _ in range(native)][:size]
    norm = math.sqrt(sum(value * value for value in values)) or 1.0
    packed = struct.pack(f"<{size}f", *(value / norm for value in values))
    return list(struct.unpack(f"<{size}f", packed))


def _encode(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
