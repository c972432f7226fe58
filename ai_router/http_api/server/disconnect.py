"""Noticing, while a stream is relayed, that its HTTP client has hung up.

A relaying greenlet spends its time blocked on the upstream, so it would only learn of a gone
client at its next write, which for a slow model may be many seconds of generation (and of the
provider's billing) later. So the event loop watches the client socket too: when it becomes
readable (a client awaiting a stream sends nothing more, so that means end-of-file, or a
pipelined request), a small greenlet peeks at it, and end-of-file cuts the upstream off at once.

A watcher on the loop, not a greenlet per stream waiting on the socket: a greenlet, with its own
Python frame stack, costs an open stream several KiB more (`make bench`: RSS per open stream).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from flask import request

_READ = 1  # libev's EV_READ


def watch_client(on_hang_up: Callable[[], None]) -> Callable[[], None]:
    """Call `on_hang_up` when the current request's client closes its connection; returns the
    function that stops watching. Only under gunicorn's gevent workers, which hand the client
    socket over in the WSGI environ (the plain one as gunicorn.socket, the gevent.pywsgi one
    the router runs, server/worker.py, as gunicorn.sock); elsewhere (a test client) it
    watches nothing."""
    client = request.environ.get("gunicorn.sock") or request.environ.get("gunicorn.socket")
    if client is None:
        return lambda: None
    import gevent  # only ever imported in the gevent worker

    readable: Any = gevent.get_hub().loop.io(client.fileno(), _READ, ref=False)
    checks: list[gevent.Greenlet[[], None]] = []

    def check() -> None:
        try:
            # Readable, so this does not wait: b"" is end-of-file; bytes (a pipelined
            # request) mean the client is still there.
            if client.recv(1, socket.MSG_PEEK) == b"":
                on_hang_up()
        except OSError:
            on_hang_up()

    def on_readable() -> None:
        readable.stop()  # one look says it all; the loop may not block in here, so spawn it
        checks.append(gevent.spawn(check))

    readable.start(on_readable)

    def stop() -> None:
        # Stopped, and any check gone, before the server reads this connection's next
        # request: two greenlets may not wait on one socket.
        readable.stop()
        readable.close()
        for greenlet in checks:
            greenlet.kill(block=True, timeout=1)

    return stop
