"""The process's batches (batches.py): a pass writes what waits in slices and lets the requests
that became ready meanwhile run between them, so that a busy worker's requests never wait for a
whole batch at once; and a pass ends under any load."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ai_router import batches
from ai_router.batches import SLICE_ITEMS


def test_a_pass_writes_what_waits_in_slices_and_pauses_between_them() -> None:
    written: list[list[int]] = []
    pauses: list[int] = []
    queue = batches.Queue(written.append, limit=10_000)
    for number in range(2 * SLICE_ITEMS + 3):
        queue._pending.append(number)  # as `add` would, without starting the batch thread
    queue.flush(pause=lambda: pauses.append(len(written)))
    assert [len(items) for items in written] == [SLICE_ITEMS, SLICE_ITEMS, 3]
    assert [number for items in written for number in items] == list(range(2 * SLICE_ITEMS + 3))
    assert pauses == [1, 2]  # between slices, not after the last


def test_what_arrives_during_a_pass_waits_for_the_next_pass() -> None:
    written: list[list[str]] = []
    queue = batches.Queue(written.append, limit=10_000)
    for number in range(SLICE_ITEMS + 1):
        queue._pending.append(f"old-{number}")
    queue.flush(pause=lambda: queue._pending.append("new"))
    assert [item for items in written for item in items] == [f"old-{n}" for n in range(SLICE_ITEMS + 1)]
    written.clear()
    queue.flush()
    assert written == [["new"]]


def test_under_gevent_a_request_ready_during_a_batch_runs_before_the_batch_ends() -> None:
    # In a process of its own: gevent's patching is for the whole process, as in a worker.
    script = textwrap.dedent(
        """
        from gevent import monkey
        monkey.patch_all()
        import gevent.event
        from ai_router import batches

        order = []
        answered = gevent.event.Event()  # a request's upstream answer arrives
        written_all = gevent.event.Event()
        total = 3 * batches.SLICE_ITEMS

        def write(items):
            order.append(len(items))
            answered.set()
            if sum(n for n in order if isinstance(n, int)) == total:
                written_all.set()

        def request():
            answered.wait()
            order.append("request")

        waiting = gevent.spawn(request)
        queue = batches.Queue(write, limit=10_000)
        batches.watch(queue)
        for number in range(total):
            queue.add(number)
        written_all.wait(timeout=10)
        waiting.join(timeout=10)
        print(order)
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert finished.stdout.strip() == str([SLICE_ITEMS, "request", SLICE_ITEMS, SLICE_ITEMS])
