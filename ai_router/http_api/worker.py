"""The gunicorn worker of the HTTP front door: gunicorn's gevent worker on gevent's own HTTP
server (gunicorn's `gevent_pywsgi`), plus the idle keep-alive timeout that server lacks.

gunicorn's plain `gevent` worker parses each request with gunicorn's pure-Python parser and
writes the answer through gunicorn's own response object; gevent.pywsgi does both in fewer
steps. Measured with one worker against a local upstream, the two alternated three times (wrk;
this machine's speed drifts, so the pairs matter more than the figures): /generate c=1 p50
2.11/1.40/1.41 ms on `gevent` and 1.81/1.20/1.10 on this, c=4 593/770/832 req/s and
742/1,128/922; the worker's CPU per request at c=4, /generate 1,530/1,096/1,428 us and
872/1,247/884, /v1/chat/completions 1,525/884/1,078 and 1,050/882/696. Everything else
(graceful shutdown, worker_connections, the client socket in the environ for disconnect.py) is
gunicorn's gevent worker's.
"""

from __future__ import annotations

import gevent
from gunicorn.workers.ggevent import GeventPyWSGIWorker, PyWSGIHandler


class Handler(PyWSGIHandler):  # type: ignore[misc]  # gunicorn ships no types
    # gunicorn's `keepalive` setting, which gevent.pywsgi does not apply itself (set by Worker).
    idle_seconds: float = 5.0

    def read_requestline(self) -> str:
        """The next request's first line, or "" (the connection is closed) when none starts
        within `idle_seconds`: an idle keep-alive connection would otherwise hold one of the
        worker's `worker_connections` for ever, and keep a stopping worker waiting for it."""
        with gevent.Timeout(self.idle_seconds, False):  # False: on time-out, leave the block
            line: str = super().read_requestline()
            return line
        return ""

    def log_request(self) -> None:
        """No access log: the router logs each request itself (observe.py)."""


class Worker(GeventPyWSGIWorker):  # type: ignore[misc]
    wsgi_handler = Handler

    def init_process(self) -> None:
        Handler.idle_seconds = self.cfg.keepalive
        super().init_process()
