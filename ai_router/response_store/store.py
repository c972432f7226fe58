"""What a stored response is, and what every store of them does (the backends:
sqlite_responses.py, redis_responses.py; the rules: the package's docstring)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ai_router.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class StoredResponse:
    # The Response's id: an OpenAI-family upstream's own when relayed, else one the router made.
    id: str
    owner: str  # the name of the router key that created it; "" when the router has no keys
    provider: str  # the provider that answered
    # True: an OpenAI-family upstream answered it as it is and keeps its own copy under this id.
    relayed: bool
    response: Mapping[str, Any]  # the Response object as the client got it
    # Every input item of the conversation up to this response: earlier turns' input and output
    # items, then this request's input items.
    context: tuple[Mapping[str, Any], ...]
    created_at: float  # Unix time


class ResponseStore(ABC):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    @abstractmethod
    def put(self, stored: StoredResponse) -> None:
        """Keep `stored` for the retention (replacing one of the same owner and id). Raises
        InvalidRequest when it is over the size cap, StateUnavailable when the store cannot be
        used."""

    @abstractmethod
    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        """The response; None when it is absent, expired or another owner's (never told apart)."""

    @abstractmethod
    def delete(self, response_id: str, owner: str) -> bool:
        """Delete the response; False when `get` would be None."""

    @abstractmethod
    def check(self) -> None:
        """Write to the store once, or raise StateUnavailable saying what to fix."""

    def close(self) -> None:
        """Release connections."""

    def check_fits(self, context: Sequence[Mapping[str, Any]]) -> None:
        """Raise what `put` would when `context` alone is over the size cap: for refusing a
        request before an upstream is paid for an answer that could not be stored."""
        size = len(orjson.dumps(list(context), default=_plain))
        if size > self.max_bytes:
            raise _too_large(size, self.max_bytes)

    def encoded(self, stored: StoredResponse) -> bytes:
        """`stored` as JSON, or InvalidRequest when it is over the size cap."""
        data = orjson.dumps(
            {
                "id": stored.id,
                "owner": stored.owner,
                "provider": stored.provider,
                "relayed": stored.relayed,
                "response": stored.response,
                "context": stored.context,
                "created_at": stored.created_at,
            },
            default=_plain,
        )
        if len(data) > self.max_bytes:
            raise _too_large(len(data), self.max_bytes)
        return data


def decoded(data: bytes, response_id: str, owner: str) -> StoredResponse | None:
    """The StoredResponse in `data`; None unless it is `response_id` of `owner`."""
    value = orjson.loads(data)
    if value["id"] != response_id or value["owner"] != owner:
        return None
    return StoredResponse(
        id=value["id"],
        owner=value["owner"],
        provider=value["provider"],
        relayed=value["relayed"],
        response=value["response"],
        context=tuple(value["context"]),
        created_at=value["created_at"],
    )


def _plain(value: Any) -> Any:
    """What orjson cannot encode by itself: other Mappings (read-only views) and Sequences."""
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return list(value)
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _too_large(size: int, max_bytes: int) -> InvalidRequest:
    return InvalidRequest(
        f"this conversation is too large to store: {size} bytes, over the router's "
        f"responses.max_stored_bytes ({max_bytes}); send `store: false`, or start a new "
        "conversation without previous_response_id",
        param="store",
    )
