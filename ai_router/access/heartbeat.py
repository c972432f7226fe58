"""Renews the leases of this process's live reservations, and so tells whether the store answers.

One thread (a greenlet in a gevent worker) per open store renews every live reservation at a
third of the lease, in one call: a process that dies stops renewing, and what its requests held
comes back within one lease. The last renewal's failure is the store's problem that /readyz
reports.
"""

from __future__ import annotations

import logging
import threading

from ai_router.access.store import QuotaStore, Reservation
from ai_router.errors import StateUnavailable

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, store: QuotaStore, lease_seconds: float) -> None:
        self._store = store
        self._interval = lease_seconds / 3
        self._live: dict[str, Reservation] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.problem: str | None = None  # why the store failed its last renewal
        self._thread = threading.Thread(target=self._run, name="ai-router-leases", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def hold(self, reservation: Reservation) -> None:
        with self._lock:
            self._live[reservation.lease] = reservation

    def release(self, reservation: Reservation) -> None:
        with self._lock:
            self._live.pop(reservation.lease, None)

    def beat(self) -> None:
        with self._lock:
            live = list(self._live.values())
        try:
            self._store.renew(live)
        except StateUnavailable as error:
            if self._stopped.is_set():  # its router was closed meanwhile, and the store with it
                return
            if self.problem is None:
                log.error("%s", error)
            self.problem = str(error)
            return
        if self.problem is not None:
            log.info("the state store answers again")
        self.problem = None

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            self.beat()
