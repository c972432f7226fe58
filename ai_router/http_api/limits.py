"""A bound on the generation requests one worker process serves at once.

Beyond it a request is refused at once with 503 and Retry-After, which a client or a load
balancer can act on, instead of waiting in a queue that only grows while the worker is saturated.
A stream counts until its last byte is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ai_router.errors import Overloaded

RETRY_AFTER_SECONDS = 1.0


class ConcurrencyLimit:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._active = 0
        self._lock = threading.Lock()

    @property
    def active(self) -> int:
        return self._active

    def acquire(self) -> Callable[[], None]:
        """Admit one request, or raise Overloaded; returns its release (idempotent)."""
        with self._lock:
            if self._active >= self._limit:
                raise Overloaded(
                    f"this router process is serving its limit of {self._limit} requests; "
                    f"retry in {RETRY_AFTER_SECONDS:g}s",
                    retry_after=RETRY_AFTER_SECONDS,
                )
            self._active += 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if not released:
                    released = True
                    self._active -= 1

        return release
