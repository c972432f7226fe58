"""What a process made while starting is frozen out of garbage collection (ai_router/heap.py),
until a reload replaces the router, which must then be collectable again."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from ai_router.config import load_settings
from ai_router.grpc_api.server import build_server
from ai_router.heap import freeze_startup_objects, thaw
from ai_router.http_api import state
from ai_router.http_api.app import create_app
from ai_router.http_api.reloading import reload_app
from support import RouterConfig, Simulator


@pytest.fixture
def config(simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RouterConfig:
    config = RouterConfig(simulator, tmp_path, {"server": {"grpc_port": 0}})
    for name, value in config.env().items():
        monkeypatch.setenv(name, value)
    return config


def test_freezing_moves_what_the_process_holds_out_of_collection_and_thawing_back() -> None:
    try:
        freeze_startup_objects()
        # This process has imported the router, the SDKs and pytest: far more than this.
        assert gc.get_freeze_count() > 50_000

        thaw()

        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()  # the rest of the suite runs as an ordinary process


def test_an_http_reload_thaws_so_that_the_old_router_can_be_collected(config: RouterConfig) -> None:
    app = create_app(load_settings())
    old_router = app.extensions[state.ROUTER_KEY]
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > 0

        reload_app(app)

        assert app.extensions[state.ROUTER_KEY] is not old_router
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()


def test_a_grpc_reload_thaws_so_that_the_old_router_can_be_collected(config: RouterConfig) -> None:
    server = build_server(load_settings())
    old_router = server.router
    freeze_startup_objects()
    try:
        assert gc.get_freeze_count() > 0

        server.reload()

        assert server.router is not old_router
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        server.router.close()
        old_router.close()
