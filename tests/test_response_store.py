"""The store of the Responses API's stored responses, on real SQLite files and a real
redis-server: kept, read and deleted by the key that made them only, gone after the retention,
capped in size, and a store that cannot be used said so (StateUnavailable) until it can again."""

from __future__ import annotations

import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import redis
from access_support import RedisServer, start_redis
from support import REPO_ROOT, free_port, wait_until

from ai_router.access.gate import open_store
from ai_router.access.settings import StateSettings
from ai_router.access.store import Limits
from ai_router.config import ConfigError, ResponsesSettings, load_settings, settings_from_mapping
from ai_router.errors import InvalidRequest, StateUnavailable
from ai_router.response_store import ResponseStore, StoredResponse, open_response_store
from ai_router.response_store.redis_responses import PREFIX, RedisResponses
from ai_router.response_store.sqlite_responses import SWEEP_BATCH, SqliteResponses
from ai_router.router import Router

TIMEOUT = 0.3
BIG = 1024 * 1024
MakeStore = Callable[..., ResponseStore]


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis-responses"))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeStore]:
    """Stores of one backend (the same SQLite file, or the same Redis, emptied first), closed
    after the test; `retention` in seconds."""
    opened: list[ResponseStore] = []
    url = ""
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url
        with redis.Redis.from_url(url) as client:
            client.flushdb()

    def make(retention: float = 3600.0, max_bytes: int = BIG) -> ResponseStore:
        store: ResponseStore
        if request.param == "redis":
            store = RedisResponses(url, TIMEOUT, retention, max_bytes)
        else:
            store = SqliteResponses(str(tmp_path / "state.db"), retention, max_bytes)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def stored(response_id: str = "resp_1", owner: str = "team-a", **changes: Any) -> StoredResponse:
    fields: dict[str, Any] = {
        "id": response_id,
        "owner": owner,
        "provider": "openai",
        "relayed": True,
        "response": {
            "id": response_id,
            "object": "response",
            "output": [{"type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": "Paris. ½ é 🙂"}]}],
            "usage": {"input_tokens": 12, "output_tokens": 3},
        },
        "context": (
            {"role": "user", "content": "Capital of France?"},
            {"type": "function_call_output", "call_id": "call_1", "output": "{\"ok\": true}"},
        ),
        "created_at": 1_764_000_000.5,
    }
    fields.update(changes)
    return StoredResponse(**fields)


# --- the same behaviour on both backends ---------------------------------------------------------


def test_a_stored_response_is_read_back_as_put_and_deleted_once(make_store: MakeStore) -> None:
    store = make_store()
    original = stored()
    store.put(original)

    assert store.get("resp_1", "team-a") == original
    assert make_store().get("resp_1", "team-a") == original  # another process's store sees it
    assert store.get("resp_2", "team-a") is None

    assert store.delete("resp_1", "team-a") is True
    assert store.get("resp_1", "team-a") is None
    assert store.delete("resp_1", "team-a") is False


def test_put_again_replaces_and_read_only_mappings_are_stored(make_store: MakeStore) -> None:
    store = make_store()
    store.put(stored(provider="first"))
    frozen = MappingProxyType({"id": "resp_1", "output": [MappingProxyType({"type": "message"})]})
    store.put(stored(provider="second", response=frozen, relayed=False))

    kept = store.get("resp_1", "team-a")
    assert kept is not None
    assert (kept.provider, kept.relayed) == ("second", False)
    assert kept.response == {"id": "resp_1", "output": [{"type": "message"}]}


def test_a_response_is_visible_to_the_key_that_made_it_only(make_store: MakeStore) -> None:
    store = make_store()
    store.put(stored("resp_a", "team-a"))
    store.put(stored("resp_open", ""))  # made while the router had no keys
    # Owners with colons: "a:b" + "c" and "a" + "b:c" must stay two responses.
    store.put(stored("c", "a:b", provider="one"))
    store.put(stored("b:c", "a", provider="two"))

    for other in ("team-b", "", "TEAM-A", "team-a "):
        assert store.get("resp_a", other) is None
        assert store.delete("resp_a", other) is False
    assert store.get("resp_open", "team-a") is None
    assert store.get("resp_open", "") is not None
    one, two = store.get("c", "a:b"), store.get("b:c", "a")
    assert one is not None and one.provider == "one"
    assert two is not None and two.provider == "two"
    assert store.get("b:c", "a:b") is None and store.get("c", "a") is None
    assert store.get("resp_a", "team-a") is not None  # the others' deletes took nothing


def test_a_response_is_gone_after_the_retention_and_not_before(make_store: MakeStore) -> None:
    retention = 1.0
    store = make_store(retention=retention)
    put_at = time.monotonic()
    store.put(stored())
    assert store.get("resp_1", "team-a") is not None

    wait_until(lambda: store.get("resp_1", "team-a") is None, 10 * retention, "the expiry")
    gone_after = time.monotonic() - put_at

    print(f"\nstored response gone {gone_after:.2f}s after its put (retention {retention}s)")
    assert gone_after >= retention * 0.9
    assert store.delete("resp_1", "team-a") is False


