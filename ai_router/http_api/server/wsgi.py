"""The WSGI entry point gunicorn loads in each worker (after gevent has patched it)."""

from ai_router.config_snapshot import worker_settings
from ai_router.heap import freeze_startup_objects
from ai_router.http_api.app import create_app
from ai_router.http_api.server.reloading import reload_on_sighup
from ai_router.logs import configure_logging
from ai_router.tracing import configure_tracing

configure_logging()
configure_tracing("http")
app = create_app(worker_settings())
reload_on_sighup(app)
freeze_startup_objects()
