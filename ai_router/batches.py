"""The one thread of a process that writes out what requests leave to be written in batches
(their reports, observe.py, which make their metrics, metrics.py, and their log lines, logs.py),
every BATCH_SECONDS and at the process's exit.

A request only appends what it reports to a queue; the writing is done for many requests at
once, off the request (docs/PERFORMANCE.md). The thread (a greenlet under gevent) starts with
the first batch, so after gunicorn forks, under gevent's patching; a forked child starts its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

BATCH_SECONDS = 0.1
# The batch thread writes a queue's items this many at a time, then lets the requests that
# became ready meanwhile run: a whole batch written at once held a busy worker's requests.
SLICE_ITEMS = 16

Item = TypeVar("Item")


Pause = Callable[[], None]


def no_pause() -> None:
    pass


class Batched(Protocol):
    def flush(self, pause: Pause = no_pause) -> None:
        """Write out what is pending; `pause` may be called between parts of it."""

    def forked(self) -> None:
        """In a forked child: drop what is pending, which is the parent's to write."""


class Queue(Generic[Item]):
    """Items waiting for the process's next batch, which hands them to `write` together. A
    deque: appends and pops are atomic, so no item is lost or written twice when two threads
    write at once. Beyond `limit` waiting items the one that adds an item writes them all, so
    that a batch thread starved of time never holds more than that in memory."""

    def __init__(
        self, write: Callable[[list[Item]], None], limit: int, slice_items: int = SLICE_ITEMS
    ) -> None:
        """`slice_items`: how many items `write` takes at a time; more for cheaper items."""
        self._write = write
        self._limit = limit
        self._slice = slice_items
        self._pending: deque[Item] = deque()

    def add(self, item: Item) -> None:
        self._pending.append(item)
        if len(self._pending) >= self._limit:
            self.flush()
        else:
            started()

    def flush(self, pause: Pause = no_pause) -> None:
        """Write what is waiting now, a slice at a time, calling `pause` in between. What
        comes meanwhile waits for the next pass, so that a pass ends under any load."""
        pending = self._pending
        left = len(pending)
        while left > 0:
            size = min(left, self._slice)
            items: list[Item] = []
            while pending and len(items) < size:
                items.append(pending.popleft())
            if not items:
                return  # another thread wrote them
            left -= len(items)
            self._write(items)
            if left > 0:
                pause()

    def forked(self) -> None:
        self._pending.clear()  # the parent's to write


class _Writer:
    def __init__(self) -> None:
        # Two sets, written in turn: the first holds what feeds the others (a request's report
        # makes its log line and metrics), so that one pass writes both.
        self._feeding: weakref.WeakSet[Batched] = weakref.WeakSet()
        self._fed: weakref.WeakSet[Batched] = weakref.WeakSet()
        self._lock = threading.Lock()
        # One pass at a time: a pass that finds the queues empty while another is still writing
        # what it took (a scrape, the exit) would otherwise return before that is written. Under
        # gevent the lock is gevent's: a scrape waiting for the batch thread's pass, which pauses
        # between slices, waits as a greenlet and blocks no other.
        self._writing = threading.Lock()
        self._started = False

    def watch(self, batched: Batched, feeds_others: bool) -> None:
        with self._lock:
            (self._feeding if feeds_others else self._fed).add(batched)

    def start(self) -> None:
        if self._started:
            return
        with self._lock:
            starting = not self._started
            self._started = True
        if starting:  # outside the lock: under gevent, starting a thread switches greenlets
            threading.Thread(target=self._run, name="batches", daemon=True).start()

    def flush_all(self, pause: Pause = no_pause) -> None:
        with self._lock:
            every = [*self._feeding, *self._fed]
        with self._writing:
            for batched in every:
                try:
                    batched.flush(pause)
                except Exception:  # a metrics file gone, stderr closed: logged, the others written
                    log.exception("writing a batch failed")

    def forked(self) -> None:
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._started = False
        for batched in [*self._feeding, *self._fed]:
            batched.forked()

    def _run(self) -> None:
        while True:
            time.sleep(BATCH_SECONDS)
            # sleep(0) lets the other threads run, or under gevent the other greenlets.
            self.flush_all(pause=lambda: time.sleep(0))


_writer = _Writer()
os.register_at_fork(after_in_child=_writer.forked)
atexit.register(_writer.flush_all)


def watch(batched: Batched, feeds_others: bool = False) -> None:
    """Have `batched` written out with every batch of this process (held weakly); before the
    others when writing it adds to them."""
    _writer.watch(batched, feeds_others)


def started() -> None:
    """Something is pending: make sure the thread that writes it runs. Cheap once it does."""
    _writer.start()


def flush_all() -> None:
    """Write everything pending in this process now: at its exit, or for a test that reads
    what a batch writes."""
    _writer.flush_all()
