"""OpenAI Responses API: the vocabulary of the wire format.

Spoken by the OpenAI provider (POST /responses), accepted by the router's /v1/responses, and
faked by the simulator. Same family as Chat Completions (`openai`): a Responses body is relayed
only to an OpenAI-family provider, and translated through the router's types for any other.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ai_router.wire.openai_chat import FAMILY
from ai_router.wire.usage import token_counts

__all__ = ["FAMILY", "PATH", "CONTENT_PIECE", "usage_counts"]

PATH: Final = "/responses"

# Prefixes of the ids the API gives its objects.
RESPONSE_ID_PREFIX: Final = "resp_"
MESSAGE_ID_PREFIX: Final = "msg_"
FUNCTION_CALL_ID_PREFIX: Final = "fc_"
REASONING_ID_PREFIX: Final = "rs_"
FUNCTION_CALL_OUTPUT_ID_PREFIX: Final = "fco_"

# A response's `status`.
COMPLETED: Final = "completed"
INCOMPLETE: Final = "incomplete"
FAILED: Final = "failed"
IN_PROGRESS: Final = "in_progress"

# The stream's event types that the router emits or reads (each event's data carries its
# `type` and a `sequence_number`; the SSE `event:` line repeats the type).
RESPONSE_CREATED: Final = "response.created"
RESPONSE_IN_PROGRESS: Final = "response.in_progress"
RESPONSE_COMPLETED: Final = "response.completed"
RESPONSE_INCOMPLETE: Final = "response.incomplete"
RESPONSE_FAILED: Final = "response.failed"
OUTPUT_ITEM_ADDED: Final = "response.output_item.added"
OUTPUT_ITEM_DONE: Final = "response.output_item.done"
CONTENT_PART_ADDED: Final = "response.content_part.added"
CONTENT_PART_DONE: Final = "response.content_part.done"
OUTPUT_TEXT_DELTA: Final = "response.output_text.delta"
OUTPUT_TEXT_DONE: Final = "response.output_text.done"
FUNCTION_CALL_ARGUMENTS_DELTA: Final = "response.function_call_arguments.delta"
FUNCTION_CALL_ARGUMENTS_DONE: Final = "response.function_call_arguments.done"
REASONING_SUMMARY_PART_ADDED: Final = "response.reasoning_summary_part.added"
REASONING_SUMMARY_PART_DONE: Final = "response.reasoning_summary_part.done"
REASONING_SUMMARY_TEXT_DELTA: Final = "response.reasoning_summary_text.delta"
REASONING_SUMMARY_TEXT_DONE: Final = "response.reasoning_summary_text.done"
ERROR: Final = "error"
# The events after which the response is whole: it carries the final output and usage.
FINAL_EVENTS: Final = (RESPONSE_COMPLETED, RESPONSE_INCOMPLETE, RESPONSE_FAILED)

# A stream event that carries generated content (text, a call's arguments, reasoning), matched
# on the bytes without parsing the event.
CONTENT_PIECE = re.compile(
    rb'"type"\s*:\s*"response\.(?:output_text|function_call_arguments|reasoning_summary_text|'
    rb'reasoning_text|refusal)\.delta"'
)


def usage_counts(document: Any) -> tuple[int | None, int | None] | None:
    """(input, output) tokens of a document that has a usage: a Response, or a stream event
    that carries one (`response.completed`, `response.incomplete`, `response.failed`)."""
    if not isinstance(document, dict):
        return None
    response = document.get("response")
    found = (response if isinstance(response, dict) else document).get("usage")
    if not isinstance(found, dict):
        return None
    return token_counts(found, "input_tokens", "output_tokens")
