"""Live reload inside one gunicorn worker: on SIGHUP, the app's LiveRouter reloads (reload.py),
in a greenlet of its own rather than in the signal handler."""

from __future__ import annotations

import signal

from flask import Flask

from ai_router.http_api.state import live_router


def reload_on_sighup(app: Flask) -> None:
    import gevent  # only ever imported in the gevent worker

    live = live_router(app)
    gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(live.reload))
