"""Live reload inside one gunicorn worker: on SIGHUP, a new Router from config.yaml serves new
requests; requests in flight finish on the one they started with. An invalid file is logged and
changes nothing. (`ai-router serve` sends SIGHUP to each worker after validating the file; a
SIGHUP to gunicorn's master instead replaces the workers, more slowly, see reload.py.)"""

from __future__ import annotations

import logging
import signal

from flask import Flask

from ai_router.config import ConfigError, load_settings
from ai_router.heap import thaw
from ai_router.http_api import state
from ai_router.router import Router

log = logging.getLogger(__name__)


def reload_app(app: Flask) -> None:
    try:
        settings = load_settings()
    except ConfigError as error:
        log.error("config rejected, the running config stays: %s", error)
        return
    with app.app_context():
        metrics = app.extensions[state.ROUTER_KEY].metrics
        metrics.learn(settings)
        state.replace_router(Router.from_settings(settings, metrics))
    thaw()  # so that the old router can be collected once its requests are done
    log.info("config reloaded from %s", settings.source)


def reload_on_sighup(app: Flask) -> None:
    """In a gevent worker: reload on SIGHUP, in a greenlet of its own (not in the handler)."""
    import gevent

    gevent.signal_handler(signal.SIGHUP, lambda: gevent.spawn(reload_app, app))
