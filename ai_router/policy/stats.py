"""Per-target statistics of this process: requests in flight, and a moving average of latency
(time to the first token of a stream, or to a whole answer)."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_WEIGHT = 0.3  # weight of the newest observation in the moving average


class TargetStats:
    def __init__(self) -> None:
        self._in_flight: defaultdict[str, int] = defaultdict(int)
        self._latency: dict[str, float] = {}
        self._lock = threading.Lock()

    def in_flight(self, key: str) -> int:
        return self._in_flight[key]

    def latency(self, key: str) -> float | None:
        return self._latency.get(key)

    def lease(self, key: str) -> Lease:
        with self._lock:
            self._in_flight[key] += 1
        return Lease(self, key)

    def observe_latency(self, key: str, seconds: float) -> None:
        with self._lock:
            previous = self._latency.get(key)
            self._latency[key] = (
                seconds if previous is None else previous + LATENCY_WEIGHT * (seconds - previous)
            )

    def _release(self, key: str) -> None:
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
