"""Live reload: the router new requests get, replaced whole when the config changes.

`LiveRouter.reload` is the one reload both servers call on SIGHUP: the gRPC process, and each
gunicorn worker (`ai-router serve` validates the file first, then signals them). A new Router
takes new requests; requests in flight finish on the one they started with, which is closed
(its connections, its store, its watchdog's thread) when the last of them is done; an invalid
file is logged and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from ai_router.config import ConfigError, Settings, load_settings
from ai_router.heap import thaw
from ai_router.router import Router

log = logging.getLogger(__name__)


class LiveRouter:
    """The router of a server's new requests."""

    def __init__(self, router: Router) -> None:
        self.current = router
        self._lock = threading.Lock()

    def hold(self) -> tuple[Router, Callable[[], None]]:
        """The current router, held for one request (`Router.hold`), and its release: taken
        together, so that a reload cannot close it in between."""
        with self._lock:
            router = self.current
            return router, router.hold()

    def reload(self, load: Callable[[], Settings] = load_settings) -> bool:
        """Build a router from the config `load` reads and make it current; False (and the
        reason logged) when the config is invalid. The old router is closed once the requests
        holding it are done."""
        try:
            settings = load()
        except ConfigError as error:
            log.error("config rejected, the running config stays: %s", error)
            return False
        metrics = self.current.metrics
        metrics.learn(settings)
        router = Router.from_settings(settings, metrics)
        with self._lock:
            old, self.current = self.current, router
        old.retire()
        thaw()  # so that the old router can be collected once its requests are done
        log.info("config reloaded from %s", settings.source)
        return True
