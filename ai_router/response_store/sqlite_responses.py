"""Stored responses in the SQLite file of the limits and budgets (`state.path`, WAL): a table of
their own, a connection of their own, opened on first use.

A row expires `retention` after it was put; reads never return an expired one, and each write
first removes at most SWEEP_BATCH expired rows (oldest first), so that no request pays for an
unbounded delete while expired rows still go at least as fast as new ones come.

The file is used as the quota store uses it (access/sqlite_file.py): a deleted one is refused,
never made anew by this process.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from ai_router.access.sqlite_file import SqliteFile
from ai_router.response_store.store import ResponseStore, StoredResponse, decoded

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    owner TEXT NOT NULL, id TEXT NOT NULL, expires REAL NOT NULL, body BLOB NOT NULL,
    PRIMARY KEY (owner, id));
CREATE INDEX IF NOT EXISTS responses_by_expiry ON responses (expires);
"""
# Expired rows removed by one write at most.
SWEEP_BATCH = 32


class SqliteResponses(ResponseStore):
    def __init__(
        self,
        path: str,
        retention_seconds: float,
        max_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`clock` says when rows expire (a test's can be moved)."""
        super().__init__(max_bytes)
        self._retention = retention_seconds
        self._clock = clock
        self._file = SqliteFile(path, _SCHEMA)

    def put(self, stored: StoredResponse) -> None:
        body = self.encoded(stored)
        now = self._clock()
        with self._file.transaction() as db:
            self._sweep(db, now)
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (stored.owner, stored.id, now + self._retention, body),
            )

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        with self._file.connected() as db:
            row = db.execute(
                "SELECT body FROM responses WHERE owner = ? AND id = ? AND expires > ?",
                (owner, response_id, self._clock()),
            ).fetchone()
        return None if row is None else decoded(row[0], response_id, owner)

    def delete(self, response_id: str, owner: str) -> bool:
        now = self._clock()
        with self._file.transaction() as db:
            deleted = db.execute(
                "DELETE FROM responses WHERE owner = ? AND id = ? AND expires > ?",
                (owner, response_id, now),
            ).rowcount
            self._sweep(db, now)
        return deleted > 0

    def check(self) -> None:
        with self._file.transaction() as db:
            self._sweep(db, self._clock())

    def close(self) -> None:
        self._file.close()

    @staticmethod
    def _sweep(db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "DELETE FROM responses WHERE rowid IN "
            "(SELECT rowid FROM responses WHERE expires <= ? ORDER BY expires LIMIT ?)",
            (now, SWEEP_BATCH),
        )
