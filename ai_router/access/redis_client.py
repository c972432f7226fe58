"""The Redis client both state stores use (limits and budgets, stored responses), made one way."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def state_redis(url: str, timeout_seconds: float) -> tuple[redis.Redis, str]:
    """A client that waits `timeout_seconds` for Redis, and how messages name that Redis.

    One resend, on a connection that failed (a pooled one Redis closed); never after a timeout,
    when the first may still run. Named by host and port, never by the URL, which may carry a
    password."""
    client: redis.Redis = redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
    )
    kwargs = client.connection_pool.connection_kwargs
    return client, f"Redis at {kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
