"""One module per wire format, holding its vocabulary: paths, stop reasons, error types, stream
framing and where usage lives. The provider that speaks a format, the front door that accepts it
and the simulator that fakes it all import it from here, so the three cannot drift apart."""

from __future__ import annotations

import re
from typing import Any, Protocol

from ai_router.wire import anthropic_messages, openai_chat, openai_responses


class RelayedFormat(Protocol):
    """What the core reads in an answer it relays unparsed."""

    @property
    def CONTENT_PIECE(self) -> re.Pattern[bytes]: ...  # noqa: N802  # a module constant

    def usage_counts(self, document: Any) -> tuple[int | None, int | None] | None: ...


# Each family's module, by the family's name (a provider's `family`, a client's API), for the
# bodies relayed to its chat endpoint; the other endpoints whose answers have a format of their
# own, by (family, endpoint).
FORMATS: dict[str, RelayedFormat] = {
    openai_chat.FAMILY: openai_chat,
    anthropic_messages.FAMILY: anthropic_messages,
}
ENDPOINT_FORMATS: dict[tuple[str, str], RelayedFormat] = {
    (openai_responses.FAMILY, "responses"): openai_responses,
}


def relayed_format(family: str, endpoint: str) -> RelayedFormat:
    """The format of an answer relayed from `endpoint` of a provider of `family`."""
    return ENDPOINT_FORMATS.get((family, endpoint)) or FORMATS[family]
