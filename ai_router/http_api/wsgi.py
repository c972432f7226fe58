"""The WSGI entry point gunicorn loads in each worker (after gevent has patched it)."""

from ai_router.config import load_settings
from ai_router.http_api.app import create_app
from ai_router.logs import configure_logging
from ai_router.tracing import configure_tracing

configure_logging()
configure_tracing("http")
app = create_app(load_settings())
