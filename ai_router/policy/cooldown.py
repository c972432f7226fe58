"""Cooldowns: a target that keeps failing is rested, then probed before it takes traffic again.

closed --(`failures` failures within `window_seconds`)--> cooling --(`seconds` pass)--> half-open
half-open: the next attempt is the probe, and no other is admitted while it runs; its success
closes the target, its failure sends it back to cooling.

Only the targets the config names (`Settings.named_targets`) cool down: only an alias skips a
cooling target, and its targets are named; a client can name any number of others.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ai_router.config import CooldownSettings


@dataclass
class _State:
    failures: deque[float] = field(default_factory=deque)
    cooling_until: float | None = None
    probing: bool = False


class Cooldowns:
    def __init__(
        self,
        settings: CooldownSettings,
        keys: Iterable[str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`keys`: the targets that may cool down; the failures of any other are not kept."""
        self._settings = settings
        self._keys = frozenset(keys)
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def keeps(self, key: str) -> bool:
        """Whether `key` is one of the targets that may cool down."""
        return key in self._keys

    def admits(self, key: str) -> bool:
        """Whether an attempt on `key` may start now."""
        with self._lock:
            state = self._states.get(key)
            if state is None or state.cooling_until is None:
                return True
            return self._clock() >= state.cooling_until and not state.probing

    def cooling(self, key: str) -> bool:
        """Whether `key` is resting or awaiting its probe."""
        with self._lock:
            state = self._states.get(key)
            return state is not None and state.cooling_until is not None

    def seconds_left(self, key: str) -> float:
        with self._lock:
            state = self._states.get(key)
            if state is None or state.cooling_until is None:
                return 0.0
            return max(0.0, state.cooling_until - self._clock())

    def begin(self, key: str) -> None:
        """An attempt starts; in half-open state it is the probe."""
        with self._lock:
            state = self._states.get(key)
            if state is not None and state.cooling_until is not None:
                state.probing = True

    def ended(self, key: str) -> None:
        """An attempt ended without a verdict on the target (the request itself was at fault):
        if it was the probe, the next attempt may probe instead."""
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                state.probing = False

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._states.pop(key, None)

    def failed(self, key: str) -> None:
        if key not in self._keys:
            return
        now = self._clock()
        with self._lock:
            state = self._states.setdefault(key, _State())
            if state.cooling_until is not None:
                if state.probing:  # the probe failed: rest again
                    state.probing = False
                    state.cooling_until = now + self._settings.seconds
                return
            state.failures.append(now)
            while state.failures and state.failures[0] < now - self._settings.window_seconds:
                state.failures.popleft()
            if len(state.failures) >= self._settings.failures:
                state.failures.clear()
                state.cooling_until = now + self._settings.seconds
