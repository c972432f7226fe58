"""Build the gRPC server (servicer, request scopes, health, reflection), and run it with a
graceful stop.

Building is separate from running so tests can start a real server on a free port in-process.
The pool has a few threads more than AIRouter calls may take (RESERVED_THREADS), so that health
checks and reflection are answered while the router is at its limit; AIRouter calls beyond it are
refused by the request scope, RESOURCE_EXHAUSTED and counted, never queued.

A call holds a pool thread to its end, a stream included, so the pool is sized in thousands
(`server.grpc_max_workers`). Its threads start only as calls need them, and with small stacks
(THREAD_STACK_BYTES): what a held stream costs is then what it touches (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
from prometheus_client import start_http_server
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.config import Settings
from ai_router.grpc_api.interceptor import ScopeInterceptor
from ai_router.grpc_api.servicer import AIRouterServicer
from ai_router.heap import freeze_startup_objects
from ai_router.reload import LiveRouter
from ai_router.router import Router
from ai_router.scope import ConcurrencyLimit
from ai_router.tracing import configure_tracing
from ai_router.tracing import shutdown as tracing_shutdown

log = logging.getLogger(__name__)

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AIRouter"].full_name
RESERVED_THREADS = 4  # for health checks and reflection, beyond the AIRouter calls
# The stack of every thread `serve` starts, far below glibc's default: thousands of pool threads
# each reserve one. Sized with room over the deepest the request path nests (docs/PERFORMANCE.md).
THREAD_STACK_BYTES = 512 * 1024


@dataclass
class GrpcServer:
    server: grpc.Server
    health: health.HealthServicer
    routers: LiveRouter
    port: int
    grace_seconds: float
    drain_seconds: float

    @property
    def router(self) -> Router:
        """The router of new calls."""
        return self.routers.current

    def start(self) -> None:
        self.server.start()
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        """Report NOT_SERVING at once and keep serving for `drain_seconds`, so health-checking
        load balancers stop sending before calls would be refused; then refuse new calls and let
        in-flight ones finish within the grace period."""
        self.health.enter_graceful_shutdown()
        time.sleep(self.drain_seconds)
        self.server.stop(self.grace_seconds).wait()
        self.router.close()


def build_server(settings: Settings, router: Router | None = None) -> GrpcServer:
    routers = LiveRouter(router or Router.from_settings(settings))
    server_settings = settings.server
    limit = server_settings.grpc_concurrency_limit
    scopes = ScopeInterceptor(
        SERVICE_NAME, routers, ConcurrencyLimit(limit), server_settings.replica_name
    )
    server = grpc.server(
        ThreadPoolExecutor(
            max_workers=server_settings.grpc_max_workers + RESERVED_THREADS,
            thread_name_prefix="grpc-rpc",
        ),
        interceptors=(scopes,),
        # Beyond this many RPCs of any kind at once, grpc itself refuses them: no queue.
        maximum_concurrent_rpcs=limit + RESERVED_THREADS,
    )
    pb_grpc.add_AIRouterServicer_to_server(AIRouterServicer(), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    address = f"{server_settings.host}:{server_settings.grpc_port}"
    port = server.add_insecure_port(address)
    return GrpcServer(
        server,
        health_servicer,
        routers,
        port,
        grace_seconds=server_settings.grpc_grace_seconds,
        drain_seconds=server_settings.grpc_drain_seconds,
    )


def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then stop gracefully."""
    # Before any thread starts: the pool's, grpc's own Python threads, the metrics server's.
    threading.stack_size(THREAD_STACK_BYTES)
    # The main thread sleeps in a read of this socket, where each signal's number is written by
    # whichever thread the kernel handed it to. Sleeping on an Event, it slept on when that was not
    # the main thread (python/cpython#85300), and a SIGTERM went unanswered. Set before the port
    # is bound: a signal that comes while the server is built waits here, instead of killing it.
    wakeup, wakeup_writer = socket.socketpair()
    wakeup_writer.setblocking(False)
    signal.set_wakeup_fd(wakeup_writer.fileno())
    for signum in (*STOP_SIGNALS, signal.SIGHUP):
        signal.signal(signum, lambda *_: None)  # the socket says which came
    configure_tracing("grpc")
    grpc_server = build_server(settings)
    metrics_port = settings.server.grpc_metrics_port
    if metrics_port:
        # One process: its own registry, on a port of its own.
        start_http_server(metrics_port, settings.server.host, grpc_server.router.metrics.registry)
        log.info("gRPC metrics on http://%s:%d/metrics", settings.server.host, metrics_port)
    freeze_startup_objects()
    grpc_server.start()
    log.info("gRPC server listening on %s:%d", settings.server.host, grpc_server.port)
    while True:
        received = set(wakeup.recv(64))
        if received & STOP_SIGNALS:
            break
        if signal.SIGHUP in received:
            grpc_server.routers.reload()
    log.info(
        "gRPC server stopping: NOT_SERVING for %gs, then in-flight RPCs have %gs",
        grpc_server.drain_seconds,
        grpc_server.grace_seconds,
    )
    grpc_server.stop()
    tracing_shutdown()
    log.info("gRPC server stopped")
