"""Stored responses in the Redis of the limits and budgets, shared by every replica: one key per
response, its value the JSON of it, set to expire after the retention (Redis removes it).

Keys are `ai-router-response:<length of the owner>:<owner>:<id>`: the owner's length keeps
owners with a colon in their name apart, and the prefix is outside the quota store's
`ai-router:` keys.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from ai_router.access.redis_client import state_redis
from ai_router.errors import StateUnavailable
from ai_router.response_store.store import ResponseStore, StoredResponse, decoded

PREFIX = "ai-router-response:"


class RedisResponses(ResponseStore):
    def __init__(
        self, url: str, timeout_seconds: float, retention_seconds: float, max_bytes: int
    ) -> None:
        super().__init__(max_bytes)
        # SET and GET resent (after a failed connection) are the same; a DEL that ran before its
        # connection failed would be reported as not found.
        self._redis, self._where = state_redis(url, timeout_seconds)
        self._timeout = timeout_seconds
        self._retention_ms = max(1, round(retention_seconds * 1000))

    def put(self, stored: StoredResponse) -> None:
        body = self.encoded(stored)
        self._run(self._redis.set, self._key(stored.id, stored.owner), body, px=self._retention_ms)

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        body = self._run(self._redis.get, self._key(response_id, owner))
        return None if body is None else decoded(body, response_id, owner)

    def delete(self, response_id: str, owner: str) -> bool:
        return bool(self._run(self._redis.delete, self._key(response_id, owner)))

    def check(self) -> None:
        self._run(self._redis.set, f"{PREFIX}check", repr(time.time()), px=60_000)

    def close(self) -> None:
        self._redis.close()

    def _run(self, command: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except redis.TimeoutError:
            raise StateUnavailable(
                f"{self._where} did not answer within {self._timeout:g}s"
            ) from None
        except redis.RedisError as error:
            raise StateUnavailable(f"{self._where}: {error}") from None

    @staticmethod
    def _key(response_id: str, owner: str) -> str:
        return f"{PREFIX}{len(owner)}:{owner}:{response_id}"
