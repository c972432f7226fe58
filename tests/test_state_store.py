"""The stores of keys' limits and budgets, in-process, on a real SQLite file and a real
redis-server: holds that die with their process, a store that cannot be used, a file deleted."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from access_support import RedisServer, start_redis
from support import free_port, wait_until

from ai_router.access.gate import check_state, open_store
from ai_router.access.settings import StateSettings
from ai_router.access.sqlite_file import SqliteFile
from ai_router.access.store import Limits, QuotaStore
from ai_router.config import Settings, settings_from_mapping
from ai_router.errors import LimitReached, StateUnavailable

LEASE = 1.0
TIMEOUT = 0.3
ONE_AT_A_TIME = Limits("solo", max_concurrent=1, budget=1.0, period=3600)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis-state"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateSettings:
    if request.param == "sqlite":
        return StateSettings(path=str(tmp_path / "state.db"), lease_seconds=LEASE)
    server: RedisServer = request.getfixturevalue("redis_server")
    redis.Redis.from_url(server.url).flushdb()
    return StateSettings(
        backend="redis", url=server.url, lease_seconds=LEASE, timeout_seconds=TIMEOUT
    )


@pytest.fixture
def store(state: StateSettings) -> Iterator[QuotaStore]:
    opened = open_store(state)
    yield opened
    opened.close()


def _admitted(store: QuotaStore, limits: Limits) -> bool:
    try:
        reservation = store.reserve(limits, 10, 0.25)
    except LimitReached:
        return False
    store.settle(reservation, 10, 0.0)
    return True


def test_a_renewed_hold_keeps_its_slot_past_the_lease(store: QuotaStore) -> None:
    held = store.reserve(ONE_AT_A_TIME, 10, 0.25)
    renewed_until = time.monotonic() + 3 * LEASE
    while time.monotonic() < renewed_until:
        store.renew([held])
        with pytest.raises(LimitReached, match="1 requests at once"):
            store.reserve(ONE_AT_A_TIME, 10, 0.25)
        time.sleep(LEASE / 4)  # the heartbeat's pace, faster than the lease

    store.settle(held, 10, 0.1)
    assert _admitted(store, ONE_AT_A_TIME)


def test_the_slot_and_spend_of_a_hold_nobody_renews_come_back_within_the_lease(
    store: QuotaStore,
) -> None:
    store.reserve(ONE_AT_A_TIME, 10, 0.25)  # its process dies: never renewed, never settled
    abandoned = time.monotonic()
    assert store.spend(ONE_AT_A_TIME).reserved == pytest.approx(0.25)

    wait_until(lambda: _admitted(store, ONE_AT_A_TIME), 5 * LEASE, "the slot coming back")
    returned_after = time.monotonic() - abandoned

    print(f"\nslot of a dead holder back after {returned_after:.2f}s (lease {LEASE}s)")
    # Not before the lease ends; after it, within a loaded CI machine's scheduling.
    assert LEASE * 0.9 <= returned_after <= LEASE + 3.0
    assert store.spend(ONE_AT_A_TIME).reserved == pytest.approx(0.0)


def test_a_hold_swept_before_its_settlement_books_the_cost_once(store: QuotaStore) -> None:
    late = store.reserve(ONE_AT_A_TIME, 10, 0.25)
    wait_until(lambda: _admitted(store, ONE_AT_A_TIME), 5 * LEASE, "the stale hold swept")

    store.settle(late, 10, 0.1)

    spend = store.spend(ONE_AT_A_TIME)
    assert spend.spent == pytest.approx(0.1)
    assert spend.reserved == pytest.approx(0.0)


def test_check_writes_once_to_a_usable_store(state: StateSettings) -> None:
    check_state(_keyed(state))


def _keyed(state: StateSettings) -> Settings:
    return settings_from_mapping(
        {
            "providers": {"openai": {"default_model": "m"}},
            "auth": {"keys": [{"name": "k", "key_sha256": "0" * 64}]},
            "state": state.model_dump(),
        },
        {},
    )


def test_a_sqlite_file_that_cannot_be_created_stops_the_start_saying_where(tmp_path: Path) -> None:
    state = StateSettings(path=str(tmp_path / "missing-directory" / "state.db"))

    with pytest.raises(StateUnavailable) as refused:
        check_state(_keyed(state))

    message = str(refused.value)
    assert "unable to open database file" in message
    assert str(tmp_path / "missing-directory") in message and "STATE_PATH" in message


def test_processes_opening_a_new_sqlite_file_at_once_all_open_it(tmp_path: Path) -> None:
    # A connection per thread stands for each process: SQLite locks the file for each connection
    # alike. Many new files, since the switch to WAL found a file locked only now and then.
    openers = 8
    for number in range(150):
        path = str(tmp_path / f"state-{number}.db")
        together = threading.Barrier(openers)
        failures: list[str] = []

        def open_and_write() -> None:
            file = SqliteFile(path, "CREATE TABLE IF NOT EXISTS t (x INTEGER);")
            together.wait()
            try:
                with file.transaction() as db:
                    db.execute("INSERT INTO t VALUES (1)")
            except StateUnavailable as error:
                failures.append(str(error))
            finally:
                file.close()

        threads = [threading.Thread(target=open_and_write) for _ in range(openers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT COUNT(*) FROM t").fetchone() == (openers,)
            assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_an_unreachable_redis_stops_the_start_without_its_password() -> None:
    url = f"redis://:s3cret-pass@127.0.0.1:{free_port()}/0"

    with pytest.raises(StateUnavailable) as refused:
        check_state(_keyed(StateSettings(backend="redis", url=url)))

    assert "Redis at 127.0.0.1" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_deleted_sqlite_file_is_refused_not_silently_started_anew(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    state = StateSettings(path=str(path), lease_seconds=LEASE)
    store = open_store(state)
    spend_limits = Limits("spender", budget=1.0, period=3600)
    store.settle(store.reserve(spend_limits, 10, 0.5), 10, 0.5)
    backup = tmp_path / "backup.db"
    store.close()
    shutil.copy(path, backup)
    store = open_store(state)
    path.unlink()

    with pytest.raises(StateUnavailable, match="was deleted while the router was running"):
        store.reserve(spend_limits, 10, 0.1)
    reloaded = open_store(state)  # what a reload in this process opens
    with pytest.raises(StateUnavailable, match="was deleted"):
        reloaded.spend(spend_limits)
    assert not path.exists()

    shutil.copy(backup, path)  # the operator restores it
    assert store.spend(spend_limits).spent == pytest.approx(0.5)
    assert reloaded.spend(spend_limits).spent == pytest.approx(0.5)
    store.close()
    reloaded.close()


def test_a_reservation_redis_runs_after_the_router_gave_up_changes_nothing(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    store = open_store(
        StateSettings(backend="redis", url=redis_server.url, timeout_seconds=TIMEOUT)
    )
    limits = Limits("frozen", rpm=10, max_concurrent=5, budget=1.0, period=3600)
    assert _admitted(store, Limits("warm"))  # connected, scripts loaded, Redis's clock known

    os.kill(redis_server.popen.pid, signal.SIGSTOP)
    try:
        asked = time.monotonic()
        with pytest.raises(StateUnavailable, match=f"did not answer within {TIMEOUT:g}s"):
            store.reserve(limits, 10, 0.25)
        waited = time.monotonic() - asked
    finally:
        os.kill(redis_server.popen.pid, signal.SIGCONT)

    print(f"\nfrozen Redis: refused after {waited:.2f}s")
    # Bounded by the timeout, not hung (redis-py waits for ever without one); the slack is a
    # loaded 2-core CI machine's scheduling, seen at 1.2 s.
    assert waited < TIMEOUT + 2.5
    # Redis has now run the script it had queued, past its deadline: nothing was taken.
    assert client.zcard("ai-router:frozen:leases") == 0
    assert client.hget("ai-router:frozen:rpm", "level") is None
    assert store.spend(limits).reserved == 0.0
    assert _admitted(store, limits)
    store.close()


def test_a_dead_redis_is_unavailable_at_once_and_the_store_recovers_by_itself(
    tmp_path: Path,
) -> None:
    server = start_redis(tmp_path)
    # A long timeout, so that "at once" (a refused connection) cannot be mistaken for waiting it out.
    store = open_store(StateSettings(backend="redis", url=server.url, timeout_seconds=5.0))
    limits = Limits("outage", rpm=100)
    assert _admitted(store, limits)
    port = server.port
    server.stop()

    asked = time.monotonic()
    with pytest.raises(StateUnavailable, match=f"Redis at 127.0.0.1:{port}"):
        store.reserve(limits, 10, 0.0)
    refused_after = time.monotonic() - asked

    (tmp_path / "again").mkdir()
    restarted = start_redis(tmp_path / "again", port)
    try:
        back = time.monotonic()
        wait_until(lambda: _admitted_or_unavailable(store, limits), 5, "a reservation again")
        print(f"\ndead Redis refused in {refused_after * 1000:.1f} ms; "
              f"served {1000 * (time.monotonic() - back):.0f} ms after it answered PING again")
        assert refused_after < 2.5  # half the timeout
    finally:
        restarted.stop()
        store.close()


def _admitted_or_unavailable(store: QuotaStore, limits: Limits) -> bool:
    try:
        return _admitted(store, limits)
    except StateUnavailable:
        return False
