"""The Provider contract: what the core asks of an upstream, whatever it speaks.

A provider receives a request the router has already resolved (provider, model and max_tokens
set), answers it in the router's own types, and knows nothing of front doors. Required: `complete`
and `stream`. Optional: `check`, which refuses what the provider cannot send before any attempt,
and `relay`, a body already in the provider's own wire format passed through (the core relays
only to a provider whose `family` is the client's), with `check_relay` its refusals before any
attempt. Every failure is raised as one of the router's errors (errors.py).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ai_router.call import Endpoint, Relayable
from ai_router.config import ProviderSettings
from ai_router.errors import ProviderNotConfigured
from ai_router.types import ChatChunk, ChatRequest, ChatResponse
from ai_router.upstream_watch import Watch


@dataclass(frozen=True, slots=True)
class RelayRequest:
    """A client request in the upstream's own wire format, to pass through unparsed."""

    body: Mapping[str, Any]  # the client's JSON body, its model already the upstream's name
    stream: bool
    timeout: float | None = None
    request_id: str = ""
    endpoint: Endpoint = "chat"  # which of the upstream's endpoints it goes to


@dataclass(frozen=True, slots=True)
class RelayResponse:
    """The upstream's answer, body not yet read: `chunks` yields its bytes as they arrive and
    raises the router's errors; `close` ends the upstream response, read or not (idempotent)."""

    status: int
    content_type: str
    chunks: Iterator[bytes]
    close: Callable[[], None]


class Provider(ABC):
    """One configured upstream."""

    # The API family the upstream speaks ("openai", "anthropic"): a client of the same family
    # may be relayed to it.
    family: str = ""

    def __init__(self, settings: ProviderSettings) -> None:
        self.settings = settings
        self.name = settings.name

    @abstractmethod
    def complete(self, request: ChatRequest) -> ChatResponse:
        """The whole answer."""

    @abstractmethod
    def stream(self, request: ChatRequest, watch: Watch) -> Iterator[ChatChunk]:
        """Deltas as they arrive, then exactly one final chunk with the finish reason and usage,
        the upstream read under `watch` (its deadlines, and its cut-off when the client leaves).
        Closing the iterator early closes the upstream response."""

    def check(self, request: ChatRequest) -> None:
        """Raise InvalidRequest, before any attempt, for what this provider cannot send."""

    def check_relay(self, relay: Relayable) -> None:
        """Raise InvalidRequest, before any attempt, for what this provider cannot take in a
        body of its own family that would be relayed to it."""

    def relay(self, request: RelayRequest, watch: Watch) -> RelayResponse:
        """Send a body already in this provider's wire format; hand back its raw answer."""
        raise NotImplementedError(f"{type(self).__name__} does not relay requests")

    def close(self) -> None:
        """Release connections (a reload replaces the router and its providers)."""

    @property
    def api_key(self) -> str | None:
        return self.settings.api_key.get_secret_value() if self.settings.api_key else None

    def unavailable_reason(self) -> str | None:
        """Why this provider cannot serve requests, or None when it can."""
        if self.api_key is None and self.settings.key_required:
            return f"{self.settings.api_key_env} is not set"
        return None

    def require_key(self) -> str:
        key = self.api_key
        if key is None:
            raise ProviderNotConfigured(self.name, self.settings.api_key_env)
        return key
