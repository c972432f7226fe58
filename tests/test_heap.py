"""What a process made while starting is frozen out of garbage collection (ai_router/heap.py),
until a reload replaces the router, which must then be collected once nothing uses it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import RouterConfig, Simulator

from ai_router.config import load_settings
from ai_router.grpc_api.server import build_server
from ai_router.heap import freeze_startup_objects, thaw
from ai_router.http_api import state
from ai_router.http_api.app import create_app
from ai_router.reload import LiveRouter


@pytest.fixture
def config(simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RouterConfig:
    config = RouterConfig(simulator, tmp_path, {"server": {"grpc_port": 0}})
    for name, value in config.env().items():
        monkeypatch.setenv(name, value)
    return config


@pytest.fixture
def frozen() -> Iterator[None]:
    freeze_startup_objects()
    try:
        yield
    finally:
        gc.unfreeze()  # the rest of the suite runs as an ordinary process


def test_freezing_moves_what_the_process_holds_out_of_collection_and_thawing_back(
    frozen: None,
) -> None:
    # This process has imported the router, the SDKs and pytest: far more than this.
    assert gc.get_freeze_count() > 50_000

    thaw()

    assert gc.get_freeze_count() == 0


def assert_replaced_and_collected(routers: LiveRouter) -> None:
    """Reload `routers` while its router is frozen; the old one must be garbage afterwards."""
    old = weakref.ref(routers.current)
    assert gc.get_freeze_count() > 0

    assert routers.reload()

    assert routers.current is not old()
    assert gc.get_freeze_count() == 0
    gc.collect()  # the router's objects refer to each other: only the collector frees them
    assert old() is None, "the replaced router is still referenced"


def test_an_http_reload_thaws_so_that_the_old_router_is_collected(config: RouterConfig) -> None:
    app = create_app(load_settings())
    freeze_startup_objects()
    try:
        assert_replaced_and_collected(state.live_router(app))
    finally:
        gc.unfreeze()


def test_a_grpc_reload_thaws_so_that_the_old_router_is_collected(config: RouterConfig) -> None:
    server = build_server(load_settings())
    freeze_startup_objects()
    try:
        assert_replaced_and_collected(server.routers)
    finally:
        gc.unfreeze()
        server.router.close()
