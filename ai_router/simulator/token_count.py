"""Anthropic's token counting as the simulator answers it (POST /v1/messages/count_tokens).

The request is a Messages request without what only generation takes: a field outside the
SDK's `messages.count_tokens` parameters (`max_tokens`, `stream`, the sampling options...) is
refused as the API refuses it, "max_tokens: Extra inputs are not permitted". The rest is checked
as /v1/messages checks it, and the count is the input tokens that request would report (words,
plus one per image), so a test can predict it.
"""

from __future__ import annotations

from .anthropic_request import parse_anthropic
from .conversation import fail, require_object

FIELDS = frozenset({
    "model", "messages", "system", "tools", "tool_choice", "thinking", "cache_control",
    "output_config", "speed",
})  # fmt: skip


def count_tokens(body: object) -> dict[str, int]:
    """Validate a token-counting request and count its input tokens."""
    body = require_object(body)
    for field in body:
        if field not in FIELDS:
            fail("Extra inputs are not permitted", field)
    # The Messages checks want the max_tokens that counting does not take.
    conversation = parse_anthropic({**body, "max_tokens": 1})
    return {"input_tokens": conversation.input_tokens}
