"""The embedded store: one SQLite file in WAL mode shared by every process on the machine.

Each reservation is one `BEGIN IMMEDIATE` transaction, which SQLite serialises across
processes: that is the atomic check-and-update. No server to run; it does not span machines
(use the redis store for replicas).

The file is opened on first use, and each use checks that it is still the file that was opened:
one deleted or replaced under a running router would otherwise take its writes while every
process that opens the path anew starts from nothing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from urllib.parse import quote

from ai_router.access.store import (
    CONCURRENCY_RETRY_SECONDS,
    Limits,
    QuotaStore,
    Reservation,
    Spend,
    limit_reached,
    refill,
    wait_for,
)
from ai_router.errors import StateUnavailable

log = logging.getLogger(__name__)

# `holds` replaced the hour-long `leases` of earlier versions, which is left unused.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT NOT NULL, kind TEXT NOT NULL, level REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (key, kind));
CREATE TABLE IF NOT EXISTS spend (
    key TEXT NOT NULL, period INTEGER NOT NULL, spent REAL NOT NULL, reserved REAL NOT NULL,
    PRIMARY KEY (key, period));
CREATE TABLE IF NOT EXISTS holds (
    id TEXT PRIMARY KEY, key TEXT NOT NULL, expires REAL NOT NULL, period INTEGER NOT NULL,
    cost REAL NOT NULL);
CREATE INDEX IF NOT EXISTS holds_by_key ON holds (key, expires);
"""
# Transactions take microseconds; a lock held this long means another process is stuck.
BUSY_TIMEOUT_SECONDS = 5.0
# The files this process has opened: one of them missing later was deleted, and is not made
# anew (empty) by a reload; a restart makes it anew.
_OPENED: set[str] = set()


class SqliteStore(QuotaStore):
    def __init__(self, path: str, lease_seconds: float) -> None:
        self._path = path
        self._absolute_path = os.path.abspath(path)  # as _OPENED names it
        self._lease_seconds = lease_seconds
        self._db: sqlite3.Connection | None = None
        self._closed = False
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file opened
        self._lock = threading.Lock()  # one connection, shared by this process's threads

    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        now = self.now()
        period = limits.period_index(now)
        lease = self.new_lease()
        with self._transaction() as db:
            self._sweep(db, limits.key, period, now)
            rpm = self._bucket(db, limits.key, "rpm", limits.rpm, now)
            tpm = self._bucket(db, limits.key, "tpm", limits.tpm, now)
            needed_tokens = min(tokens, limits.tpm)
            if limits.rpm and rpm < 1:
                raise limit_reached(limits, "rpm", wait_for(1, rpm, limits.rpm))
            if limits.tpm and tpm < needed_tokens:
                raise limit_reached(limits, "tpm", wait_for(needed_tokens, tpm, limits.tpm))
            if limits.max_concurrent:
                (active,) = db.execute(
                    "SELECT COUNT(*) FROM holds WHERE key = ?", (limits.key,)
                ).fetchone()
                if active >= limits.max_concurrent:
                    raise limit_reached(limits, "max_concurrent", CONCURRENCY_RETRY_SECONDS)
            spent, reserved = self._spend(db, limits.key, period)
            if limits.budget and spent + reserved + cost > limits.budget:
                end = (period + 1) * limits.period
                raise limit_reached(limits, "budget", max(1.0, end - now))
            self._set_bucket(db, limits.key, "rpm", rpm - 1, now)
            self._set_bucket(db, limits.key, "tpm", tpm - tokens, now)
            db.execute(
                "INSERT INTO holds VALUES (?, ?, ?, ?, ?)",
                (lease, limits.key, now + self._lease_seconds, period, cost),
            )
            db.execute(
                "INSERT INTO spend VALUES (?, ?, 0, ?) ON CONFLICT (key, period) "
                "DO UPDATE SET reserved = reserved + excluded.reserved",
                (limits.key, period, cost),
            )
        return Reservation(limits, tokens, cost, period, lease)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        limits, now = reservation.limits, self.now()
        with self._transaction() as db:
            tpm = self._bucket(db, limits.key, "tpm", limits.tpm, now)
            self._set_bucket(db, limits.key, "tpm", tpm + reservation.tokens - tokens, now)
            # A hold swept as its process's (a heartbeat stalled past the lease) gave back its
            # reserved spend already.
            held = db.execute("DELETE FROM holds WHERE id = ?", (reservation.lease,)).rowcount
            db.execute(
                "UPDATE spend SET reserved = max(0, reserved - ?), spent = spent + ? "
                "WHERE key = ? AND period = ?",
                (reservation.cost if held else 0.0, cost, limits.key, reservation.period),
            )

    def renew(self, reservations: Sequence[Reservation]) -> None:
        expires = self.now() + self._lease_seconds
        with self._transaction() as db:
            db.executemany(
                "UPDATE holds SET expires = ? WHERE id = ?",
                [(expires, reservation.lease) for reservation in reservations],
            )

    def spend(self, limits: Limits) -> Spend:
        now = self.now()
        period = limits.period_index(now)
        with self._transaction() as db:
            self._sweep(db, limits.key, period, now)
            spent, reserved = self._spend(db, limits.key, period)
        start = period * limits.period
        return Spend(spent, reserved, start, start + limits.period)

    def check(self) -> None:
        self.renew(())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None

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
        if self._closed:  # a reload replaced its router: a late heartbeat must not reopen it
            raise StateUnavailable("this store was closed")
        identity = self._file_identity()
        if self._db is not None and identity == self._identity:
            return self._db
        path = self._absolute_path
        if self._db is not None or path in _OPENED:
            if identity is None:
                raise StateUnavailable(
                    f"the SQLite file {self._path} was deleted while the router was running: "
                    "restore it (limits and budgets are in it) or restart the router to start "
                    "from empty",
                    retry_after=self._lease_seconds,
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

    def _sweep(self, db: sqlite3.Connection, key: str, period: int, now: float) -> None:
        """End the holds of `key` whose process stopped renewing them."""
        (released,) = db.execute(
            "SELECT coalesce(sum(cost), 0) FROM holds WHERE key = ? AND expires < ? AND period = ?",
            (key, now, period),
        ).fetchone()
        db.execute("DELETE FROM holds WHERE key = ? AND expires < ?", (key, now))
        if released:
            db.execute(
                "UPDATE spend SET reserved = max(0, reserved - ?) WHERE key = ? AND period = ?",
                (released, key, period),
            )

    @staticmethod
    def _bucket(db: sqlite3.Connection, key: str, kind: str, capacity: int, now: float) -> float:
        row = db.execute(
            "SELECT level, updated FROM buckets WHERE key = ? AND kind = ?", (key, kind)
        ).fetchone()
        if not capacity:
            return 0.0
        return float(capacity) if row is None else refill(row[0], row[1], capacity, now)

    @staticmethod
    def _set_bucket(db: sqlite3.Connection, key: str, kind: str, level: float, now: float) -> None:
        db.execute(
            "INSERT INTO buckets VALUES (?, ?, ?, ?) ON CONFLICT (key, kind) "
            "DO UPDATE SET level = excluded.level, updated = excluded.updated",
            (key, kind, level, now),
        )

    @staticmethod
    def _spend(db: sqlite3.Connection, key: str, period: int) -> tuple[float, float]:
        row = db.execute(
            "SELECT spent, reserved FROM spend WHERE key = ? AND period = ?", (key, period)
        ).fetchone()
        return (0.0, 0.0) if row is None else (row[0], row[1])
