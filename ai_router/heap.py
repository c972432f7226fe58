"""The objects a process makes while it starts, frozen out of Python's garbage collection.

A server's modules, the SDKs' classes and schemas, and its router live as long as the process.
Python's cyclic collector would walk every one of them on each full collection, and the process
serves nothing until it is done; under concurrent load full collections keep coming, because
requests in flight at a collection are counted as long-lived (docs/PERFORMANCE.md has the
pauses measured). `gc.freeze` leaves the frozen objects out of every collection; reference
counting still frees them as usual.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Call once the process is ready to serve, before it serves."""
    gc.collect()  # the garbage of starting up goes first, not into the frozen set
    gc.freeze()


def thaw() -> None:
    """Call when a reload replaces the router: a frozen object is never collected as garbage,
    so the old router (and what refers to it in a cycle) would never be freed. The process then
    collects as an unfrozen one does."""
    gc.unfreeze()
