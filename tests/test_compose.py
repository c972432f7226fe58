"""docker-compose.yaml proven on loopback, without Docker: the file is read with yaml and what it
describes is run with what it sets. Its `deploy.replicas` ai-router replicas each run the image's
command as the image's user (not root) in a read-only copy of the image's working directory, with
exactly the environment the Dockerfile and compose give them (`${VAR:-default}` as compose reads
it with no variable set), their config mount and the image's state volume; a real redis-server
stands for the `redis` service, and real nginx runs the project's nginx.conf in front of them.
They start in compose's order: Redis answering, then the replicas, then nginx once every replica's
HEALTHCHECK passes. No provider key is set (compose's defaults), so each replica answers from its
built-in simulator.

What differs from the containers, and why:
- Ports: each replica's HTTP_PORT and GRPC_PORT are free loopback ports, as
  the replicas share one network here; nginx.conf's upstreams and listen ports follow them.
- REDIS_URL's host `redis` (compose's name for the service) is 127.0.0.1, and its port that of
  the test's redis-server.
- REPLICA_NAME names each replica, as its container's host name (the default) would; here all
  would have this machine's.
- HOST stays compose's 0.0.0.0, so each replica takes itself as reachable from a network, as in a
  container, and runs the start-up checks a container meets; every address the test uses is
  loopback, and every port a free one.
- For the rpm proof, the config mount's file is the repository's config.yaml with one router key
  added, limited to BURST_RPM requests a minute.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from access_support import RedisServer, bearer, new_key, sha256_hex, start_redis
from deploy_support import REPLICA_HEADER, Nginx, descendants, start_nginx
from image_support import (
    Container,
    Filesystem,
    Image,
    Mount,
    read_image,
    service_environment,
    service_mounts,
    start_container,
    uid_of,
    searchable_by_others,
)
from support import REPO_ROOT, free_port

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())
SERVICE = COMPOSE["services"]["ai-router"]
IMAGE = read_image(REPO_ROOT / "Dockerfile")
CONFIG_TARGET = service_environment(SERVICE)["CONFIG_PATH"]  # where compose mounts config.yaml

BURST_KEY = new_key("compose")
BURST_RPM = 6
PROMPT = {"provider": "openai", "prompt": "ping", "max_tokens": 1}


@dataclass
class Topology:
    replicas: list[Container]
    nginx: Nginx
    redis: RedisServer


def keyed_config(directory: Path) -> Path:
    """The repository's config.yaml, plus one router key with an rpm limit."""
    config = yaml.safe_load((REPO_ROOT / "config.yaml").read_text())
    assert "auth" not in config, "config.yaml has keys of its own now: add the test's to them"
    config["auth"] = {
        "keys": [{"name": "burst", "key_sha256": sha256_hex(BURST_KEY), "rpm": BURST_RPM}]
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def with_config(mounts: list[Mount], config: Path) -> list[Mount]:
    """The service's mounts, with `config` as the source of the config file's."""
    assert CONFIG_TARGET in {mount.target for mount in mounts}, "compose mounts no config.yaml"
    return [
        Mount(config, mount.target, mount.read_only) if mount.target == CONFIG_TARGET else mount
        for mount in mounts
    ]


def own_ports(env: dict[str, str]) -> dict[str, str]:
    """`env` with free loopback ports for the servers (one network for every replica here)."""
    return {
        **env,
        "HTTP_PORT": str(free_port()),
        "GRPC_PORT": str(free_port()),
    }


@pytest.fixture(scope="module")
def places() -> Iterator[Path]:
    """Where the containers' filesystems go: a directory the image's user can reach (pytest's
    own temporary directories are root's alone), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="ai-router-compose-"))
    path.chmod(0o755)
    try:
        with searchable_by_others(REPO_ROOT, Path(sys.executable).parent):
            yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture(scope="module")
def compose(places: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    logs = tmp_path_factory.mktemp("compose")
    mounts = with_config(service_mounts(SERVICE, REPO_ROOT), keyed_config(logs))
    replicas: list[Container] = []
    # Stopped in the reverse order of starting, each even if stopping another failed.
    with contextlib.ExitStack() as started:
        redis = start_redis(logs)
        started.callback(redis.stop)
        started.callback(stop_together, replicas)
        for index in range(1, SERVICE["deploy"]["replicas"] + 1):
            name = f"ai-router-{index}"
            env = {**IMAGE.env, **service_environment(SERVICE)}
            compose_url = env["REDIS_URL"]
            env["REDIS_URL"] = compose_url.replace("//redis:6379/", f"//127.0.0.1:{redis.port}/")
            assert env["REDIS_URL"] != compose_url, f"{compose_url}: not the redis service's"
            env = {**own_ports(env), "REPLICA_NAME": name}
            filesystem = Filesystem(places / name, IMAGE, REPO_ROOT, mounts)
            replicas.append(start_container(name, IMAGE, filesystem, env, logs))
        for replica in replicas:
            replica.wait_healthy()
        nginx = start_nginx(
            logs, [r.http_port for r in replicas], [r.grpc_port for r in replicas]
        )
        started.callback(nginx.stop)
        yield Topology(replicas, nginx, redis)


def stop_together(containers: list[Container]) -> None:
    """SIGTERM to all at once, as `docker compose down` sends it, then each one's end awaited."""
    with ThreadPoolExecutor(max(len(containers), 1)) as pool:
        list(pool.map(Container.stop, containers))


@dataclass
class Answer:
    status: int
    replica: str | None
    retry_after: str | None
    error_type: str | None


def answer(response: httpx2.Response) -> Answer:
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    return Answer(
        response.status_code,
        response.headers.get(REPLICA_HEADER),
        response.headers.get("Retry-After"),
        error.get("type") if isinstance(error, dict) else None,
    )


def burst(url: str, count: int, threads: int, key: str) -> tuple[list[Answer], float]:
    """`count` requests with `key`, sent by `threads` threads that start together; every answer,
    and the seconds from the start to the last."""
    gate = threading.Barrier(threads)

    def share(requests: int) -> list[Answer]:
        with httpx2.Client(base_url=url, headers=bearer(key), timeout=30) as client:
            gate.wait()
            return [answer(client.post("/generate", json=PROMPT)) for _ in range(requests)]

    assert count % threads == 0
    started = time.monotonic()
    with ThreadPoolExecutor(threads) as pool:
        shares = list(pool.map(share, [count // threads] * threads))
    return [a for answers in shares for a in answers], time.monotonic() - started


def test_compose_nginx_and_the_image_agree_on_ports_and_start_order() -> None:
    # Ports: the replicas listen where the image says, compose exposes that, nginx.conf sends there.
    http_port, grpc_port = IMAGE.env["HTTP_PORT"], IMAGE.env["GRPC_PORT"]
    assert {http_port, grpc_port} <= set(SERVICE["expose"])
    nginx_conf = (REPO_ROOT / "nginx.conf").read_text()
    assert f"server ai-router:{http_port} " in nginx_conf
    assert f"server ai-router:{grpc_port} " in nginx_conf
    # Order: replicas once Redis is healthy, nginx once the replicas are (the fixture's order).
    assert SERVICE["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "healthcheck" in COMPOSE["services"]["redis"]
    nginx_service = COMPOSE["services"]["nginx"]
    assert nginx_service["depends_on"]["ai-router"]["condition"] == "service_healthy"
    assert IMAGE.healthcheck, "the image has a HEALTHCHECK for nginx's condition to wait on"


def test_a_keys_rpm_holds_across_the_replicas_together_through_redis(compose: Topology) -> None:
    replicas = len(compose.replicas)
    # Every replica gets more requests than the rpm: had each its own count, each would accept
    # BURST_RPM and the replicas together several times that.
    count = 3 * BURST_RPM * replicas
    answers, seconds = burst(compose.nginx.http_url, count, 3 * replicas, BURST_KEY)

    accepted = [a for a in answers if a.status == 200]
    refused = [a for a in answers if a.status != 200]
    answered = Counter(a.replica for a in answers)
    accepted_by = Counter(a.replica for a in accepted)
    print(
        f"\ncompose on loopback: {count} requests through nginx in {seconds:.2f}s, "
        f"{len(accepted)} accepted, {len(refused)} refused (429), key rpm {BURST_RPM}"
    )
    for name in sorted(answered, key=str):
        refused_here = answered[name] - accepted_by[name]
        print(f"  {name}: {answered[name]} answered, {accepted_by[name]} accepted, "
              f"{refused_here} refused")

    assert set(answered) == {replica.name for replica in compose.replicas}, answered
    assert min(answered.values()) > BURST_RPM, answered
    # The bucket refills one request every 60/rpm seconds: a burst shorter than that gets the
    # rpm exactly.
    assert seconds < 60 / BURST_RPM
    assert len(accepted) == BURST_RPM, accepted_by
    wrong = [
        a for a in refused
        if a.status != 429 or a.error_type != "rate_limited"
        or not (a.retry_after or "").isdigit() or int(a.retry_after or 0) < 1
    ]
    assert not wrong, f"{len(wrong)} refusals not 429 rate_limited with Retry-After: {wrong[:3]}"
    # The count lives in Redis, not in a SQLite file of each replica's.
    for replica in compose.replicas:
        state_dir = Path(replica.env["STATE_PATH"]).parent
        assert list(state_dir.iterdir()) == [], f"{replica.name} kept state of its own"


def test_every_replica_runs_as_the_images_user_and_leaves_its_directory_as_it_was(
    compose: Topology,
) -> None:
    for replica in compose.replicas:
        pids = descendants(replica.process.popen.pid)
        assert len(pids) > 1, "ai-router serve runs its servers as child processes"
        assert {uid_of(pid) for pid in pids} == {IMAGE.uid}, replica.name
        assert sorted(p.name for p in replica.workdir.iterdir()) == sorted(IMAGE.files)


def test_the_image_alone_keeps_its_keys_limits_in_its_volume(
    places: Path, tmp_path: Path
) -> None:
    """`docker run` of the image with a config that has keys, and no REDIS_URL: the limits are a
    SQLite file at the image's STATE_PATH, in its volume, written by its user."""
    config = Mount(keyed_config(tmp_path), CONFIG_TARGET, read_only=True)
    filesystem = Filesystem(places / "alone", IMAGE, REPO_ROOT, [config])
    # As `docker run -e CONFIG_PATH=... -e WEB_CONCURRENCY=1` would: one HTTP worker is enough.
    env = own_ports({**IMAGE.env, "CONFIG_PATH": CONFIG_TARGET, "WEB_CONCURRENCY": "1"})
    container = start_container("alone", IMAGE, filesystem, env, tmp_path)
    try:
        container.wait_healthy()
        response = httpx2.post(
            f"http://127.0.0.1:{container.http_port}/generate",
            json=PROMPT, headers=bearer(BURST_KEY), timeout=30,
        )
    finally:
        container.stop()

    assert response.status_code == 200, response.text
    state = filesystem.host(IMAGE.env["STATE_PATH"])
    assert state.is_file() and state.stat().st_uid == IMAGE.uid
    assert sorted(p.name for p in container.workdir.iterdir()) == sorted(IMAGE.files)
