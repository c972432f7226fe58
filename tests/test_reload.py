"""Live reload: SIGHUP changes routing for new requests in every process, drops none in flight,
and an invalid file changes nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx2
import pytest
import yaml
from support import (
    Process,
    RouterConfig,
    Simulator,
    free_port,
    start_process,
    wait_for_port,
    wait_for_worker,
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc
from ai_router.config import Settings, load_settings, settings_from_mapping
from ai_router.grpc_api.server import build_server
from ai_router.http_api import state
from ai_router.http_api.app import create_app
from ai_router.providers.fake_transport import FakeAnswer, FakeUpstream
from ai_router.router import Router, build_providers

BEFORE, AFTER = "openai", "anthropic"


@dataclass
class Served:
    process: Process
    config: Path
    http: str
    grpc: str
    settings: dict[str, object] = field(default_factory=dict)

    def rewrite(self, alias_target: str, **provider_changes: object) -> None:
        settings = yaml.safe_load(self.config.read_text())
        settings["models"] = {"pick": {"targets": [alias_target]}}
        settings["providers"]["openai"].update(provider_changes)
        self.config.write_text(yaml.safe_dump(settings))

    def child_pid(self, marker: str) -> int:
        children = Path(f"/proc/{self.process.popen.pid}/task/{self.process.popen.pid}/children")
        for pid in children.read_text().split():
            if marker in Path(f"/proc/{pid}/cmdline").read_text():
                return int(pid)
        raise AssertionError(f"no child of serve runs {marker}")


def children(pid: int) -> set[int]:
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.fixture
def served(simulator: Simulator, tmp_path: Path) -> Iterator[Served]:
    config = RouterConfig(
        simulator, tmp_path, {"models": {"pick": {"targets": ["openai/gpt-4o-mini"]}}}
    )
    http_port, grpc_port = free_port(), free_port()
    env = {
        **config.env(),
        "HTTP_PORT": str(http_port),
        "GRPC_PORT": str(grpc_port),
        "WEB_CONCURRENCY": "2",
    }
    process = start_process("reload-serve", ["serve"], env, tmp_path, http_port)
    try:
        wait_for_port(process)  # a worker answering, not only gunicorn's socket
        wait_for_port(process, grpc_port)
        yield Served(process, Path(env["CONFIG_PATH"]), f"http://127.0.0.1:{http_port}",
                     f"127.0.0.1:{grpc_port}")
    finally:
        process.stop()


def ask_http(served: Served) -> str:
    response = httpx2.post(f"{served.http}/generate", json={"model": "pick", "prompt": "x"}, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["provider"])


def ask_grpc(stub: pb_grpc.AIRouterStub) -> str:
    return str(stub.RouteRequest(pb.AIRequest(model="pick", prompt="x"), timeout=10).provider)


@dataclass
class Load:
    """Requests in a loop on a thread until stopped; every answer's provider, or the error."""

    ask: Callable[[], str]
    answers: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.answers.append(self.ask())
            except Exception as error:  # every failure is a finding
                self.failures.append(repr(error))


def test_sighup_changes_an_alias_target_under_load_with_no_failed_request(
    served: Served, simulator: Simulator
) -> None:
    simulator.set(latency=0.02)
    channel = grpc.insecure_channel(served.grpc)
    loads = [Load(lambda: ask_http(served)), Load(lambda: ask_http(served)),
             Load(lambda: ask_grpc(pb_grpc.AIRouterStub(channel)))]
    threads = [threading.Thread(target=load.run) for load in loads]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(load.answers for load in loads), 10, "load running")
        served.rewrite(f"{AFTER}/claude-3-5-haiku-20241022")
        reloaded_at = time.monotonic()
        served.process.popen.send_signal(signal.SIGHUP)
        wait_until(lambda: all(load.answers[-1] == AFTER for load in loads), 15, "new target")
        took = time.monotonic() - reloaded_at
        time.sleep(0.5)
    finally:
        for load in loads:
            load.stop.set()
        for thread in threads:
            thread.join(timeout=15)
        channel.close()

    for load in loads:
        assert load.failures == []
        assert load.answers[0] == BEFORE and load.answers[-1] == AFTER
        first_after = load.answers.index(AFTER)
        assert set(load.answers[first_after:]) == {AFTER}  # no process went back
    print(f"\nreload: {sum(len(l.answers) for l in loads)} requests, none failed; "
          f"every surface on the new target {took:.2f}s after SIGHUP")


@pytest.mark.parametrize("signalled", ["serve", "gunicorn"])
def test_an_invalid_file_is_rejected_and_the_old_config_stays(
    served: Served, simulator: Simulator, signalled: str
) -> None:
    served.rewrite(f"{AFTER}/claude-3-5-haiku-20241022", timeout=-1)  # invalid
    gunicorn = served.child_pid("gunicorn")
    pid = served.process.popen.pid if signalled == "serve" else gunicorn
    workers = children(gunicorn)

    os.kill(pid, signal.SIGHUP)
    wait_until(lambda: "config rejected" in served.process.log(), 10, "the rejection logged")
    if signalled == "gunicorn":
        # gunicorn replaces its workers whatever the file says: ask the new ones.
        wait_until(
            lambda: not children(gunicorn) & workers and len(children(gunicorn)) == len(workers),
            60,  # two workers booting on a loaded 2-core machine
            "gunicorn's workers replaced",
        )
        wait_for_worker(served.http)  # and one of the new ones answering

    with grpc.insecure_channel(served.grpc) as channel:
        assert ask_grpc(pb_grpc.AIRouterStub(channel)) == BEFORE
    assert [ask_http(served) for _ in range(6)] == [BEFORE] * 6
    assert served.process.popen.poll() is None
    assert "providers.openai.timeout" in served.process.log()