def test_a_conversation_over_the_size_cap_is_refused_not_stored(make_store: MakeStore) -> None:
    store = make_store(max_bytes=64 * 1024)
    long_turn = {"role": "user", "content": "x" * (64 * 1024)}

    with pytest.raises(InvalidRequest, match=r"responses.max_stored_bytes \(65536\)") as refused:
        store.put(stored(context=(long_turn,)))
    assert refused.value.param == "store"
    with pytest.raises(InvalidRequest, match="too large to store"):
        store.check_fits([long_turn])
    assert store.get("resp_1", "team-a") is None

    store.check_fits([{"role": "user", "content": "x" * 1000}])
    store.put(stored(context=({"role": "user", "content": "x" * (60 * 1024)},)))
    assert store.get("resp_1", "team-a") is not None


def test_many_threads_put_and_read_at_once(make_store: MakeStore) -> None:
    store = make_store()
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for turn in range(20):
                response_id = f"resp_{worker}_{turn}"
                store.put(stored(response_id, f"key-{worker}"))
                assert store.get(response_id, f"key-{worker}") is not None
        except BaseException as error:  # reported below, in the test's thread
            failures.append(error)

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert store.get("resp_7_19", "key-7") is not None and store.get("resp_7_19", "key-6") is None


def test_check_writes_once_to_a_usable_store(make_store: MakeStore) -> None:
    make_store().check()


