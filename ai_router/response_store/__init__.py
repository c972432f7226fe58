"""The Responses API's stored responses: with `store` (the default), a response is kept so that a
later request continues it (`previous_response_id`) and so that it can be retrieved and deleted.

Each one is kept in the state store (`state:`: the SQLite file, or Redis across replicas) for
`responses.retention_seconds`, under the name of the router key that made it, and is visible to
that key only ("" when the router has no keys, visible only to ""). It holds the whole
conversation up to it (`context`), so that continuing one is a single read; its encoded size is
capped (`responses.max_stored_bytes`).

A store that cannot be used raises StateUnavailable (503). With `state.when_unavailable:
fail_open`, a response that cannot be stored is served unstored (a warning), as keyed requests
are served uncounted; reading one (continuing, retrieving, deleting) still raises, since there
is nothing to answer with.
"""

from __future__ import annotations

import logging

from ai_router.access.settings import StateSettings
from ai_router.config import ResponsesSettings
from ai_router.errors import StateUnavailable
from ai_router.response_store.store import ResponseStore, StoredResponse

__all__ = ["ResponseStore", "StoredResponse", "open_response_store"]

log = logging.getLogger(__name__)


class _FailOpen(ResponseStore):
    """`state.when_unavailable: fail_open`: a response the store cannot take is served unstored."""

    def __init__(self, store: ResponseStore) -> None:
        super().__init__(store.max_bytes)
        self._store = store

    def put(self, stored: StoredResponse) -> None:
        try:
            self._store.put(stored)
        except StateUnavailable as error:
            log.warning(
                "response %s of key %r not stored (state.when_unavailable: fail_open): %s",
                stored.id, stored.owner, error,
            )

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        return self._store.get(response_id, owner)

    def delete(self, response_id: str, owner: str) -> bool:
        return self._store.delete(response_id, owner)

    def check(self) -> None:
        self._store.check()

    def close(self) -> None:
        self._store.close()


def open_response_store(state: StateSettings, settings: ResponsesSettings) -> ResponseStore:
    """The store of `state`'s backend; it connects on first use."""
    store: ResponseStore
    if state.backend == "redis":
        from ai_router.response_store.redis_responses import RedisResponses

        store = RedisResponses(
            state.url, state.timeout_seconds, settings.retention_seconds, settings.max_stored_bytes
        )
    else:
        from ai_router.response_store.sqlite_responses import SqliteResponses

        store = SqliteResponses(state.path, settings.retention_seconds, settings.max_stored_bytes)
    return _FailOpen(store) if state.when_unavailable == "fail_open" else store
