"""When to try a target again, and how long to wait first. Every number lives here."""

from __future__ import annotations

import random

from ai_router.errors import RouterError

INITIAL_DELAY = 0.5  # seconds before the first retry, doubling with each one
MAX_DELAY = 8.0
JITTER = 0.25  # up to this fraction is taken off each delay, so clients do not retry in step
MAX_RETRY_AFTER = 60.0  # a provider's retry-after is honoured up to this


def should_retry(error: RouterError) -> bool:
    """408, 409, 429, 5xx, 529 and connection errors; never the client's own 4xx."""
    return error.retryable


def delay(retry_number: int, error: RouterError, rng: random.Random) -> float:
    """Seconds to wait before retry `retry_number` (0 for the first): the provider's
    retry-after when it gave one, else exponential backoff with jitter."""
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, (int, float)):
        return min(float(retry_after), MAX_RETRY_AFTER)
    backoff = min(MAX_DELAY, INITIAL_DELAY * 2.0**retry_number)
    return backoff * (1 - JITTER * rng.random())
