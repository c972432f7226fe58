"""One connection to the state's SQLite file (`state.path`, WAL), shared by a process's threads.

The quota store and the store of responses each hold one, with their own tables. The file is
opened on first use, and each use checks that it is still the file that was opened: one
deleted or replaced under a running router would otherwise take its writes while every process
that opens the path anew starts from nothing. A file this process opened once and that is now
missing is refused, never made anew (empty); a restart makes it anew.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import quote

from ai_router.errors import StateUnavailable

log = logging.getLogger(__name__)

# Transactions take microseconds; a lock held this long means another process is stuck.
BUSY_TIMEOUT_SECONDS = 5.0
# The files this process has opened, by absolute path, whichever store opened them.
_OPENED: set[str] = set()


class SqliteFile:
    def __init__(self, path: str, schema: str, retry_after: float = 1.0) -> None:
        """`schema`: the statements that make the holder's tables if they are missing;
        `retry_after`: what a refusal for a deleted file tells clients."""
        self.path = path
        self._absolute_path = os.path.abspath(path)
        self._schema = schema
        self._retry_after = retry_after
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One `BEGIN IMMEDIATE` transaction, which SQLite serialises across processes;
        SQLite's errors raised as StateUnavailable."""
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

    @contextmanager
    def connected(self) -> Iterator[sqlite3.Connection]:
        """The connection, for one statement outside a transaction."""
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as error:
                raise self._unavailable(error) from None

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

    def _connection(self) -> sqlite3.Connection:
        """The open connection, (re)opened when the file at the path is not the one it has."""
        if self._closed:  # its router was closed: a late request or heartbeat must not reopen it
            raise StateUnavailable("this store was closed")
        identity = self._file_identity()
        if self._db is not None and identity == self._identity:
            return self._db
        path = self._absolute_path
        if self._db is not None or path in _OPENED:
            if identity is None:
                raise StateUnavailable(
                    f"the SQLite file {self.path} was deleted while the router was running: "
                    "restore it (limits, budgets and stored responses are in it) or restart the "
                    "router to start from empty",
                    retry_after=self._retry_after,
                )
            if self._db is not None:
                log.warning("the SQLite file %s was replaced; opening the new one", self.path)
                self._db.close()
                self._db = None
        mode = "rw" if path in _OPENED else "rwc"
        db = sqlite3.connect(
            f"file:{quote(path)}?mode={mode}" if self.path != ":memory:" else self.path,
            timeout=BUSY_TIMEOUT_SECONDS,
            isolation_level=None,
            check_same_thread=False,
            uri=True,
        )
        try:
            if self.path != ":memory:":  # a database in memory has no WAL
                _use_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(self._schema)
        except BaseException:
            db.close()
            raise
        self._db, self._identity = db, self._file_identity()
        _OPENED.add(path)
        return db

    def _file_identity(self) -> tuple[int, int] | None:
        if self.path == ":memory:":
            return (0, 0)
        try:
            status = os.stat(self.path)
        except FileNotFoundError:
            return None
        return status.st_dev, status.st_ino

    def _unavailable(self, error: sqlite3.Error) -> StateUnavailable:
        directory = os.path.dirname(self._absolute_path)
        return StateUnavailable(
            f"SQLite file {self.path}: {error} (the directory {directory} must be writable by "
            "the router's user; STATE_PATH or state.path moves the file)"
        )


def _use_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode, which is the file's own: done once, by the first process. The
    switch needs the file to itself and SQLite does not wait for that (its busy handler is not
    run), so processes starting together on a new file (gunicorn's workers, the gRPC server)
    saw "database is locked". Tried again until BUSY_TIMEOUT_SECONDS; done when any process
    has switched it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    pause = 0.001
    while True:
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            busy = error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY  # or an extended code of it
            if not busy or time.monotonic() + pause > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
