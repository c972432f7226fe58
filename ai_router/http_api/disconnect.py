"""Noticing, while a stream is relayed, that its HTTP client has hung up.

A relaying greenlet spends its time blocked on the upstream, so it would only learn of a gone
client at its next write, which for a slow model may be many seconds of generation (and of the
provider's billing) later. A second, tiny greenlet waits on the client socket instead: when it
reads end-of-file, the upstream is cut off at once.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from flask import request


def watch_client(on_hang_up: Callable[[], None]) -> Callable[[], None]:
    """Call `on_hang_up` when the current request's client closes its connection; returns the
    function that stops watching. Only under gunicorn's gevent worker, which hands the client
    socket over in the WSGI environ; elsewhere (a test client) it watches nothing."""
    client = request.environ.get("gunicorn.socket")
    if client is None:
        return lambda: None
    import gevent  # only ever imported in the gevent worker

    def wait_for_hang_up() -> None:
        try:
            # Blocks this greenlet only. A client sends nothing more while it awaits a stream;
            # b"" is end-of-file. Bytes (a pipelined request) mean it is still there: stop.
            if client.recv(1, socket.MSG_PEEK) == b"":
                on_hang_up()
        except OSError:
            on_hang_up()

    watcher = gevent.spawn(wait_for_hang_up)
    # Killed and gone before the server reads this connection's next request: two greenlets
    # may not wait on one socket.
    return lambda: watcher.kill(block=True, timeout=1)
