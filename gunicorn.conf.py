"""gunicorn settings for ai-router's HTTP front door (`ai-router http` loads this file).

gevent workers: each request is a greenlet, so thousands of long-lived streams cost a worker
little, and the provider SDKs' blocking sockets are made cooperative by gevent's monkey-patching,
which the worker applies before it loads the app.
"""

import os
import platform
import tempfile

from ai_router.logs import GUNICORN_LOGCONFIG
from ai_router.config_snapshot import (
    SHARED_METRICS_VARIABLE,
    made_here,
    remove_made,
    snapshot_settings,
)

# The provider SDKs describe the platform in a header, and Python learns the processor type by
# running `uname -p`: a fork. Forking a gevent worker in the middle of serving lets a copy of
# its greenlets run in the child, which then answers (or drops) other clients' connections.
# Asked once here, in the master, the answer is cached in every worker it forks.
platform.platform()

# Run at start and again on every SIGHUP (gunicorn's graceful reload): validates config.yaml and
# snapshots it for the workers; an invalid file on a reload is logged and the old config stays.
_server = snapshot_settings().server

bind = [f"{_server.host}:{_server.http_port}"]
# gunicorn's gevent worker on gevent's own HTTP server, which is faster than gunicorn's parser,
# which also applies `keepalive` below (ai_router/http_api/server/worker.py).
worker_class = "ai_router.http_api.server.worker.Worker"
# gunicorn's own WEB_CONCURRENCY, so benchmarks and containers can fix the worker count.
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Open connections per worker, streams included: room above the router's own limit on
# generation requests (server.http_max_concurrent), so that past it a client is told 503 at
# once rather than left waiting in the accept queue; for the connections waiting for a request's
# head (one of which is closed for a new one beyond server.http_max_waiting_connections); and for
# health checks.
worker_connections = _server.http_max_concurrent + _server.http_max_waiting_connections + 20
# gevent workers heartbeat from their own greenlet, so a long stream never trips this; it only
# catches a worker whose event loop is blocked.
timeout = 30
# On SIGTERM, workers stop accepting and in-flight requests (streams too) get this long to finish.
graceful_timeout = _server.http_grace_seconds
# Idle keep-alive connections close after this. A proxy must give up on an idle connection first
# (nginx.conf's upstream keepalive_timeout is 4 s), or it may send a request down a connection we
# are closing. Kept short because a draining worker waits for its idle connections too.
keepalive = 5
# JSON lines on stderr, as every ai-router process writes them; the router logs each request
# itself (with its id, model, status, latency, tokens), so gunicorn's access log stays off.
logconfig_dict = GUNICORN_LOGCONFIG
accesslog = None
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Metrics: each worker writes its values to files in one directory, and /metrics (in any worker)
# adds them up (prometheus_client's multiprocess mode). The directory is this server's own,
# emptied when it starts, and a dead worker's live gauges are dropped when it exits. Under
# `ai-router serve` it is serve's, shared with its gRPC server, and serve has emptied it.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", made_here(tempfile.mkdtemp(prefix="ai-router-metrics-"))
)


def on_starting(server: object) -> None:
    if os.environ.get(SHARED_METRICS_VARIABLE) == _metrics_dir:
        return  # the gRPC server's files may be in it already
    os.makedirs(_metrics_dir, exist_ok=True)
    for name in os.listdir(_metrics_dir):
        os.remove(os.path.join(_metrics_dir, name))


def post_fork(server: object, worker: object) -> None:
    """In each new worker, before it serves: the HTTP server's limits (server.http_*)."""
    from ai_router.http_api.server.worker import apply_limits

    apply_limits(_server)


def on_exit(server: object) -> None:
    remove_made()  # the snapshot and the metrics directory, if nobody named them for it


def child_exit(server: object, worker: object) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


# The control socket lives at one per-user path, so several routers on one machine would fight
# over it; nothing of ours uses it.
control_socket_disable = True
# Not preloaded: each worker imports the app after gevent has patched it.
preload_app = False
