"""Stored responses in the SQLite file of the limits and budgets (`state.path`, WAL): a table of
their own, a connection of their own, opened on first use.

A row expires `retention` after it was put; reads never return an expired one, and each write
first removes at most SWEEP_BATCH expired rows (oldest first), so that no request pays for an
unbounded delete while expired rows still go at least as fast as new ones come.

As the quota store does (access/sqlite_store.py), each use checks that the file is still the one
opened, and a file this process opened once is never made anew (empty) when it was deleted.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote

# The files this process has opened, shared with the quota store: a file either store opened
# and that is now missing was deleted, and neither makes it anew.
from ai_router.access.sqlite_store import _OPENED, BUSY_TIMEOUT_SECONDS
from ai_router.errors import StateUnavailable
from ai_router.response_store.store import ResponseStore, StoredResponse, decoded

log = logging.getLogger(__name__)

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
        self._path = path
        self._absolute_path = os.path.abspath(path)  # as _OPENED names it
        self._retention = retention_seconds
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._lock = threading.Lock()  # one connection, shared by this process's threads

    def put(self, stored: StoredResponse) -> None:
        body = self.encoded(stored)
        now = self._clock()
        with self._transaction() as db:
            self._sweep(db, now)
            db.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)",
                (stored.owner, stored.id, now + self._retention, body),
            )

    def get(self, response_id: str, owner: str) -> StoredResponse | None:
        with self._connected() as db:
            row = db.execute(
                "SELECT body FROM responses WHERE owner = ? AND id = ? AND expires > ?",
                (owner, response_id, self._clock()),
            ).fetchone()
        return None if row is None else decoded(row[0], response_id, owner)

    def delete(self, response_id: str, owner: str) -> bool:
        now = self._clock()
        with self._transaction() as db:
            deleted = db.execute(
                "DELETE FROM responses WHERE owner = ? AND id = ? AND expires > ?",
                (owner, response_id, now),
            ).rowcount
            self._sweep(db, now)
        return deleted > 0

    def check(self) -> None:
        with self._transaction() as db:
            self._sweep(db, self._clock())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    @staticmethod
    def _sweep(db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "DELETE FROM responses WHERE rowid IN "
            "(SELECT rowid FROM responses WHERE expires <= ? ORDER BY expires LIMIT ?)",
            (now, SWEEP_BATCH),
        )

    @contextmanager
    def _connected(self) -> Iterator[sqlite3.Connection]:
        """The connection, for one statement outside a transaction, under the lock."""
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as error:
                raise self._unavailable(error) from None

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                db = self._connection()
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as error:
                raise self._unavailable(error) from None
            try:
                yield db
            except BaseException as error:
                with suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise self._unavailable(error) from None
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as error:
                raise self._unavailable(error) from None

    def _connection(self) -> sqlite3.Connection:
        """The open connection, (re)opened when the file at the path is not the one it has."""
        if self._closed:  # its router was closed: a late request must not reopen it
            raise StateUnavailable("this store of responses was closed")
        identity = self._file_identity()
        if self._db is not None and identity == self._identity:
            return self._db
        path = self._absolute_path
        if self._db is not None or path in _OPENED:
            if identity is None:
                raise StateUnavailable(
                    f"the SQLite file {self._path} was deleted while the router was running: "
                    "restore it (stored responses, limits and budgets are in it) or restart the "
                    "router to start from empty"
                )
            if self._db is not None:
                log.warning("the SQLite file %s was replaced; opening the new one", self._path)
                self._db.close()
                self._db = None
        mode = "rw" if path in _OPENED else "rwc"
        db = sqlite3.connect(
            f"file:{quote(path)}?mode={mode}" if self._path != ":memory:" else self._path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
            uri=True,
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except BaseException:
            db.close()
            raise
        self._db, self._identity = db, self._file_identity()
        _OPENED.add(path)
        return db

    def _file_identity(self) -> tuple[int, int] | None:
        if self._path == ":memory:":
            return (0, 0)
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def _unavailable(self, error: sqlite3.Error) -> StateUnavailable:
        directory = os.path.dirname(self._absolute_path)
        return StateUnavailable(
            f"SQLite file {self._path}: {error} (the directory {directory} must be writable by "
            "the router's user; STATE_PATH or state.path moves the file)"
        )
