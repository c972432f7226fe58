"""Per-target statistics of this process: requests in flight, and a moving average of latency
(time to the first token of a stream, or to a whole answer).

Kept for the targets the config names only (`Settings.named_targets`): those are the ones a
strategy orders, and a client can name any number of others."""

from __future__ import annotations

import threading
from collections.abc import Iterable

LATENCY_WEIGHT = 0.3  # weight of the newest observation in the moving average


class TargetStats:
    def __init__(self, keys: Iterable[str]) -> None:
        """`keys`: the targets to keep statistics for; any other is served but not counted."""
        self._in_flight: dict[str, int] = dict.fromkeys(keys, 0)
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()

    def in_flight(self, key: str) -> int:
        return self._in_flight.get(key, 0)

    def latency(self, key: str) -> float | None:
        return self._latency.get(key)

    def lease(self, key: str) -> Lease:
        if key in self._in_flight:
            with self._lock:
                self._in_flight[key] += 1
        return Lease(self, key)

    def observe_latency(self, key: str, seconds: float) -> None:
        if key not in self._in_flight:
            return
        with self._lock:
            previous = self._latency.get(key)
            self._latency[key] = (
                seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)
            )

    def _release(self, key: str) -> None:
        if key in self._in_flight:
            with self._lock:
                self._in_flight[key] -= 1


class Lease:
    """One request in flight on a target, until released (once). A stream keeps its lease
    until it is closed."""

    def __init__(self, stats: TargetStats, key: str) -> None:
        self._stats = stats
        self._key = key
        self._released = False
        self.kept = False

    def keep(self) -> None:
        """The caller takes over releasing (a stream, when it closes)."""
        self.kept = True

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._stats._release(self._key)