# --- SQLite -----------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_764_000_000.0

    def __call__(self) -> float:
        return self.now


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (count,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
    db.close()
    return int(count)


def test_sqlite_expired_rows_go_in_bounded_batches_as_the_store_is_written(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    clock = Clock()
    store = SqliteResponses(str(path), 60.0, BIG, clock=clock)
    for index in range(3 * SWEEP_BATCH):
        store.put(stored(f"old_{index}"))
    clock.now += 61  # every one of them expired

    assert store.get("old_0", "team-a") is None  # unreadable at once, before any sweep
    store.put(stored("new_0"))
    assert rows(path) == 3 * SWEEP_BATCH - SWEEP_BATCH + 1  # one batch removed, no more
    assert store.delete("new_0", "team-a") is True  # a delete sweeps one batch too
    assert rows(path) == SWEEP_BATCH
    store.check()
    assert rows(path) == 0
    store.close()


def test_sqlite_shares_the_quota_stores_file_with_its_own_table(tmp_path: Path) -> None:
    state = StateSettings(path=str(tmp_path / "state.db"))
    quota = open_store(state)
    responses = open_response_store(state, ResponsesSettings())
    limits = Limits("team-a", budget=1.0, period=3600)
    quota.settle(quota.reserve(limits, 10, 0.5), 10, 0.25)
    responses.put(stored())

    assert quota.spend(limits).spent == pytest.approx(0.25)
    assert responses.get("resp_1", "team-a") == stored()
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()
    quota.close()
    responses.close()


def test_a_deleted_sqlite_file_is_refused_not_silently_started_anew(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    backup = tmp_path / "backup.db"
    store = SqliteResponses(str(path), 3600.0, BIG)
    store.put(stored())
    store.close()
    shutil.copy(path, backup)
    store = SqliteResponses(str(path), 3600.0, BIG)
    path.unlink()

    with pytest.raises(StateUnavailable, match="was deleted while the router was running"):
        store.get("resp_1", "team-a")
    with pytest.raises(StateUnavailable, match="was deleted"):
        store.put(stored("resp_2"))
    assert not path.exists()

    shutil.copy(backup, path)  # the operator restores it
    assert store.get("resp_1", "team-a") == stored()
    store.close()
    with pytest.raises(StateUnavailable, match="closed"):
        store.get("resp_1", "team-a")


def test_a_sqlite_file_the_quota_store_opened_is_not_made_anew_by_this_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "quota-first.db"
    quota = open_store(StateSettings(path=str(path)))
    quota.check()
    path.unlink()

    responses = SqliteResponses(str(path), 3600.0, BIG)  # opened for the first time after that
    with pytest.raises(StateUnavailable, match="was deleted"):
        responses.put(stored())
    assert not path.exists()
    quota.close()
    responses.close()


def test_an_unusable_sqlite_file_is_unavailable_saying_where(tmp_path: Path) -> None:
    store = SqliteResponses(str(tmp_path / "missing-directory" / "state.db"), 3600.0, BIG)

    with pytest.raises(StateUnavailable) as refused:
        store.check()

    message = str(refused.value)
    assert "unable to open database file" in message
    assert str(tmp_path / "missing-directory") in message and "STATE_PATH" in message


# --- Redis ------------------------------------------------------------------------------------


def test_redis_keys_expire_by_themselves_outside_the_quota_stores_keys(
    redis_server: RedisServer,
) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()
    store = open_response_store(
        StateSettings(backend="redis", url=redis_server.url), ResponsesSettings()
    )
    store.put(stored())

    (key,) = client.keys("*")
    assert key == f"{PREFIX}6:team-a:resp_1"
    assert not key.startswith("ai-router:")  # the quota store's prefix
    assert 30 * 86400 - 5 <= client.ttl(key) <= 30 * 86400
    store.close()
    client.close()


def test_a_dead_redis_is_unavailable_at_once_and_the_store_recovers_by_itself(
    tmp_path: Path,
) -> None:
    server = start_redis(tmp_path)
    url = f"redis://:s3cret-pass@127.0.0.1:{server.port}/0"
    store = RedisResponses(url, TIMEOUT, 3600.0, BIG)
    try:
        _require_password(server)
        store.put(stored())
        port = server.port
        server.stop()

        for use in (lambda: store.put(stored("resp_2")), lambda: store.get("resp_1", "team-a"),
                    lambda: store.delete("resp_1", "team-a"), store.check):
            asked = time.monotonic()
            with pytest.raises(StateUnavailable, match=f"Redis at 127.0.0.1:{port}") as refused:
                use()
            assert time.monotonic() - asked < TIMEOUT + 0.5
            assert "s3cret" not in str(refused.value)

        (tmp_path / "again").mkdir()
        server = start_redis(tmp_path / "again", port)
        _require_password(server)
        wait_until(lambda: _put_or_unavailable(store), 5, "a put again")
        assert store.get("resp_3", "team-a") is not None
    finally:
        server.stop()
        store.close()


def _require_password(server: RedisServer) -> None:
    with redis.Redis.from_url(server.url) as client:
        client.config_set("requirepass", "s3cret-pass")


def _put_or_unavailable(store: ResponseStore) -> bool:
    try:
        store.put(stored("resp_3"))
    except StateUnavailable:
        return False
    return True


def test_fail_open_serves_a_response_the_store_cannot_take_unstored_but_reads_still_fail(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = StateSettings(
        backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=TIMEOUT,
        when_unavailable="fail_open",
    )
    store = open_response_store(state, ResponsesSettings())

    with caplog.at_level(logging.WARNING, logger="ai_router.response_store"):
        store.put(stored())
    assert "resp_1 of key 'team-a' not stored" in caplog.text
    with pytest.raises(StateUnavailable):
        store.get("resp_1", "team-a")
    with pytest.raises(StateUnavailable):
        store.check()
    with pytest.raises(InvalidRequest):  # a size refusal is not a store that is down
        store.put(stored(context=({"content": "x" * (9 * BIG)},)))
    store.close()


# --- settings and the router ------------------------------------------------------------------


def _settings(responses: Any = None, state: Any = None) -> Any:
    raw: dict[str, Any] = {"providers": {"openai": {"default_model": "gpt-4o-mini"}}}
    if responses is not None:
        raw["responses"] = responses
    if state is not None:
        raw["state"] = state
    return settings_from_mapping(raw, {})


def test_responses_settings_default_to_thirty_days_and_eight_mib() -> None:
    settings = _settings()
    assert settings.responses.retention_seconds == 30 * 86400
    assert settings.responses.max_stored_bytes == 8 * 1024 * 1024
    assert load_settings(REPO_ROOT / "config.yaml", {}).responses == ResponsesSettings()
    assert _settings({"retention_seconds": 3600}).responses.retention_seconds == 3600


@pytest.mark.parametrize(
    ("responses", "problem"),
    [
        ({"retention_seconds": 30}, "retention_seconds: Input should be greater than or equal to 60"),
        ({"retention_seconds": 400 * 86400}, "retention_seconds: Input should be less than or equal"),
        ({"max_stored_bytes": 1000}, "max_stored_bytes: Input should be greater than or equal"),
        ({"retention": "30d"}, "retention: Extra inputs are not permitted"),
    ],
)
def test_responses_settings_out_of_range_are_refused_naming_the_key(
    responses: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        _settings(responses)
    assert f"responses.{problem}" in str(refused.value)


def test_the_router_opens_one_store_lazily_and_closes_it_with_itself(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    router = Router.from_settings(_settings({"retention_seconds": 120}, {"path": str(path)}))
    assert not path.exists()  # nothing opened until a response is stored

    seen: list[ResponseStore] = []
    threads = [threading.Thread(target=lambda: seen.append(router.response_store()))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = router.response_store()
    assert all(each is store for each in seen) and len(seen) == 8
    store.put(stored())
    assert path.exists() and store.get("resp_1", "team-a") is not None

    router.close()
    with pytest.raises(StateUnavailable, match="closed"):
        store.get("resp_1", "team-a")
    with pytest.raises(RuntimeError, match="closed"):
        router.response_store()
