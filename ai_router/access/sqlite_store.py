"""The embedded store: one SQLite file in WAL mode shared by every process on the machine.

Each reservation is one `BEGIN IMMEDIATE` transaction, which SQLite serialises across
processes: that is the atomic check-and-update. No server to run; it does not span machines
(use the redis store for replicas).

The file is opened on first use and checked at each use (access/sqlite_file.py): a deleted one
is refused, never made anew by this process.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ai_router.access.sqlite_file import SqliteFile
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


class SqliteStore(QuotaStore):
    def __init__(self, path: str, lease_seconds: float) -> None:
        self._lease_seconds = lease_seconds
        self._file = SqliteFile(path, _SCHEMA, retry_after=lease_seconds)

    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        now = self.now()
        period = limits.period_index(now)
        lease = self.new_lease()
        with self._file.transaction() as db:
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
        with self._file.transaction() as db:
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
        with self._file.transaction() as db:
            db.executemany(
                "UPDATE holds SET expires = ? WHERE id = ?",
                [(expires, reservation.lease) for reservation in reservations],
            )

    def spend(self, limits: Limits) -> Spend:
        now = self.now()
        period = limits.period_index(now)
        with self._file.transaction() as db:
            self._sweep(db, limits.key, period, now)
            spent, reserved = self._spend(db, limits.key, period)
        start = period * limits.period
        return Spend(spent, reserved, start, start + limits.period)

    def check(self) -> None:
        self.renew(())

    def close(self) -> None:
        self._file.close()

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
