"""Live reload: SIGHUP changes routing for new requests in every process, drops none in flight,
and an invalid file changes nothing."""

from __future__ import annotations

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
    wait_until,
)

from ai_router._generated import ai_router_pb2 as pb
from ai_router._generated import ai_router_pb2_grpc as pb_grpc

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
        wait_for_port(process)
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
            15,
            "gunicorn's workers replaced",
        )

    with grpc.insecure_channel(served.grpc) as channel:
        assert ask_grpc(pb_grpc.AIRouterStub(channel)) == BEFORE
    assert [ask_http(served) for _ in range(6)] == [BEFORE] * 6
    assert served.process.popen.poll() is None
    assert "providers.openai.timeout" in served.process.log()
