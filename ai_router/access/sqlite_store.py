"""The embedded store: one SQLite file in WAL mode shared by every process on the machine.

Each reservation is one `BEGIN IMMEDIATE` transaction, which SQLite serialises across
processes: that is the atomic check-and-update. No server to run; it does not span machines
(use the redis store for replicas).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ai_router.access.store import (
    CONCURRENCY_RETRY_SECONDS,
    LEASE_SECONDS,
    Limits,
    QuotaStore,
    Reservation,
    Spend,
    limit_reached,
    refill,
    wait_for,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    key TEXT NOT NULL, kind TEXT NOT NULL, level REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (key, kind));
CREATE TABLE IF NOT EXISTS spend (
    key TEXT NOT NULL, period INTEGER NOT NULL, spent REAL NOT NULL, reserved REAL NOT NULL,
    PRIMARY KEY (key, period));
CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, key TEXT NOT NULL, expires REAL NOT NULL);
"""
BUSY_TIMEOUT_SECONDS = 5.0


class SqliteStore(QuotaStore):
    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            for statement in filter(str.strip, _SCHEMA.split(";")):
                self._db.execute(statement)
        self._lock = threading.Lock()  # one connection, shared by this process's threads

    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        now = self.now()
        period = limits.period_index(now)
        lease = self.new_lease()
        with self._lock, self._transaction():
            rpm = self._bucket(limits.key, "rpm", limits.rpm, now)
            tpm = self._bucket(limits.key, "tpm", limits.tpm, now)
            needed_tokens = min(tokens, limits.tpm)
            if limits.rpm and rpm < 1:
                raise limit_reached(limits, "rpm", wait_for(1, rpm, limits.rpm))
            if limits.tpm and tpm < needed_tokens:
                raise limit_reached(limits, "tpm", wait_for(needed_tokens, tpm, limits.tpm))
            if limits.max_concurrent:
                self._db.execute("DELETE FROM leases WHERE expires < ?", (now,))
                (active,) = self._db.execute(
                    "SELECT COUNT(*) FROM leases WHERE key = ?", (limits.key,)
                ).fetchone()
                if active >= limits.max_concurrent:
                    raise limit_reached(limits, "max_concurrent", CONCURRENCY_RETRY_SECONDS)
            spent, reserved = self._spend(limits.key, period)
            if limits.budget and spent + reserved + cost > limits.budget:
                end = (period + 1) * limits.period
                raise limit_reached(limits, "budget", max(1.0, end - now))
            self._set_bucket(limits.key, "rpm", rpm - 1, now)
            self._set_bucket(limits.key, "tpm", tpm - tokens, now)
            self._db.execute(
                "INSERT INTO leases VALUES (?, ?, ?)", (lease, limits.key, now + LEASE_SECONDS)
            )
            self._db.execute(
                "INSERT INTO spend VALUES (?, ?, 0, ?) ON CONFLICT (key, period) "
                "DO UPDATE SET reserved = reserved + excluded.reserved",
                (limits.key, period, cost),
            )
        return Reservation(limits, tokens, cost, period, lease)

    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        limits, now = reservation.limits, self.now()
        with self._lock, self._transaction():
            tpm = self._bucket(limits.key, "tpm", limits.tpm, now)
            self._set_bucket(limits.key, "tpm", tpm + reservation.tokens - tokens, now)
            self._db.execute("DELETE FROM leases WHERE id = ?", (reservation.lease,))
            self._db.execute(
                "UPDATE spend SET reserved = max(0, reserved - ?), spent = spent + ? "
                "WHERE key = ? AND period = ?",
                (reservation.cost, cost, limits.key, reservation.period),
            )

    def spend(self, limits: Limits) -> Spend:
        now = self.now()
        period = limits.period_index(now)
        with self._lock:
            spent, reserved = self._spend(limits.key, period)
        start = period * limits.period
        return Spend(spent, reserved, start, start + limits.period)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _bucket(self, key: str, kind: str, capacity: int, now: float) -> float:
        row = self._db.execute(
            "SELECT level, updated FROM buckets WHERE key = ? AND kind = ?", (key, kind)
        ).fetchone()
        if not capacity:
            return 0.0
        return float(capacity) if row is None else refill(row[0], row[1], capacity, now)

    def _set_bucket(self, key: str, kind: str, level: float, now: float) -> None:
        self._db.execute(
            "INSERT INTO buckets VALUES (?, ?, ?, ?) ON CONFLICT (key, kind) "
            "DO UPDATE SET level = excluded.level, updated = excluded.updated",
            (key, kind, level, now),
        )

    def _spend(self, key: str, period: int) -> tuple[float, float]:
        row = self._db.execute(
            "SELECT spent, reserved FROM spend WHERE key = ? AND period = ?", (key, period)
        ).fetchone()
        return (0.0, 0.0) if row is None else (row[0], row[1])

