"""Deadlines on open upstream responses, and a way to cut one off from another thread.

A streamed answer has two limits that a socket timeout cannot express together: the first token
within the provider's `timeout`, then no gap longer than `stream_idle_timeout`. And a stream must
stop at once when its client goes away, while the thread (or greenlet) relaying it is blocked
reading the upstream. Both are done the same way: shut the upstream socket down, which wakes the
blocked reader with an error at once; the reader then asks its `Watch` why.

One `Watchdog` per router runs a single background thread (a greenlet under gevent, whose
monkey-patching makes `threading` cooperative) over a heap of deadlines, so an open stream costs
a heap entry, not a timer thread; the thread ends when the router is closed. A watch has at most
one entry: re-arming it for a later deadline (every chunk of a stream does) only moves its
deadline, and the watchdog, finding the entry early, puts it back for the new one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Literal, Protocol

log = logging.getLogger(__name__)

Reason = Literal["timeout", "cancelled"]


class Interruptible(Protocol):
    """An upstream response being read (providers/transport.py's UpstreamResponse)."""

    def shut_down(self) -> None:
        """Shut its socket down, from any thread: the reader gets an error or EOF at once."""


class Watch:
    """The watch on one upstream response."""

    def __init__(self, watchdog: Watchdog) -> None:
        self._watchdog = watchdog
        self._response: Interruptible | None = None
        self._deadline: float | None = None
        self._scheduled: float | None = None  # the deadline of its heap entry, if it has one
        self.reason: Reason | None = None  # why the response was cut off, if it was
        self.limit = 0.0  # the seconds of the deadline in force, for error messages

    def attach(self, response: Interruptible, seconds: float) -> None:
        """Watch `response` (being read): cut it off unless `rearm` comes
        within `seconds`. A watch cancelled before the response arrived cuts it off at once."""
        self._response = response
        if self.reason == "cancelled":
            response.shut_down()
            return
        self.rearm(seconds)

    def rearm(self, seconds: float) -> None:
        self.limit = seconds
        self._watchdog._arm(self, time.monotonic() + seconds)

    def pause(self) -> None:
        """Stop the clock while the reader is away (handing a chunk to a slow client)."""
        self._deadline = None

    def done(self) -> None:
        """The response is finished with: stop watching it."""
        self._deadline = None
        self._response = None

    def cancel(self) -> None:
        """Cut the response off now (the client went away). Safe from any thread, any time."""
        if self.reason is None:
            self.reason = "cancelled"
        response, self._response = self._response, None
        self._deadline = None
        if response is not None:
            response.shut_down()

    def _expire(self, deadline: float) -> None:
        if self._deadline != deadline or self._response is None:
            return  # re-armed or finished since this deadline was scheduled
        self.reason = "timeout"
        response, self._response = self._response, None
        response.shut_down()


class Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._counter = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self) -> Watch:
        return Watch(self)

    def _arm(self, watch: Watch, deadline: float) -> None:
        with self._condition:
            watch._deadline = deadline
            if watch._scheduled is not None and watch._scheduled <= deadline:
                return  # its entry comes up first, and is then put back for `deadline`
            watch._scheduled = deadline
            heapq.heappush(self._heap, (deadline, next(self._counter), watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="upstream-watchdog", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is watch:
                self._condition.notify()

    def close(self) -> None:
        """End the thread, leaving the watches it holds unwatched: call when their router's
        requests are all done (a reload replaced it, or the server stopped)."""
        with self._condition:
            self._closed = True
            self._heap.clear()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._heap and not self._closed:
                    self._condition.wait()
                if self._closed:
                    return
                deadline, _, watch = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                heapq.heappop(self._heap)
                if watch._scheduled != deadline:
                    continue  # an entry superseded by an earlier deadline
                current = watch._deadline
                if current is not None and current > deadline:
                    watch._scheduled = current  # re-armed since: wait for the new deadline
                    heapq.heappush(self._heap, (current, next(self._counter), watch))
                    continue
                watch._scheduled = None
                if current is None:
                    continue  # paused or done
            try:
                watch._expire(deadline)
            except Exception:  # a watchdog that dies would leave every later stream unbounded
                log.exception("watchdog: cutting off an upstream response failed")
