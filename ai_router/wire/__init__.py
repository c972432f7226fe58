"""One module per wire format, holding its vocabulary: paths, stop reasons, error types, stream
framing and where usage lives. The provider that speaks a format, the front door that accepts it
and the simulator that fakes it all import it from here, so the three cannot drift apart."""

from __future__ import annotations

import re
from typing import Any, Protocol

from ai_router.wire import anthropic_messages, openai_chat


class RelayedFormat(Protocol):
    """What the core reads in an answer it relays unparsed."""

    @property
    def CONTENT_PIECE(self) -> re.Pattern[bytes]: ...  # noqa: N802  # a module constant

    def usage_counts(self, document: Any) -> tuple[int | None, int | None] | None: ...


# Each family's module, by the family's name (a provider's `family`, a client's API).
FORMATS: dict[str, RelayedFormat] = {
    openai_chat.FAMILY: openai_chat,
    anthropic_messages.FAMILY: anthropic_messages,
}
