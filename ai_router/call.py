"""What a front door asks of the core: one `Call`, whatever the API family it came in.

A call names a model (an alias, `provider/model`, or a model of `provider`) and says how to ask
any target for it: in the router's own types (`chat`, built for a target's provider), or, for a
target of the client's own family, by relaying the client's body (`relay`) to one of its
upstream's endpoints. The core builds the requests it needs before the first attempt, so a
request that cannot be translated is refused before any upstream is tried. An endpoint the
router's types do not model (embeddings, token counts) is relayed only: its `chat` refuses.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ai_router.types import ChatRequest

CHARS_PER_TOKEN = 3  # a cautious estimate of a prompt's tokens before the provider counts them

# The upstream endpoints a client's body can be relayed to. "chat" and "responses" have a
# translation into the router's types; the others reach providers of the client's own family only.
Endpoint = Literal["chat", "embeddings", "count_tokens", "responses"]


@dataclass(frozen=True, slots=True)
class Relayable:
    """The client's JSON body in its family's wire format, to pass through to a target of that
    family with only `model` changed."""

    family: str
    body: Mapping[str, Any]
    endpoint: Endpoint = "chat"


@dataclass(frozen=True, slots=True)
class Call:
    model: str
    # The request in the router's types, for the named provider (whose name its errors give);
    # the core fills in the target's provider, model, max_tokens and time limit.
    chat: Callable[[str], ChatRequest]
    provider: str = ""
    stream: bool = False
    timeout: float | None = None  # what the caller can still wait, in seconds
    request_id: str = ""
    input_tokens: int = 0  # estimated, for the reservation against the key's limits
    max_output: int | None = None  # None: the largest default of the targets' providers
    relay: Relayable | None = None
    # Costs nothing and takes nothing from the key's limits (Anthropic's token counting: free,
    # and rate-limited apart from generation); the key must still allow the model.
    free: bool = False

    @classmethod
    def of(cls, request: ChatRequest, stream: bool) -> Call:
        """A request already in the router's types (the native API, gRPC)."""
        return cls(
            model=request.model,
            chat=lambda provider: request,
            provider=request.provider,
            stream=stream,
            timeout=request.timeout,
            request_id=request.request_id,
            input_tokens=estimate_tokens(request),
            max_output=request.max_tokens,
        )


def estimate_tokens(request: ChatRequest) -> int:
    characters = len(request.system) + sum(len(m.text) for m in request.messages)
    return math.ceil(characters / CHARS_PER_TOKEN) + len(request.messages)


def estimate_from_text(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