# --- in-process: what a replaced router leaves behind ---------------------------------------------

ROUTER_KEY = "sk-router-reload-0123456789"


def keyed_settings(simulator: Simulator, directory: Path) -> Settings:
    """Both providers on the simulator, and a router key: each router then opens the SQLite
    store of the keys' limits, and its thread renewing leases."""
    digest = hashlib.sha256(ROUTER_KEY.encode()).hexdigest()
    config = RouterConfig(simulator, directory, {
        "server": {"grpc_port": 0, "grpc_drain_seconds": 0},
        "auth": {"keys": [{"name": "reloader", "key_sha256": digest}]},
        "state": {"path": str(directory / "state.db")},
    })  # fmt: skip
    env = config.env()
    return load_settings(env["CONFIG_PATH"], env)


def held_by_routers(store: Path) -> dict[str, int]:
    """What this process's routers hold: their threads, and the files of their store (SQLite's
    database, write-ahead log and shared memory)."""
    threads = [thread.name for thread in threading.enumerate()]
    links = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            links.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass  # closed since it was listed
    return {
        "watchdog threads": threads.count("upstream-watchdog"),
        "lease threads": threads.count("ai-router-leases"),
        "store files": sum(link.startswith(str(store)) for link in links),
    }


def test_reloads_leave_no_thread_or_open_store_behind(simulator: Simulator, tmp_path: Path) -> None:
    # Issue 21: the gRPC process went from 12 to 72 threads over 60 SIGHUPs, each replaced
    # router's watchdog waiting for ever. With router keys each router also opens a store and
    # a thread renewing leases, which must end with it once its requests are done.
    settings = keyed_settings(simulator, tmp_path)
    store = tmp_path / "state.db"
    before = held_by_routers(store)
    threads = threading.active_count()
    server = build_server(settings)
    server.start()
    metadata = (("authorization", f"Bearer {ROUTER_KEY}"),)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AIRouterStub(channel)
            for _ in range(30):
                request = pb.AIRequest(provider="anthropic", prompt="x")
                stub.RouteRequest(request, timeout=10, metadata=metadata)
                request = pb.AIRequest(provider="openai", prompt="y")
                assert list(stub.StreamingRouteRequest(request, timeout=10, metadata=metadata))
                # The router that served is replaced by one that serves nothing.
                assert server.routers.reload(lambda: settings)
            wait_until(
                lambda: held_by_routers(store) == before,
                10,
                "the replaced routers' threads and stores ending",
            )
            print(f"\n30 reloads: {threading.active_count()} threads in the process, "
                  f"{threads} before the gRPC server started")
    finally:
        server.stop()


def test_a_stream_open_across_a_reload_ends_well_on_the_router_it_started_on(
    simulator: Simulator, tmp_path: Path
) -> None:
    settings = keyed_settings(simulator, tmp_path)
    server = build_server(settings)
    server.start()
    simulator.set(token_rate=40)  # the answer's ten or so tokens take a quarter of a second
    metadata = (("authorization", f"Bearer {ROUTER_KEY}"),)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.AIRouterStub(channel)
            request = pb.AIRequest(provider="openai", prompt="one two three four five six")
            stream = stub.StreamingRouteRequest(request, timeout=10, metadata=metadata)
            first = next(stream)
            old = server.router
            assert server.routers.reload(lambda: settings)

            assert not old.closed  # the stream still holds it
            rest = list(stream)
    finally:
        server.stop()

    assert rest[-1].finish_reason == "stop"
    assert "".join(m.content for m in [first, *rest]).endswith("one two three four five six")
    wait_until(lambda: old.closed, 5, "the replaced router closed after its stream")


def test_a_replaced_router_closes_when_its_last_http_stream_is_sent() -> None:
    settings = settings_from_mapping(
        {"providers": {"openai": {"default_model": "gpt-4o-mini"}}}, {"OPENAI_API_KEY": "k"}
    )
    upstream = FakeUpstream(lambda request: FakeAnswer.of_events(
        ("", {"choices": [{"index": 0, "delta": {"content": "hi"}}]}),
        ("", {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        b"data: [DONE]\n\n",
    ))  # fmt: skip
    old = Router(settings, build_providers(settings, upstream.connect))
    app = create_app(settings, old)
    client = app.test_client()
    live = state.live_router(app)

    response = client.post("/stream", json={"provider": "openai", "prompt": "x"}, buffered=False)
    body = response.iter_encoded()
    first = next(body)
    assert live.reload(lambda: settings)
    new = live.current

    assert not old.closed  # its stream is being sent
    sent = first + b"".join(body)
    response.close()
    assert old.closed and not new.closed
    assert b'"hi"' in sent and sent.endswith(b"data: [DONE]\n\n")

    # A router with no request in flight is closed at once.
    assert live.reload(lambda: settings)
    assert new.closed and not live.current.closed
    live.current.close()
