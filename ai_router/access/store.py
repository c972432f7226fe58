"""The counters behind a key's limits, and the one rule they follow: reserve, then settle.

Before a call, `reserve` checks every limit of the key and takes what the request may use (one
request from the rpm bucket, its token estimate from the tpm bucket, a concurrency slot, its cost
estimate from the budget), all in one atomic step, or takes nothing and raises LimitReached.
After the call, `settle` gives back what the reservation took beyond the real usage (or takes
the excess), frees the slot and books the real cost. On failure the request settles with zero
usage. Since a check and its update are one step, concurrent requests can overshoot a limit by
at most what one reservation underestimated.

rpm and tpm are token buckets: capacity = the limit, refilled continuously at limit/60 a second.
A budget counts per period: fixed windows of `budget_period` from the Unix epoch.

What a reservation holds (its concurrency slot and its reserved spend) is a lease of
`state.lease_seconds`, renewed while its request lives (`renew`, from access/heartbeat.py). The
lease of a process that died is not renewed; the next reservation of its key sweeps it, and its
slot and spend come back. A store that cannot be used raises StateUnavailable.
"""

from __future__ import annotations

import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from ai_router.access.settings import KeySettings
from ai_router.errors import LimitReached

# A slot is freed when a request ends, which nothing predicts: ask again shortly.
CONCURRENCY_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Limits:
    key: str
    rpm: int = 0  # 0: no limit
    tpm: int = 0
    max_concurrent: int = 0
    budget: float = 0.0
    period: int = 0  # seconds

    @classmethod
    def of(cls, key: KeySettings) -> Limits:
        return cls(
            key.name,
            key.rpm or 0,
            key.tpm or 0,
            key.max_concurrent or 0,
            key.budget_usd or 0.0,
            key.period_seconds,
        )

    def period_index(self, now: float) -> int:
        return int(now // self.period) if self.period else 0


@dataclass(frozen=True, slots=True)
class Reservation:
    limits: Limits
    tokens: int
    cost: float
    period: int
    lease: str


@dataclass(frozen=True, slots=True)
class Spend:
    spent: float
    reserved: float
    period_start: float
    period_end: float


class QuotaStore(ABC):
    @abstractmethod
    def reserve(self, limits: Limits, tokens: int, cost: float) -> Reservation:
        """Take the request's share of every limit at once, or raise LimitReached."""

    @abstractmethod
    def settle(self, reservation: Reservation, tokens: int, cost: float) -> None:
        """Replace the reservation by the real usage, and free its concurrency slot."""

    @abstractmethod
    def renew(self, reservations: Sequence[Reservation]) -> None:
        """Extend the leases of these live reservations (none: only show that the store
        answers)."""

    @abstractmethod
    def spend(self, limits: Limits) -> Spend:
        """The key's spend in the current budget period."""

    @abstractmethod
    def check(self) -> None:
        """Write to the store once, or raise StateUnavailable saying what to fix."""

    def close(self) -> None:
        """Release connections."""

    @staticmethod
    def new_lease() -> str:
        return uuid.uuid4().hex

    @staticmethod
    def now() -> float:
        return time.time()


def refill(level: float, updated: float, capacity: int, now: float) -> float:
    return min(float(capacity), level + max(0.0, now - updated) * capacity / 60.0)


def wait_for(needed: float, level: float, capacity: int) -> float:
    """Seconds until a bucket refilling at capacity/60 a second holds `needed`."""
    return max(0.0, needed - level) * 60.0 / capacity


def limit_reached(limits: Limits, which: str, retry_after: float) -> LimitReached:
    names = {
        "rpm": f"{limits.rpm} requests per minute",
        "tpm": f"{limits.tpm} tokens per minute",
        "max_concurrent": f"{limits.max_concurrent} requests at once",
        "budget": f"a budget of ${limits.budget:g}",
    }
    return LimitReached(
        f"key {limits.key!r} has reached its limit of {names[which]}; retry in "
        f"{retry_after:.1f}s",
        retry_after=max(0.1, retry_after),
    )
