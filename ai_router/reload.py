"""Live reload: the router new requests get, replaced whole when the config changes.

`LiveRouter.reload` is the one reload both servers call on SIGHUP: the gRPC process, and each
gunicorn worker (`ai-router serve` validates the file first, then signals them). A new Router
takes new requests; requests in flight finish on the one they started with; an invalid file is
logged and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ai_router.config import ConfigError, Settings, load_settings
from ai_router.heap import thaw
from ai_router.router import Router

log = logging.getLogger(__name__)


class LiveRouter:
    """The router of a server's new requests."""

    def __init__(self, router: Router) -> None:
        self.current = router

    def reload(self, load: Callable[[], Settings] = load_settings) -> bool:
        """Build a router from the config `load` reads and make it current; False (and the
        reason logged) when the config is invalid. The old router is left to its requests."""
        try:
            settings = load()
        except ConfigError as error:
            log.error("config rejected, the running config stays: %s", error)
            return False
        metrics = self.current.metrics
        metrics.learn(settings)
        self.current = Router.from_settings(settings, metrics)
        thaw()  # so that the old router can be collected once its requests are done
        log.info("config reloaded from %s", settings.source)
        return True
